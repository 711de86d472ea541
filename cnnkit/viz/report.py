"""RUN/report.html: one self-contained page with everything about a run (no TensorFlow).

Rendered by Jinja2 from templates/report.html.j2 with autoescaping on (class names and spec names are the user's
text). Pictures are embedded as base64 data URIs and a Content-Security-Policy forbids every other source, so the
page shows the same mailed, opened from a USB stick, or offline, and can never reach the network.
"""

from __future__ import annotations

import base64
import shlex
from datetime import datetime
from pathlib import Path

from cnnkit.files import atomic_write
from cnnkit.run.folder import read_json, resolve_run

REPORT = "report.html"

# The run's pictures in reading order, each with one sentence on how to read it. Any other PNG in plots/ (a
# `cnnkit plot ... --out` into the folder) follows, under its file name.
PICTURES: tuple[tuple[str, str, str], ...] = (
    (
        "curves.png",
        "Training curves",
        "Loss and metrics per epoch: validation (orange) pulling away from training (blue) means overfitting; "
        "the dashed line marks the best epoch.",
    ),
    (
        "confusion.png",
        "Confusion matrix",
        "Rows are the true classes and columns the predicted ones: everything off the diagonal is a mistake, "
        "and the right panel gives each class's recall.",
    ),
    (
        "misclassified.png",
        "Most confident mistakes",
        "The test images the model got wrong with the highest confidence; each title gives the true and the "
        "predicted class.",
    ),
    (
        "gradcam_misclassified.png",
        "Why those mistakes: Grad-CAM",
        "Red marks where the evidence for the named class came from: compare the map of the wrong prediction "
        "with the map of the true class to see what misled the network.",
    ),
    (
        "gradcam.png",
        "Grad-CAM",
        "Red marks the part of each input that pushed the network towards the class named above the panel.",
    ),
    (
        "saliency.png",
        "Saliency",
        "Bright pixels are those whose change would move the class score most: the network's sensitivity.",
    ),
    (
        "filters.png",
        "Learned filters",
        "The first convolution layer's kernels: smooth, oriented patterns are edge and stroke detectors; "
        "noise means the layer has learned little.",
    ),
    (
        "feature_maps.png",
        "Feature maps",
        "What each convolution and pooling layer outputs for one test image: bright cells are where a "
        "filter found its pattern.",
    ),
    (
        "architecture.png",
        "Architecture",
        "The layer stack: box height grows with the spatial size and thickness with the channels (both on a "
        "log scale); thin bars are vectors.",
    ),
)


def write_report(run: Path, out: Path | None = None, run_info: dict | None = None) -> Path:
    """Render RUN/report.html (or `out`) from what the run folder holds; returns its path. `run_info`: what run.json
    is about to say (`cnnkit train` writes the report just before it marks the run completed)."""
    run_dir = resolve_run(run)
    html = render(collect(run_dir, run_info))
    return atomic_write(out or run_dir / REPORT, html)


def render(context: dict) -> str:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=PackageLoader("cnnkit.viz", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,  # a misspelt name in the template fails the tests, not silently blanks
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("report.html.j2").render(**context)


def collect(run_dir: Path, run_info: dict | None = None) -> dict:
    """Everything the template shows, as plain values (numbers formatted here, not in the template)."""
    from cnnkit.spec.parse import load_spec
    from cnnkit.spec.summary import summarize

    info = run_info if run_info is not None else read_json(run_dir / "run.json", {})
    spec_text = (run_dir / "spec.yaml").read_text(encoding="utf-8")
    spec = load_spec(run_dir / "spec.yaml")
    summary = summarize(spec)
    evaluation = read_json(run_dir / "eval.json", {})
    return {
        "title": spec.name,
        "run_name": run_dir.name,
        "facts": _facts(info, spec, run_dir),
        "metrics": _metrics(read_json(run_dir / "metrics.json", {})),
        "per_class": _per_class(evaluation.get("per_class") or []),
        "evaluation": _evaluation_line(evaluation),
        "summary": _summary(summary),
        "spec_text": spec_text,
        "pictures": _pictures(run_dir / "plots"),
    }


def _facts(info: dict, spec, run_dir: Path) -> list[tuple[str, str]]:
    device = info.get("device") or {}
    used = device.get("used", "?")
    gpus = device.get("gpus") or []
    device_text = f"{used}" + (f" ({', '.join(gpus)})" if used == "gpu" and gpus else "")
    policy = (info.get("precision") or {}).get("policy")
    if policy and policy != "float32":
        device_text += f", {policy}"
    elif info.get("mixed_precision"):  # a cnnkit 0.1 run
        device_text += ", mixed precision"
    if info.get("strategy") not in (None, "none"):
        device_text += f", strategy {info['strategy']}"
    samples = info.get("samples") or {}
    versions = ", ".join(
        f"{name} {info[key]}"
        for name, key in (("cnnkit", "cnnkit"), ("TensorFlow", "tensorflow"), ("Keras", "keras"), ("Python", "python"))
        if info.get(key)
    )
    facts = [
        ("Dataset", f"{spec.data['dataset']}: {info.get('data_source', '?')}"),
        ("Samples", ", ".join(f"{k} {v:,}" for k, v in samples.items()) or "?"),
        ("Started", info.get("started", "?")),
        ("Wall time", _wall_time(info.get("started"), info.get("ended"))),
        ("Status", f"{info.get('status', '?')} after {info.get('epochs_run', '?')} epoch(s)"),
        ("Device", device_text),
        ("Versions", versions or "?"),
        ("Seed", str(info.get("seed", spec.train["seed"]))),
        # spec.yaml is the resolved spec (every --set applied), so it alone reproduces the run.
        ("Reproduce", f"cnnkit train {shlex.quote(str(run_dir / 'spec.yaml'))}"),
    ]
    if info.get("command"):
        facts.append(("Command line", shlex.join(["cnnkit", *map(str, info["command"][1:])])))
    return facts


def _wall_time(started: str | None, ended: str | None) -> str:
    try:
        seconds = (datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds()
    except (TypeError, ValueError):
        return "?"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _metrics(metrics: dict) -> dict:
    """{"columns": [...], "rows": [(split, [values...])]} with one column per metric, loss first."""
    names: list[str] = []
    for values in metrics.values():
        for key in values or {}:
            if key not in names:
                names.append(key)
    names.sort(key=lambda k: k != "loss")
    rows = [
        (split, [_number(values.get(k)) if values else "" for k in names])
        for split, values in metrics.items()
        if values
    ]
    return {"columns": names, "rows": rows}


def _number(value) -> str:
    return "" if value is None else f"{value:.4f}"


def _per_class(rows: list[dict]) -> list[dict]:
    return [
        {
            "name": str(row["class"]),
            "precision": f"{row['precision']:.3f}",
            "recall": f"{row['recall']:.3f}",
            "f1": f"{row['f1']:.3f}",
            "support": f"{row['support']:,}",
        }
        for row in rows
    ]


def _evaluation_line(evaluation: dict) -> str:
    if not evaluation:
        return ""
    line = f"{evaluation.get('samples', 0):,} test samples, accuracy {evaluation.get('accuracy', 0):.2%}"
    for key, value in evaluation.items():
        if key.startswith("top_") and key.endswith("_accuracy"):
            line += f", top-{key.split('_')[1]} accuracy {value:.2%}"
    return line


def _summary(summary) -> dict:
    from cnnkit.text import shape_text as fmt_shape

    def rf(row) -> str:
        size = row.receptive_field
        if size is None or isinstance(size, str):
            return size or ""  # a str says why there is no single number ("n/a (after reshape)")
        return fmt_shape(size) if isinstance(size, list) else str(size)

    data = summary.to_dict()
    return {
        "input_shape": fmt_shape(summary.input_shape),
        "rows": [
            {
                "index": row.index,
                "layer": row.type + (f" ({row.name})" if row.name else ""),
                "shape": fmt_shape(row.output_shape),
                "params": f"{row.params:,}",
                "macs": f"{row.macs:,}" if row.macs else "",
                "rf": rf(row),
            }
            for row in summary.layers
        ],
        "total_params": f"{data['total_params']:,}",
        "trainable_params": f"{data['trainable_params']:,}",
        "total_macs": f"{data['total_macs']:,}",
    }


def _pictures(folder: Path) -> list[dict]:
    known = {name: (title, how) for name, title, how in PICTURES}
    present = sorted(p.name for p in folder.glob("*.png")) if folder.is_dir() else []
    order = [name for name, _, _ in PICTURES if name in present] + [n for n in present if n not in known]
    pictures = []
    for name in order:
        title, how = known.get(name, (name.removesuffix(".png").replace("_", " "), "A picture drawn by cnnkit plot."))
        data = (folder / name).read_bytes()
        pictures.append(
            {
                "id": "pic-" + name.removesuffix(".png").replace("_", "-"),
                "title": title,
                "how": how,
                "file": name,
                "src": "data:image/png;base64," + base64.b64encode(data).decode("ascii"),
                "size": _png_size(data),
            }
        )
    return pictures


def _png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR, so the page reserves each picture's room before it is decoded."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 24:
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")

"""`cnnkit compare`: several run folders side by side. No TensorFlow: everything comes from the run folders' files.

`compare_runs` gathers one row per run (what its spec does differently, params, MACs, epochs, best epoch, final
metrics, wall time) and which run is best per column; `compare_table` renders it; `plot_compare` overlays the runs'
validation curves in one PNG and returns the legend's labels as drawn (the test checks the figure, not a copy).
"""

from __future__ import annotations

import glob
from datetime import datetime
from pathlib import Path

from rich.box import SIMPLE_HEAD
from rich.table import Table

from cnnkit.errors import RunError
from cnnkit.run.folder import LATEST, read_json, resolve_run
from cnnkit.text import compact_number

MISSING = "—"
SPLITS = ("train", "val", "test")
BEST_MARK = "*"  # as the history table marks the best epoch
LINE_STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v")


def expand(arguments: list[str | Path]) -> list[Path]:
    """Run folders from the arguments: globs expanded here too (quoted, or from a shell that does not), a parent's
    `latest` link and any path named twice counted once."""
    found: list[Path] = []
    for argument in arguments:
        text = str(argument)
        matches = sorted(glob.glob(text)) if glob.has_magic(text) else [text]
        if not matches:
            raise RunError(f"{text} matches no run folder")
        for match in matches:
            path = Path(match)
            if path.name == LATEST and path.is_symlink() and len(matches) > 1:
                continue  # runs/* names the newest run twice: once by name, once as `latest`
            found.append(resolve_run(path))
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    runs = list(unique.values())
    if len(runs) < 2:
        raise RunError(f"compare needs at least two run folders; got {len(runs)}")
    return runs


def compare_runs(arguments: list[str | Path]) -> dict:
    from cnnkit.spec.parse import load_spec
    from cnnkit.spec.summary import summarize

    rows = []
    for run in expand(arguments):
        spec = load_spec(run / "spec.yaml")
        summary = summarize(spec)
        info = read_json(run / "run.json", {})
        history = read_json(run / "history.json", {})
        monitor = spec.train["monitor"] if spec.train["monitor"] in history else "loss"
        rows.append(
            {
                "run": run.name,
                "path": str(run),
                "dataset": _dataset(spec.data),
                "settings": _flatten(spec),
                "params": summary.total_params,
                "macs": summary.total_macs,
                "epochs": len(next(iter(history.values()), [])),
                "best_epoch": _best_epoch(history.get(monitor, []), monitor),
                "monitor": monitor,
                "metrics": read_json(run / "metrics.json", {}),
                "wall_seconds": _wall_seconds(info),
                "status": info.get("status", "unknown"),
                "history": {k: v for k, v in history.items() if k != "learning_rate"},
            }
        )
    datasets = {row["dataset"] for row in rows}
    if len(datasets) > 1:
        first = rows[0]
        other = next(row for row in rows if row["dataset"] != first["dataset"])
        raise RunError(
            f"runs of different datasets cannot be compared: {first['run']} uses {first['dataset']}, "
            f"{other['run']} uses {other['dataset']}"
        )
    differing = _differing_keys([row["settings"] for row in rows])
    for row in rows:
        row["differences"] = {key: row["settings"].get(key, MISSING) for key in differing}
        del row["settings"]
    columns = metric_columns(rows)
    return {"dataset": datasets.pop(), "runs": rows, "columns": columns, "best": _best(rows, columns)}


def _dataset(data: dict) -> str:
    return data["dataset"] + (f" {data['path']}" if data.get("path") else "")


def _flatten(spec) -> dict:
    """The resolved spec as dotted keys, each layer as one readable line."""
    flat = {"input_shape": str(list(spec.input_shape))}
    for layer in spec.layers:
        args = ", ".join(f"{k}={v}" for k, v in layer.args.items())
        flat[f"layers[{layer.index}]"] = f"{layer.type}({args})"

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict) and value:
            for key, inner in value.items():
                walk(f"{prefix}.{key}", inner)
        else:
            flat[prefix] = str(value)

    walk("data", spec.data)
    walk("train", spec.train)
    return flat


def _differing_keys(settings: list[dict]) -> list[str]:
    keys = []
    for flat in settings:
        keys += [key for key in flat if key not in keys]
    return [key for key in keys if len({flat.get(key, MISSING) for flat in settings}) > 1]


def _best_epoch(values: list[float], monitor: str) -> int | None:
    if not values:
        return None
    pick = min if "loss" in monitor else max
    return values.index(pick(values)) + 1


def _wall_seconds(info: dict) -> float | None:
    try:
        started = datetime.strptime(info["started"], "%Y-%m-%dT%H:%M:%S%z")
        ended = datetime.strptime(info["ended"], "%Y-%m-%dT%H:%M:%S%z")
    except (KeyError, TypeError, ValueError):
        return None
    return (ended - started).total_seconds()


def metric_columns(rows: list[dict]) -> list[tuple[str, str]]:
    """(split, metric) pairs any run has in metrics.json: loss and accuracy first."""
    names: list[str] = []
    for row in rows:
        for values in row["metrics"].values():
            names += [n for n in values if n not in names]
    names.sort(key=lambda n: (n != "accuracy", n != "loss", n))
    return [
        (split, name) for split in SPLITS for name in names if any(name in r["metrics"].get(split, {}) for r in rows)
    ]


def _lower_is_better(metric: str) -> bool:
    return "loss" in metric or "error" in metric


def _best(rows: list[dict], columns: list[tuple[str, str]]) -> dict:
    """column -> the run with the best value (several when tied)."""
    best = {}
    for split, metric in columns:
        values = {r["run"]: r["metrics"].get(split, {}).get(metric) for r in rows}
        best[f"{split} {metric}"] = _winners(values, lower=_lower_is_better(metric))
    best["wall time"] = _winners({r["run"]: r["wall_seconds"] for r in rows}, lower=True)
    return best


def _winners(values: dict, *, lower: bool) -> list[str]:
    known = {k: v for k, v in values.items() if v is not None}
    if len(known) < 2:
        return []
    target = min(known.values()) if lower else max(known.values())
    return [k for k, v in known.items() if v == target]


def compare_table(result: dict) -> Table:
    """One row per run: size, epochs, final metrics, wall time; * marks the best value of each column."""
    rows, best = result["runs"], result["best"]
    # No vertical rules (box.SIMPLE_HEAD): a dozen columns fit 130 characters with whole run names and values.
    table = Table(
        title=f"{len(rows)} runs on {result['dataset']}  ·  * best per column",
        title_justify="left",
        box=SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("Run", no_wrap=True)  # the other columns' headers wrap first: a run name is read whole
    for name in ("Params", "MACs", "Epochs", "Best"):
        table.add_column(name, justify="right")
    for split, metric in result["columns"]:
        table.add_column(f"{split}\n{_short(metric)}", justify="right")  # two lines: the value sets the width
    table.add_column("Wall", justify="right")
    for row in rows:
        cells = [
            row["run"],
            f"{row['params']:,}",
            compact_number(row["macs"]),
            str(row["epochs"]),
            MISSING if row["best_epoch"] is None else str(row["best_epoch"]),
        ]
        for split, metric in result["columns"]:
            value = row["metrics"].get(split, {}).get(metric)
            cells.append(_marked(f"{value:.4f}" if value is not None else MISSING, row, best[f"{split} {metric}"]))
        wall = row["wall_seconds"]
        cells.append(_marked(MISSING if wall is None else _duration(wall), row, best["wall time"]))
        table.add_row(*cells)
    return table


def differences_table(result: dict) -> Table:
    """The spec keys whose values differ between the runs (rows), one column per run."""
    rows = result["runs"]
    table = Table(title="Spec differences (resolved specs, only the keys that differ)", title_justify="left")
    table.add_column("Key", no_wrap=True)
    for row in rows:
        table.add_column(row["run"], overflow="fold")
    keys = list(rows[0]["differences"]) if rows else []
    for key in keys:
        table.add_row(key, *(row["differences"][key] for row in rows))
    if not keys:
        table.add_row("(none: the same spec)", *("" for _ in rows))
    return table


def _short(metric: str) -> str:
    return {"accuracy": "acc"}.get(metric, metric)


def _marked(text: str, row: dict, winners: list[str]) -> str:
    return f"[bold green]{text}{BEST_MARK}[/bold green]" if row["run"] in winners else text


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def plot_compare(result: dict, out_path) -> list[str]:
    """Validation curves (the first metric, and the loss) of every run on shared axes; the legend's labels."""
    from cnnkit.viz.plots import _new_figure, _save

    rows = result["runs"]
    has_val = any(key.startswith("val_") for row in rows for key in row["history"])
    prefix = "val_" if has_val else ""
    metrics = [m for _, m in result["columns"] if m != "loss"]
    panels = ([metrics[0]] if metrics else []) + ["loss"]
    fig = _new_figure(5.2 * len(panels), 4.0)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, metric in zip(axes, panels):
        for i, row in enumerate(rows):
            values = row["history"].get(prefix + metric)
            if values:
                # Line styles and markers vary too: runs that agree (same seed, more epochs) stay visible on top.
                style, marker = LINE_STYLES[i % len(LINE_STYLES)], MARKERS[i % len(MARKERS)]
                ax.plot(
                    range(1, len(values) + 1), values, linestyle=style, marker=marker, markersize=4, label=row["run"]
                )
        ax.set_title(f"{'validation' if has_val else 'training'} {metric}")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    legend = axes[0].legend(fontsize=7, loc="best")
    _save(fig, out_path)
    return [text.get_text() for text in legend.get_texts()]

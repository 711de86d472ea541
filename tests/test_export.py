"""`cnnkit export`: SavedModel, TFLite (float, int8) and ONNX, each checked against the .keras model in its own
runtime; a corrupted artefact fails the check with exit 4; `cnnkit predict` runs the exported files; a missing
optional package gives one line naming the extra.

One small digits run is trained once for the file; the notes' MNIST run (1 epoch on 3,000 images, the real 10,000
image test split) is exported to all four artefacts in the data-marked test.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from clitools import TINY, cli, refused, train, write_spec
from PIL import Image

from cnnkit.run import export as export_module

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = os.environ.get("CNNKIT_DATA_DIR")
ARTEFACTS = {
    ("savedmodel", None): "model.savedmodel",
    ("tflite", None): "model.tflite",
    ("tflite", "int8"): "model_int8.tflite",
    ("onnx", None): "model.onnx",
}


def export_args(fmt, quantize):
    return ["--format", fmt] + (["--quantize", quantize] if quantize else [])


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """clitools' TINY net, 3 epochs on digits: every export below writes into its export/ folder."""
    folder = tmp_path_factory.mktemp("export")
    return train(write_spec(folder, TINY, "tiny.yaml"), folder / "runs")


# --- without TensorFlow: refused requests and missing packages --------------------------------------------------


def test_wrong_format_and_quantize_are_one_line_errors(tmp_path):
    assert refused("export", tmp_path, "--format", "coreml") == (
        "Error: --format: expected one of savedmodel, tflite, onnx, got 'coreml'\n"
    )
    assert refused("export", tmp_path, "--format", "onnx", "--quantize", "int8") == (
        "Error: --quantize int8 applies to --format tflite only, not onnx\n"
    )
    assert refused("export", tmp_path, "--format", "tflite", "--quantize", "int4") == (
        "Error: --quantize: expected one of int8, got 'int4'\n"
    )


@pytest.mark.parametrize(
    "fmt, missing, line",
    [
        ("onnx", "tf2onnx", "exporting to ONNX needs the Python package tf2onnx"),
        ("onnx", "onnxruntime", "checking an .onnx export needs the Python package onnxruntime"),
        ("tflite", "ai_edge_litert", "checking a .tflite export needs the Python package ai-edge-litert"),
    ],
)
def test_missing_optional_package_names_the_extra(tmp_path, monkeypatch, fmt, missing, line):
    import importlib.util

    real = importlib.util.find_spec

    def find_spec(name, *args):
        if name == missing or name.startswith(missing + "."):
            return None  # as if not installed
        return real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert (
        refused("export", tmp_path, "--format", fmt)
        == f"Error: {line}, which is not installed (hint: pip install 'cnnkit[export]')\n"
    )


def test_predict_on_an_onnx_file_without_onnxruntime_names_the_extra(tmp_path, monkeypatch):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"not used")
    from PIL import Image

    Image.new("L", (8, 8)).save(tmp_path / "x.png")  # the inputs are checked first, so give a real one
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` raises ImportError
    assert refused("predict", model, tmp_path / "x.png") == (
        "Error: running an .onnx model needs the Python package onnxruntime, which is not installed "
        "(hint: pip install 'cnnkit[export]')\n"
    )


@pytest.mark.slow
def test_out_must_carry_the_formats_suffix(run, tmp_path):
    assert refused("export", run, "--format", "onnx", "--out", tmp_path / "m.tflite") == (
        f"Error: --out {tmp_path / 'm.tflite'}: an artefact of --format onnx is a .onnx file (hint: pass a path ending in .onnx)\n"
    )


def test_a_bare_keras_file_is_refused(tmp_path):
    model = tmp_path / "model.keras"
    model.write_bytes(b"PK")
    assert refused("export", model, "--format", "savedmodel") == (
        f"Error: {model}: export needs a run folder, whose data the parity check runs on "
        "(hint: pass the run folder that holds this model.keras)\n"
    )


# --- the digits run: every format, parity, predict, corruption ------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("fmt, quantize", list(ARTEFACTS))
def test_export_passes_parity_and_writes_export_json(run, fmt, quantize):
    result = cli("export", run, *export_args(fmt, quantize))
    artefact = run / "export" / ARTEFACTS[(fmt, quantize)]
    assert artefact.exists()
    assert "passed" in result.stdout and f"wrote {artefact}" in result.stdout
    report = json.loads((run / "export" / "export.json").read_text())[artefact.name]
    assert report["passed"] is True and report["format"] == fmt and report["quantize"] == quantize
    # digits' test split has 359 images: topped up from validation and training images to 1,000
    assert report["images"] == 1000 and report["image_sources"]["test"] == 359
    assert sum(report["image_sources"].values()) == 1000
    if quantize is None:
        assert report["max_abs_diff"] <= 1e-4 and report["top1_agreement"] == 1.0
        assert report["accuracy_artefact"] == report["accuracy_keras"]
    else:
        assert report["accuracy_drop"] <= 0.01
        assert report["bytes"] < report["keras_bytes"] / 3
    assert report["class_names"] == [str(i) for i in range(10)]


@pytest.mark.slow
def test_export_json_prints_the_report(run, tmp_path):
    out = tmp_path / "m.onnx"
    result = cli("export", run, "--format", "onnx", "--out", out, "--json", "--images", "200")
    report = json.loads(result.stdout)
    assert report["artefact"] == str(out) and report["images"] == 200 and report["passed"]
    assert json.loads((tmp_path / "export.json").read_text())["m.onnx"] == report


@pytest.mark.slow
@pytest.mark.parametrize("suffix", ["tflite", "onnx"])
def test_predict_runs_the_exported_file_like_the_run(run, tmp_path, suffix):
    cli("export", run, "--format", suffix, "--out", tmp_path / f"model.{suffix}", "--images", "100")
    from cnnkit.data import load_splits
    from cnnkit.spec.parse import load_spec

    spec = load_spec(run / "spec.yaml")
    splits = load_splits(spec.data, seed=spec.train["seed"])
    pngs = []
    for i in range(5):
        pngs.append(tmp_path / f"digit{i}.png")
        Image.fromarray(splits.x_test[i, :, :, 0]).save(pngs[-1])
    keras_rows = json.loads(cli("predict", run, *pngs, "--json").stdout)
    exported_rows = json.loads(cli("predict", tmp_path / f"model.{suffix}", *pngs, "--json").stdout)
    for ours, theirs in zip(keras_rows, exported_rows):
        assert ours["class"] == theirs["class"]
        for a, b in zip(ours["top"], theirs["top"]):
            assert a["class"] == b["class"] and abs(a["probability"] - b["probability"]) < 1e-5


def _tamper(path: Path, fmt: str, model) -> None:
    """Add 5 to the first bias of the last Dense layer, found by its float32 bytes in the artefact."""
    bias = np.asarray(model.layers[-1].bias.numpy(), dtype=np.float32)
    changed = bias.copy()
    changed[0] += 5.0
    target = path / "variables" / "variables.data-00000-of-00001" if fmt == "savedmodel" else path
    data = target.read_bytes()
    # (a SavedModel stores each variable twice: once per endpoint that tracks it)
    assert data.count(bias.tobytes()) >= 1, f"the bias bytes are not in {target.name}"
    target.write_bytes(data.replace(bias.tobytes(), changed.tobytes()))


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["savedmodel", "tflite", "onnx"])
def test_a_corrupted_artefact_fails_parity_with_exit_4(run, tmp_path, monkeypatch, fmt):
    real = export_module.write_artefact

    def corrupting(model, fmt_, path, **kwargs):
        real(model, fmt_, path, **kwargs)
        _tamper(Path(path), fmt_, model)

    monkeypatch.setattr(export_module, "write_artefact", corrupting)
    out = tmp_path / ("model.savedmodel" if fmt == "savedmodel" else f"model.{fmt}")
    result = cli("export", run, "--format", fmt, "--out", out, ok=False)
    assert result.exit_code == 4, result.output
    (line,) = result.stderr.splitlines()
    if fmt == "savedmodel":  # TensorFlow checksums a SavedModel's variables: the changed bytes do not even load
        assert line.startswith(f"Error: parity failed: {out.name} cannot be run in its runtime: {out}: not a loadable")
        assert "Checksum does not match" in line
        return
    assert "FAILED" in result.stdout  # the table is still printed
    assert line.startswith(f"Error: parity failed: {out.name} differs from the .keras model by max |Δprob| ")
    assert line.endswith("on 1,000 images (hint: the artefact and its numbers are kept in " + f"{tmp_path})")
    report = json.loads((tmp_path / "export.json").read_text())[out.name]
    assert report["passed"] is False and report["max_abs_diff"] > 1e-4


@pytest.mark.slow
def test_int8_accuracy_drop_over_one_point_fails(run, tmp_path, monkeypatch):
    monkeypatch.setattr(export_module, "INT8_MAX_ACCURACY_DROP", -1.0)  # no artefact can pass: the check must say so
    result = cli("export", run, "--format", "tflite", "--quantize", "int8", "--out", tmp_path / "q.tflite", ok=False)
    assert result.exit_code == 4, result.output
    assert "Error: parity failed: q.tflite (int8) reaches accuracy " in result.stderr


# --- the notes' MNIST run ---------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.skipif(
    not DATA_DIR or not (Path(DATA_DIR) / "mnist.npz").exists(), reason="needs CNNKIT_DATA_DIR with mnist.npz"
)
def test_notes_mnist_run_exports_to_every_format_with_parity(tmp_path):
    out = tmp_path / "runs"
    cli(
        "train", REPO / "configs" / "mnist.yaml", "--epochs", "3", "--set", "data.max_samples=3000",
        "--no-pictures", "--out", out, "--data-dir", DATA_DIR,
    )  # fmt: skip
    run = (out / "latest").resolve()
    for fmt, quantize in ARTEFACTS:
        cli("export", run, *export_args(fmt, quantize), "--images", "2000")
    reports = json.loads((run / "export" / "export.json").read_text())
    assert set(reports) == set(ARTEFACTS.values())
    for name, report in reports.items():
        assert report["passed"], name
        assert report["images"] == 2000 and report["image_sources"] == {"test": 2000}  # the real MNIST test split
        assert report["accuracy_keras"] > 0.85, name
    for name in ("model.savedmodel", "model.tflite", "model.onnx"):
        assert reports[name]["max_abs_diff"] <= 1e-4 and reports[name]["top1_agreement"] == 1.0
    assert reports["model_int8.tflite"]["accuracy_drop"] <= 0.01
    assert reports["model_int8.tflite"]["bytes"] < reports["model.tflite"]["bytes"] / 3

"""CONTRIBUTING.md's two recipes, followed word for word: a toy layer type and a toy dataset type are registered
the documented way, and `summary` / `train` run with them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cnnkit.cli import app
from cnnkit.data import LOADERS
from cnnkit.data.splits import Splits
from cnnkit.spec import layers, shapes
from cnnkit.spec.argtypes import Float, Int, OptionalInt
from cnnkit.spec.datasets import DATASETS, DatasetKind
from cnnkit.spec.defaults import DATA_DEFAULTS
from cnnkit.spec.layers import Arg, register

ROOT = Path(__file__).resolve().parents[1]
SPEC = """\
input_shape: [8, 8, 1]
layers:
  - Conv2D: {filters: 4, kernel_size: 3, activation: relu}
  - GaussianDropout: {rate: 0.1}
  - Flatten
  - Dense: {units: 2, activation: softmax}
data: {dataset: stripes, count: 120}
train: {epochs: 1, batch_size: 32}
"""


def stripes_load(cfg: dict, ctx) -> Splits:
    """The toy loader (step 1): horizontal (class 0) or vertical (class 1) stripes, `count` images."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, cfg["count"]).astype(np.int64)
    rows = np.zeros((8, 8), np.uint8)
    rows[::2] = 255
    x = np.where(y[:, None, None] == 0, rows, rows.T)[..., None].astype(np.uint8)
    return Splits(x, y, None, None, None, None, class_names=["horizontal", "vertical"], source="stripes")


@pytest.fixture
def toy_registered():
    """Registers GaussianDropout and `stripes` as CONTRIBUTING.md says, and unregisters them afterwards."""
    registries = (layers.LAYERS, layers._BY_LOWER, DATASETS, LOADERS, DATA_DEFAULTS)
    saved = [dict(r) for r in registries]
    # Adding a layer type, step 1 (step 2: shapes.identity fits; step 3: it has no kernels).
    register(
        "GaussianDropout",
        {"rate": Arg(Float(0.0, 1.0, exclusive_max=True)), "seed": Arg(OptionalInt(), None)},
        shapes.identity,
        family="dropout / noise",
    )
    # Adding a dataset type, steps 2 and 3.
    DATASETS["stripes"] = DatasetKind("toy stripes, 8x8 grayscale", {"count": Int()})
    LOADERS["stripes"] = stripes_load
    DATA_DEFAULTS["count"] = 200  # how many images the toy makes
    yield
    for registry, before in zip(registries, saved):
        registry.clear()
        registry.update(before)


def test_the_recipes_are_each_at_most_ten_lines():
    text = (ROOT / "CONTRIBUTING.md").read_text()
    for title in ("## Adding a layer type", "## Adding a dataset type"):
        section = text.split(title)[1].split("\n## ")[0].split("tests/test_contributing.py")[0]
        assert 0 < len([line for line in section.splitlines() if line.strip()]) <= 10, title


def test_toy_layer_and_dataset_summary(toy_registered, tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(SPEC)
    result = CliRunner().invoke(app, ["summary", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert '"type": "GaussianDropout"' in result.stdout
    listed = CliRunner().invoke(app, ["datasets"])
    assert listed.exit_code == 0 and "stripes" in listed.stdout
    # the toy dataset's key belongs to it alone
    path.write_text(SPEC.replace("dataset: stripes", "dataset: digits"))
    refused = CliRunner().invoke(app, ["validate", str(path)])
    assert refused.exit_code == 2
    assert "data.count: dataset digits does not read `count` (hint: `count` is read by dataset stripes;" in (
        refused.stderr
    )


@pytest.mark.slow
def test_toy_layer_and_dataset_train(toy_registered, tmp_path):
    from cnnkit.run.train import TrainRequest, train

    path = tmp_path / "toy.yaml"
    path.write_text(SPEC)
    result = train(TrainRequest(spec_file=path, out=tmp_path / "runs", device="cpu"))
    assert result.epochs_run == 1
    assert (result.run_dir / "model.keras").exists()
    assert set(result.metrics["test"]) == {"loss", "accuracy"}

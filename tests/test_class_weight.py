"""train.class_weight: checked in the spec, turned into per-class weights, applied through the tf.data pipeline
(a sample-weight column), recorded in run.json and shown in evaluate's per-class table.

The effect test trains the same tiny net twice on a deliberately imbalanced digits set (class 3 keeps 6 of its
~145 training images; the test set stays balanced): weighting the minority class raises its test recall.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from clitools import cli

from cnnkit.errors import DataError
from cnnkit.run.class_weights import class_weights

MINORITY = 3
SPEC = """\
name: imbalanced
input_shape: [8, 8, 1]
layers:
  - Flatten
  - Dense: {units: 10, activation: softmax}
data: {dataset: npz, path: PATH, validation_split: 0}
train: {optimizer: {name: adam, learning_rate: 0.01}, epochs: 8, batch_size: 64, deterministic: true}
"""


def test_balanced_weights_are_sklearns():
    y = np.array([0] * 90 + [1] * 10)
    weights = class_weights("balanced", y, 2)
    assert weights.tolist() == pytest.approx([100 / (2 * 90), 100 / (2 * 10)])
    assert (weights[y]).reshape(2, -1).sum() == pytest.approx(100)  # every sample still counts once on average


def test_explicit_weights_default_to_one_and_unknown_classes_are_refused():
    assert class_weights({3: 4.0}, np.arange(5), 5).tolist() == [1, 1, 1, 4, 1]
    assert class_weights(None, np.arange(5), 5) is None
    with pytest.raises(DataError, match=r"train.class_weight names class 7, but the data has classes 0..4"):
        class_weights({7: 2.0}, np.arange(5), 5)


@pytest.mark.parametrize(
    "value, message",
    [
        (
            "bal",
            "train.class_weight: must be 'balanced' or a mapping of class id to weight such as {0: 1.0, 3: 4.0}. Received: 'bal'.",
        ),
        ("{0: -1}", "train.class_weight[0]: a class weight must be a positive number. Received: 0: -1."),
        ("{x: 2}", "train.class_weight.x: class ids are integers from 0 on. Received: 'x'."),
    ],
)
def test_bad_class_weight_is_a_one_line_spec_error(value, message):
    result = cli("validate", Path(__file__).parents[1] / "configs" / "digits.yaml", ok=True)
    assert result.exit_code == 0
    result = cli(
        "summary",
        Path(__file__).parents[1] / "configs" / "digits.yaml",
        "--set",
        f"train.class_weight={value}",
        ok=False,
    )
    assert result.exit_code == 2
    assert result.stderr == f"Error: --set train.class_weight={value}: {message}\n"


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory) -> Path:
    from sklearn.datasets import load_digits

    folder = tmp_path_factory.mktemp("imbalanced")
    digits = load_digits()
    x = np.rint(digits.images * (255 / 16)).astype(np.uint8)[..., None]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    test, train = order[:400], order[400:]
    minority = train[y[train] == MINORITY]
    train = np.concatenate([train[y[train] != MINORITY], minority[:6]])
    np.savez(folder / "digits.npz", x_train=x[train], y_train=y[train], x_test=x[test], y_test=y[test])
    spec = folder / "spec.yaml"
    spec.write_text(SPEC.replace("PATH", str(folder / "digits.npz")))
    return spec


def _train_and_evaluate(spec: Path, out: Path, *overrides) -> tuple[Path, dict]:
    cli("train", spec, "--no-pictures", "--out", out, *overrides)
    run = (out / "latest").resolve()
    report = json.loads(cli("evaluate", run, "--json").stdout)
    return run, report


@pytest.mark.slow
def test_weighting_the_minority_class_raises_its_recall(imbalanced, tmp_path):
    _, plain = _train_and_evaluate(imbalanced, tmp_path / "plain")
    run, weighted = _train_and_evaluate(imbalanced, tmp_path / "weighted", "--set", "train.class_weight=balanced")
    recall = {name: r["per_class"][MINORITY]["recall"] for name, r in (("plain", plain), ("weighted", weighted))}
    assert recall["weighted"] >= recall["plain"] + 0.2, recall
    # run.json records the setting and the weight each class got
    record = json.loads((run / "run.json").read_text())["class_weight"]
    assert record["setting"] == "balanced"
    assert record["weights"]["3"] > 10 * record["weights"]["0"]
    assert weighted["per_class"][MINORITY]["weight"] == record["weights"]["3"]
    assert "weight" not in plain["per_class"][MINORITY]
    # evaluate's table shows the training weight beside each class' recall
    table = cli("evaluate", run).stdout
    assert "train weight" in table
    assert f"{record['weights']['3']:.3g}" in table.split("Per-class scores")[1]

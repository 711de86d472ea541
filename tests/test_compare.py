"""`cnnkit compare` on three tiny digits runs (one net at 2 and 3 epochs, another net): the table, the JSON, the PNG
with a legend naming all three; globs; runs of different datasets refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from clitools import TINY, cli
from PIL import Image

CONV = (
    TINY.replace("name: tiny", "name: conv")
    .replace("data: {dataset: digits}", "data: {dataset: digits, max_samples: 400}")
    .replace("epochs: 3", "epochs: 2")
)
DENSE = """\
name: dense
input_shape: [8, 8, 1]
layers:
  - Flatten
  - Dense: {units: 32, activation: relu}
  - Dense: {units: 10, activation: softmax}
data: {dataset: digits, max_samples: 400}
train: {optimizer: {name: adam, learning_rate: 0.01}, epochs: 2, batch_size: 32}
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("compare")
    (folder / "conv.yaml").write_text(CONV)
    (folder / "dense.yaml").write_text(DENSE)
    cli("train", folder / "conv.yaml", "--no-pictures", "--out", folder / "runs")
    cli("train", folder / "conv.yaml", "--epochs", "3", "--no-pictures", "--out", folder / "runs")
    cli("train", folder / "dense.yaml", "--no-pictures", "--out", folder / "runs")
    return folder / "runs"


def names(runs: Path) -> list[str]:
    return sorted(p.name for p in runs.iterdir() if p.name != "latest")


@pytest.mark.slow
def test_compare_three_runs_table_json_and_picture(runs, tmp_path):
    picture = tmp_path / "compare.png"
    result = cli("compare", runs / "*", "--out", picture, "--json")  # the glob expanded by cnnkit, `latest` once
    data = json.loads(result.stdout)
    assert sorted(r["run"] for r in data["runs"]) == names(runs)
    by_name = {r["run"].split("-")[0] + str(r["epochs"]): r for r in data["runs"]}
    assert set(by_name) == {"conv2", "conv3", "dense2"}
    # only the keys that differ: the name, the layers, the epochs; never an unchanged key such as the optimizer
    keys = set(data["runs"][0]["differences"])
    assert "train.epochs" in keys and "layers[0]" in keys and "name" not in keys
    assert not any(k.startswith("train.optimizer") or k.startswith("data.") for k in keys)
    assert by_name["conv3"]["differences"]["train.epochs"] == "3"
    assert by_name["dense2"]["differences"]["layers[0]"] == "Flatten()"
    assert by_name["conv2"]["params"] == 8 * 9 + 8 + 4 * 4 * 8 * 10 + 10
    assert by_name["conv3"]["epochs"] == 3 and 1 <= by_name["conv3"]["best_epoch"] <= 3
    assert set(by_name["dense2"]["metrics"]) == {"train", "val", "test"}
    best = data["best"]["test accuracy"]
    top = max(r["metrics"]["test"]["accuracy"] for r in data["runs"])
    assert best and all(
        next(r for r in data["runs"] if r["run"] == b)["metrics"]["test"]["accuracy"] == top for b in best
    )
    # the picture: non-blank, its legend (read from the figure as drawn) names all three runs
    assert sorted(data["legend"]) == names(runs)
    with Image.open(picture) as img:
        grey = np.asarray(img.convert("L"), dtype=np.float64)
    assert grey.std() > 3


@pytest.mark.slow
def test_compare_table_marks_the_best(runs, tmp_path):
    run_dirs = [runs / n for n in names(runs)]
    result = cli("compare", *run_dirs, "--out", tmp_path / "c.png")
    text = result.stdout
    assert all(n in text for n in names(runs))
    differences = text.split("Spec differences")[1].split("runs on digits")[0]
    epochs_row = next(line for line in differences.splitlines() if "train.epochs" in line)
    assert [cell.strip() for cell in epochs_row.strip("│ ").split("│")] == ["train.epochs", "2", "3", "2"]
    assert "optimizer" not in differences
    assert text.split("best per column")[1].count("*") >= 7  # every metric column and the wall time has a winner
    assert f"wrote {tmp_path / 'c.png'}" in text


@pytest.mark.slow
def test_runs_of_different_datasets_are_refused(runs, tmp_path):
    other = tmp_path / "other"
    import shutil

    shutil.copytree(runs / names(runs)[0], other)
    spec = other / "spec.yaml"
    spec.write_text(spec.read_text().replace("dataset: digits", "dataset: mnist"))
    result = cli("compare", runs / names(runs)[1], other, "--out", tmp_path / "c.png", ok=False)
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: runs of different datasets cannot be compared: {names(runs)[1]} uses digits, other uses mnist\n"
    )


def test_compare_needs_two_runs(tmp_path):
    result = cli("compare", tmp_path / "nothing-*", ok=False)
    assert result.exit_code == 2 and result.stderr == f"Error: {tmp_path / 'nothing-*'} matches no run folder\n"

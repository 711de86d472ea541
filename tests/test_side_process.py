"""cnnkit.viz.side_process: the pictures drawn from arrays alone go to a second process while `train` draws Grad-CAM.

The child must draw exactly what the parent would, never import TensorFlow, draw only what DRAWERS allows, and
leave nothing behind when the parent gives up on it; when it cannot draw, the parent draws the same pictures itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from clitools import TINY, cli, write_spec

from cnnkit.errors import DataError
from cnnkit.viz import side_process
from cnnkit.viz.side_process import Drawing, SideProcess, read_job, write_job

NAMES = [str(d) for d in range(10)]


def drawings(folder: Path) -> list[Drawing]:
    """One drawing of each kind the child may draw, from small seeded arrays."""
    rng = np.random.default_rng(0)
    cm = rng.integers(0, 30, size=(10, 10))
    y = rng.integers(0, 10, size=6)
    return [
        Drawing(
            "curves",
            folder / "curves.png",
            options={"history": {"loss": [1.0, 0.5, 0.4], "val_loss": [1.1, 0.7, float("nan")]}, "monitor": "val_loss"},
        ),
        Drawing("confusion", folder / "confusion.png", {"cm": cm}, {"class_names": NAMES}),
        Drawing(
            "mistakes",
            folder / "misclassified.png",
            {
                "images": rng.integers(0, 256, size=(6, 8, 8, 1), dtype=np.uint8),
                "y_true": y,
                "y_pred": (y + 1) % 10,
                "confidence": np.linspace(0.9, 0.4, 6),
            },
            {"class_names": NAMES, "wrong": 40, "total": 300},
        ),
        Drawing("filters", folder / "filters.png", {"kernel": rng.normal(size=(3, 3, 1, 8))}, {"title": "layer 0"}),
    ]


def test_a_job_reads_back_as_written(tmp_path):
    written = drawings(tmp_path)
    read = read_job(write_job(written, tmp_path / "job.npz"))
    assert [(d.kind, d.out, sorted(d.arrays)) for d in read] == [(d.kind, d.out, sorted(d.arrays)) for d in written]
    for before, after in zip(written, read):
        for name, array in before.arrays.items():
            np.testing.assert_array_equal(after.arrays[name], array)
    assert read[0].options["history"]["loss"] == [1.0, 0.5, 0.4]
    assert np.isnan(read[0].options["history"]["val_loss"][2])
    assert read[1].options == {"class_names": NAMES}


def test_the_child_draws_the_same_pictures_the_parent_would(tmp_path):
    with SideProcess() as side:
        side.submit(drawings(tmp_path / "child"))
        paths = side.finish()
    assert side.drawn_by_child
    here = [d.draw() for d in drawings(tmp_path / "parent")]
    assert [p.name for p in paths] == [p.name for p in here]
    for theirs, ours in zip(paths, here):
        assert theirs.read_bytes() == ours.read_bytes(), theirs.name


def test_the_parent_draws_what_a_failed_child_did_not(tmp_path, monkeypatch):
    monkeypatch.setattr(SideProcess, "command", (sys.executable, "-c", "import sys; sys.exit(3)"))
    with SideProcess() as side:
        side.submit(drawings(tmp_path))
        paths = side.finish()
    assert not side.drawn_by_child
    assert [p.name for p in paths] == ["curves.png", "confusion.png", "misclassified.png", "filters.png"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_no_interpreter_to_start_means_drawing_here(tmp_path, monkeypatch):
    monkeypatch.setattr(SideProcess, "command", (str(tmp_path / "no-such-python"),))
    with SideProcess() as side:
        side.submit(drawings(tmp_path))
        paths = side.finish()
    assert not side.drawn_by_child and all(p.exists() for p in paths)


def test_an_error_in_a_drawing_surfaces_as_it_would_in_one_process(tmp_path):
    bad = Drawing("confusion", tmp_path / "confusion.png", {"cm": np.zeros((2, 3))}, {"class_names": None})
    with pytest.raises(DataError, match=r"confusion matrix must be square \(K, K\), got shape \(2, 3\)"):
        with SideProcess() as side:
            side.submit([bad])
            side.finish()
    assert not side.drawn_by_child


def test_the_child_draws_only_what_drawers_allows(tmp_path):
    job = write_job(
        [Drawing("confusion", tmp_path / "x.png", {"cm": np.eye(2)}, {"class_names": None})], tmp_path / "j"
    )
    listing = dict(np.load(job, allow_pickle=False))
    listing[side_process.JOB_KEY] = np.array(str(listing[side_process.JOB_KEY]).replace('"confusion"', '"__import__"'))
    np.savez(tmp_path / "evil.npz", **listing)
    with pytest.raises(KeyError, match="__import__"):
        for drawing in read_job(tmp_path / "evil.npz"):
            drawing.draw()
    assert not (tmp_path / "x.png").exists()


def test_the_child_never_imports_tensorflow(tmp_path, monkeypatch):
    check = (
        "import sys; from cnnkit.viz import side_process as s; rc = s.main(); "
        "sys.exit(rc if not {'tensorflow', 'keras'} & set(sys.modules) else 9)"
    )
    monkeypatch.setattr(SideProcess, "command", (sys.executable, "-c", check))
    with SideProcess() as side:
        side.submit(drawings(tmp_path))
        side.finish()
    assert side.drawn_by_child


def test_leaving_early_stops_the_child_and_removes_the_job(tmp_path, monkeypatch):
    monkeypatch.setattr(SideProcess, "command", (sys.executable, "-c", "import time; time.sleep(120)"))
    with pytest.raises(KeyboardInterrupt):
        with SideProcess() as side:
            side.submit(drawings(tmp_path))
            raise KeyboardInterrupt
    assert side._child.poll() is not None  # stopped, not left sleeping
    assert not side._folder.exists()


@pytest.mark.slow  # trains
def test_train_draws_the_array_pictures_in_the_side_process(tmp_path, monkeypatch):
    finished = []
    finish = SideProcess.finish

    def spy(self):
        paths = finish(self)
        finished.append((self.drawn_by_child, [p.name for p in paths]))
        return paths

    monkeypatch.setattr(SideProcess, "finish", spy)
    spec = write_spec(tmp_path, TINY)
    cli("train", spec, "--epochs", "1", "--out", tmp_path / "runs")
    assert finished == [(True, ["curves.png", "confusion.png", "misclassified.png"])]
    plots = tmp_path / "runs" / "latest" / "plots"
    for name in ("curves.png", "confusion.png", "misclassified.png", "filters.png", "gradcam_misclassified.png"):
        assert (plots / name).stat().st_size > 1000, name
    assert not list(plots.glob(".*.tmp"))

"""Shared fixtures: a `report` whose lines are printed in pytest's terminal summary, runs trained once per session
for the files that only read a trained run, and `deterministic_ops_restored`."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from cnnkit.backend import choose_cpu_kernels

# Tests import TensorFlow directly too: give them the CPU kernels cnnkit's own import chooses, before any import.
choose_cpu_kernels()

_REPORT = pytest.StashKey[list]()
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def report(request) -> list:
    """Append lines here (e.g. how many fuzz cases ran); they are shown at the end of the run."""
    return request.config.stash.setdefault(_REPORT, [])


def pytest_terminal_summary(terminalreporter, config):
    for line in config.stash.get(_REPORT, []):
        terminalreporter.write_line(line)


@pytest.fixture
def deterministic_ops_restored():
    """enable_op_determinism() is process-wide: switch it off again for the tests that follow."""
    yield
    from tensorflow.python.framework import config

    config.disable_op_determinism()


@dataclass(frozen=True)
class TrainedRun:
    run: Path  # the run folder
    out: Path  # the --out folder holding it and `latest`
    stdout: str  # what `cnnkit train` printed

    def copy(self, dest: Path) -> Path:
        """A private copy of the --out folder (`latest` included) under `dest`; returns the copied run folder."""
        shutil.copytree(self.out, dest, symlinks=True)
        return dest / self.run.name


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> TrainedRun:
    """`cnnkit train configs/digits.yaml --epochs 3` (with pictures), trained once per session: test_train.py checks
    the folder it wrote, test_evaluate.py evaluates and plots it. Read-only: a test that writes works on .copy()."""
    from clitools import cli

    out = tmp_path_factory.mktemp("digits") / "runs"
    result = cli("train", REPO / "configs" / "digits.yaml", "--epochs", "3", "--out", out)
    return TrainedRun(run=(out / "latest").resolve(), out=out, stdout=result.stdout)


@pytest.fixture(scope="session")
def rgb_digits_run(tmp_path_factory) -> Path:
    """A CIFAR-style 3-channel run, trained once per session with pictures: real digits tinted into RGB (each class
    its own colour cast), 3 epochs. test_train.py checks its colour pictures, test_report.py its report.
    Read-only."""
    import numpy as np
    from clitools import cli, write_spec
    from sklearn.datasets import load_digits

    folder = tmp_path_factory.mktemp("rgb")
    digits = load_digits()
    grey = (digits.images * (255 / 16)).astype(np.uint8)
    tint = np.random.default_rng(0).uniform(0.4, 1.0, size=(10, 3))
    rgb = (grey[..., None] * tint[digits.target][:, None, None, :]).astype(np.uint8)
    np.savez(
        folder / "rgb.npz",
        x_train=rgb[:1400],
        y_train=digits.target[:1400],
        x_test=rgb[1400:],
        y_test=digits.target[1400:],
    )
    spec = write_spec(
        folder,
        f"""\
name: rgb-digits
input_shape: [8, 8, 3]
layers:
  - Conv2D: {{filters: 16, kernel_size: 3, padding: same, activation: relu}}
  - MaxPooling2D
  - Flatten
  - Dense: {{units: 10, activation: softmax}}
data: {{dataset: npz, path: {folder / "rgb.npz"}}}
train: {{epochs: 3, batch_size: 32}}
""",
    )
    cli("train", spec, "--out", folder / "runs")
    return (folder / "runs" / "latest").resolve()

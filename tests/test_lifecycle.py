"""A run's life: resume through any path, exact replay, crash-consistent checkpoints, signals, resume with changes.

In-process crashes raise `Killed` (a BaseException, like SIGKILL nothing catches it) from inside one of train()'s
writes, which leaves the folder as a SIGKILL there would. Real signals go to a `cnnkit train` subprocess.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from clitools import cli
from typer.testing import CliRunner

from cnnkit.cli import app

EPOCHS = 4
# Dropout (its RNG state), EarlyStopping and ReduceLROnPlateau (their counters, the learning rate): all replayed.
SPEC = f"""\
name: replay
input_shape: [8, 8, 1]
layers:
  - Conv2D: {{filters: 8, kernel_size: 3, padding: same, activation: relu}}
  - MaxPooling2D: {{pool_size: 2}}
  - Flatten
  - Dropout: {{rate: 0.2}}
  - Dense: {{units: 10, activation: softmax}}
data: {{dataset: digits, max_samples: 400}}
train:
  optimizer: adam
  epochs: {EPOCHS}
  batch_size: 32
  seed: 5
  deterministic: true
  early_stopping: {{patience: 5}}
  reduce_lr_on_plateau: {{patience: 1, factor: 0.5, min_delta: 0.1}}
"""


class Killed(BaseException):
    """Stands in for SIGKILL."""


def kill_on(monkeypatch, target: str, when) -> None:
    module_name, name = target.rsplit(".", 1)
    module = sys.modules[module_name]
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        if when(*args, **kwargs):
            raise Killed(f"{name}{args[:1]}")
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)


def nth_call(n: int):
    calls = []

    def when(*args, **kwargs):
        calls.append(args)
        return len(calls) == n

    return when


def run_dirs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir() and not p.is_symlink())


def info(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


def epoch_lines(stdout: str) -> list[str]:
    return [line.split()[1] for line in stdout.splitlines() if line.startswith("epoch ")]


def train_until_killed(spec: Path, out: Path) -> Path:
    with pytest.raises(Killed):
        CliRunner().invoke(app, ["train", str(spec), "--no-pictures", "--out", str(out)])
    (run,) = run_dirs(out)
    return run


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "replay.yaml"
    path.write_text(SPEC)
    return path


@pytest.fixture(scope="module")
def uninterrupted(spec, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("whole")
    cli("train", spec, "--no-pictures", "--out", out)
    (run,) = run_dirs(out)
    return run


# ------------------------------------------------------------------------------------------------ exact replay
@pytest.mark.slow
@pytest.mark.parametrize("kill_at", [1, 3])  # the first checkpoint write; the one after epoch 2 is complete
def test_resumed_run_is_bit_identical_to_the_uninterrupted_one(kill_at, spec, uninterrupted, tmp_path, monkeypatch):
    import cnnkit.run.checkpoint

    kill_on(monkeypatch, "cnnkit.run.checkpoint.atomic_write", nth_call(kill_at))  # state-E.npz of epoch kill_at
    run = train_until_killed(spec, tmp_path / "runs")
    monkeypatch.undo()
    assert cnnkit.run.checkpoint.read_manifest(run) is None if kill_at == 1 else True
    result = cli("train", "--resume", tmp_path / "runs" / "latest", "--no-pictures")
    if kill_at == 1:  # killed during the very first checkpoint write: a truthful note, not a disk-full hint
        assert f"resuming {run} (was running when its process ended): no epoch was saved yet" in result.stdout
        assert epoch_lines(result.stdout)[0] == f"1/{EPOCHS}"
    else:
        assert epoch_lines(result.stdout)[0] == f"2/{EPOCHS}"
    assert info(run)["status"] == "completed"
    assert info(run)["weights_sha256"] == info(uninterrupted)["weights_sha256"]
    assert (run / "history.json").read_text() == (uninterrupted / "history.json").read_text()
    assert not (run / "checkpoint").exists() and not [p for p in run.iterdir() if p.name.startswith(".")]

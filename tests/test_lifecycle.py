"""A run's life: resume through any path, exact replay, crash-consistent checkpoints, signals, resume with changes.

In-process crashes raise `Killed` (a BaseException, like SIGKILL nothing catches it) from inside one of train()'s
writes, which leaves the folder as a SIGKILL there would. Real signals go to a `cnnkit train` subprocess.
"""

from __future__ import annotations

import importlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
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
    module = importlib.import_module(module_name)
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


@pytest.mark.slow
def test_a_mixed_precision_run_resumes_bit_identical(tmp_path, monkeypatch):
    """The checkpoint of a mixed-precision run holds its optimizer's state too (mixed_float16: the loss-scale
    optimizer's scale and counter), and a resumed run takes the policy it started with from run.json."""
    policy = "mixed_float16"  # the one whose optimizer has state of its own; bfloat16 needs no loss scaling
    spec = tmp_path / "mixed.yaml"
    spec.write_text(SPEC.replace("  deterministic: true", f"  deterministic: true\n  precision: {policy}"))
    cli("train", spec, "--no-pictures", "--out", tmp_path / "whole")
    (whole,) = run_dirs(tmp_path / "whole")
    kill_on(monkeypatch, "cnnkit.run.checkpoint.atomic_write", nth_call(3))  # after epoch 2's checkpoint
    run = train_until_killed(spec, tmp_path / "runs")
    monkeypatch.undo()
    result = cli("train", "--resume", run, "--no-pictures")
    assert epoch_lines(result.stdout)[0] == f"2/{EPOCHS}"
    assert info(run)["precision"]["policy"] == policy
    assert info(run)["weights_sha256"] == info(whole)["weights_sha256"]
    assert (run / "history.json").read_text() == (whole / "history.json").read_text()


def pasted(hint: str) -> list[str]:
    """The command a hint or note tells the user to run, as argv after `cnnkit`."""
    command = hint[hint.index("cnnkit train") :].rstrip(")\n")
    return shlex.split(command)[1:]


# ------------------------------------------------------------------------------------ resume through any path
@pytest.mark.slow
def test_resume_through_the_folder_runs_latest_or_runs(spec, tmp_path, monkeypatch):
    """Killed three times (after epochs 1, 2 and 3 were saved), resumed each time through another path: the
    folder, runs/latest, runs. `latest` always points at the real folder, and the run ends complete."""
    out = tmp_path / "runs"
    kill_on(monkeypatch, "cnnkit.run.checkpoint.atomic_write", nth_call(3))  # epoch 2's state
    run = train_until_killed(spec, out)
    for path in (run, out / "latest", out):
        monkeypatch.undo()
        kill_on(monkeypatch, "cnnkit.run.checkpoint.atomic_write", nth_call(3))  # 2 epochs later
        with pytest.raises(Killed):
            CliRunner().invoke(app, ["train", "--resume", str(path), "--no-pictures"])
        assert os.readlink(out / "latest") == run.name and run_dirs(out) == [run]
        assert info(run)["status"] == "running"
    monkeypatch.undo()
    result = cli("train", "--resume", out / "latest", "--no-pictures")
    # Killed the last time while saving the finished state: every epoch is saved, none is trained again.
    assert f"resuming {run} (was running when its process ended): all {EPOCHS} epochs are saved" in result.stdout
    assert epoch_lines(result.stdout) == []
    assert info(run)["status"] == "completed" and len(info(run)["resumed"]) == 4
    assert os.readlink(out / "latest") == run.name
    again = cli("train", "--resume", out / "latest", ok=False)
    assert again.stderr == f"Error: run {run} already completed all its epochs; nothing to resume\n"
    assert cli("evaluate", out / "latest").exit_code == 0 and cli("evaluate", out).exit_code == 0


def test_resume_refuses_other_changes_and_a_dangling_latest(tmp_path):
    run = tmp_path / "runs" / "r-1"
    run.mkdir(parents=True)
    (run / "spec.yaml").write_text(SPEC)
    result = cli("train", "--resume", run, "--set", "train.batch_size=8", ok=False)
    assert (result.exit_code, result.stderr) == (
        2,
        "Error: --resume --set train.batch_size=8: a resumed run may change only train.epochs, "
        "train.optimizer.learning_rate, train.early_stopping, train.reduce_lr_on_plateau (hint: train a new run "
        "to change anything else)\n",
    )
    result = cli("train", "--resume", run, "--seed", "3", ok=False)
    assert result.stderr == (
        "Error: --resume continues a run with its own seed and strategy; drop --seed and --strategy\n"
    )
    os.symlink("gone", tmp_path / "runs" / "latest")
    result = cli("train", "--resume", tmp_path / "runs" / "latest", ok=False)
    assert result.stderr == (
        f"Error: {tmp_path / 'runs' / 'latest'} points to gone, which does not exist (hint: pass a folder made by "
        "`cnnkit train`)\n"
    )


# --------------------------------------------------------------------------------------- resume with changes
NANS = """\
name: nans
input_shape: [8, 8, 1]
layers:
  - Conv2D: {filters: 4, kernel_size: 3, activation: relu}
  - Flatten
  - Dense: {units: 10}
data: {dataset: digits, max_samples: 400}
train:
  optimizer: {name: sgd, learning_rate: 1.0}
  lr_schedule: {name: exponential_decay, decay_steps: 8, decay_rate: 30, staircase: true}
  loss: mean_squared_error
  epochs: 2
  batch_size: 32
"""


@pytest.mark.slow
def test_the_nan_hint_is_a_command_that_works(tmp_path):
    """Epoch 2's learning rate is 30x epoch 1's: NaN. The hint's command resumes after epoch 1 with a lower one."""
    path = tmp_path / "nans.yaml"
    path.write_text(NANS)
    result = cli("train", path, "--no-pictures", "--out", tmp_path / "runs", ok=False)
    (run,) = run_dirs(tmp_path / "runs")
    assert result.exit_code == 3
    assert result.stderr.endswith(
        f"(hint: lower the learning rate (or add BatchNormalization): cnnkit train --resume {run} --set "
        "train.optimizer.learning_rate=0.1)\n"
    )
    assert info(run)["status"] == "failed: the loss became NaN/inf in epoch 2"
    resumed = cli(*pasted(result.stderr), "--no-pictures")
    assert epoch_lines(resumed.stdout) == ["2/2"]
    record = info(run)
    assert record["status"] == "completed"
    assert record["resumed"][-1]["set"] == ["train.optimizer.learning_rate=0.1"]
    assert record["resumed"][-1]["after_epoch"] == 1
    assert "learning_rate: 0.1" in (run / "spec.yaml").read_text()


@pytest.mark.slow
def test_resume_with_more_epochs_and_a_new_learning_rate_keeps_the_optimizer_state(spec, tmp_path, monkeypatch):
    kill_on(monkeypatch, "cnnkit.run.checkpoint.atomic_write", nth_call(5))  # epoch 3's state
    run = train_until_killed(spec, tmp_path / "runs")
    monkeypatch.undo()
    before = json.loads((run / "history.json").read_text())
    result = cli(
        "train", "--resume", run, "--epochs", "5", "--set", "train.optimizer.learning_rate=0.0005", "--no-pictures"
    )
    assert epoch_lines(result.stdout) == ["3/5", "4/5", "5/5"]
    history = json.loads((run / "history.json").read_text())
    assert history["loss"][:2] == before["loss"][:2] and len(history["loss"]) == 5  # epoch 3 redone
    # The new rate from epoch 3 on (the plateau callback may halve it later); Adam's moments carried over.
    assert history["learning_rate"][2] == pytest.approx(0.0005)
    assert info(run)["resumed"][0]["set"] == ["train.optimizer.learning_rate=0.0005", "train.epochs=5"]


# ------------------------------------------------------------------------------------------------------ signals
LONG_EPOCHS = """\
name: long
input_shape: [8, 8, 1]
layers:
  - Conv2D: {filters: 16, kernel_size: 3, padding: same, activation: relu}
  - Flatten
  - Dense: {units: 10, activation: softmax}
data: {dataset: digits}
train: {optimizer: adam, epochs: 2, batch_size: 2}
"""


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_epoch_stops_within_5_s_and_the_printed_command_resumes(signum, tmp_path):
    """~460 steps an epoch, 2 epochs: the signal lands mid-epoch 2, the run stops after the current step, and the
    command it prints redoes epoch 2 and completes the run."""
    spec = tmp_path / "long.yaml"
    spec.write_text(LONG_EPOCHS)
    out = tmp_path / "runs"
    with open(tmp_path / "stderr", "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cnnkit", "train", str(spec), "--no-pictures", "--out", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            cwd=tmp_path,
        )
        try:
            deadline = time.monotonic() + 240
            while not list(out.glob("*/checkpoint/manifest.json")):  # epoch 1 is saved
                assert proc.poll() is None, (tmp_path / "stderr").read_text()
                assert time.monotonic() < deadline, "no epoch finished within 240 s"
                time.sleep(0.05)
            time.sleep(0.5)
            sent = time.monotonic()
            proc.send_signal(signum)
            code = proc.wait(timeout=60)
            took = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
    (run,) = run_dirs(out)
    stderr = (tmp_path / "stderr").read_text()
    assert code == 128 + signum and took < 5, (code, took, stderr)
    assert stderr == (
        f"Error: interrupted after 1 completed epoch(s); progress is saved in {run} (hint: resume with: cnnkit "
        f"train --resume {run})\n"
    )
    assert info(run)["status"] == "interrupted"
    # The interrupted run has no model.keras: evaluate uses best.keras and says so in one line.
    evaluation = cli("evaluate", out / "latest")
    assert evaluation.stderr == (
        f"note: {out / 'latest'} has no model.keras (status: interrupted); using best.keras, its best epoch so far\n"
    )
    assert evaluation.stdout.splitlines()[0].endswith("best.keras")  # the header names the model file used
    resumed = cli(*pasted(stderr), "--no-pictures")
    assert epoch_lines(resumed.stdout) == ["2/2"] and info(run)["status"] == "completed"

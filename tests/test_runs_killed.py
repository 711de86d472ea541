"""Killed and broken runs: whatever moment a training process dies at, its run folder stays consistent and
`cnnkit train --resume RUN` finishes it.

* The same crash at chosen moments, in-process: a `Killed` exception (a BaseException, like the signal nothing
  catches it) raised from inside one of train()'s writes, which leaves the folder exactly as a SIGKILL there would.
* A damaged checkpoint (which no kill can make: every file is renamed into place whole) is reported, not trained
  over.
* A full disk / read-only folder: one `Error:` line, exit 2, run.json says `failed: ...`, and nothing
  half-written presented as complete.

Decided and pinned: a folder killed before its spec.yaml was written cannot be resumed (there is no spec to resume
with); --resume says so in one line. A folder with spec.yaml but no run.json yet resumes normally.

Real SIGKILLs at random moments are test_chaos.py's: it checks the folder after every kill with the same
runchecks.assert_consistent, then resumes and requires bit-identical weights.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from clitools import cli
from runchecks import assert_consistent, rows, status
from typer.testing import CliRunner

from cnnkit.cli import app
from cnnkit.run.checkpoint import read_manifest

# Every test here trains (and interrupts) real runs.
pytestmark = pytest.mark.slow

EPOCHS = 4
SPEC = f"""\
name: killme
input_shape: [8, 8, 1]
layers:
  - Conv2D: {{filters: 16, kernel_size: 3, padding: same, activation: relu}}
  - MaxPooling2D: {{pool_size: 2}}
  - Flatten
  - Dense: {{units: 10, activation: softmax}}
data: {{dataset: digits, max_samples: 400}}
train: {{optimizer: adam, epochs: {EPOCHS}, batch_size: 32}}
"""
ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
HINT = "(hint: free disk space or check the folder's permissions)"


class Killed(BaseException):
    """Stands in for SIGKILL: no `except Exception` (nor train()'s own handlers) stops it."""


def the_run(out: Path) -> Path:
    (run,) = [p for p in out.iterdir() if p.is_dir() and not p.is_symlink()]
    return run


def assert_resumes(run: Path) -> str:
    """--resume finishes the run (or says it is already finished) with the full epoch count."""
    if status(run) == "completed":
        result = cli("train", "--resume", run, ok=False)
        assert (result.exit_code, result.stderr) == (
            2,
            f"Error: run {run} already completed all its epochs; nothing to resume\n",
        )
    else:
        result = cli("train", "--resume", run)
    assert status(run) == "completed" and rows(run) == EPOCHS
    assert not (run / "checkpoint").exists()
    assert_consistent(run, EPOCHS)
    return result.stdout


def epoch_lines(stdout: str) -> list[str]:
    return [line.split()[1] for line in stdout.splitlines() if line.startswith("epoch ")]


@pytest.fixture
def spec(tmp_path) -> Path:
    path = tmp_path / "killme.yaml"
    path.write_text(SPEC)
    return path


# ------------------------------------------------------------------------- the same crash, at chosen moments
def crash_on(monkeypatch, target: str, when) -> None:
    """Replace `module.function` by one that raises Killed when `when(*args)` is true, else runs the original."""
    module_name, name = target.rsplit(".", 1)
    module = sys.modules[module_name]
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        if when(*args):
            raise Killed(f"{name}{args[:1]}")
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)


def nth_call(n: int):
    calls = []

    def when(*args):
        calls.append(args)
        return len(calls) == n

    return when


def train_until_killed(spec: Path, out: Path) -> Path:
    with pytest.raises(Killed):
        CliRunner().invoke(app, ["train", str(spec), "--no-pictures", "--out", str(out)])
    return the_run(out)


def test_killed_before_spec_yaml_cannot_be_resumed(tmp_path, spec, monkeypatch):
    import cnnkit.run.train  # noqa: F401  (it writes spec.yaml with its own atomic_write)

    crash_on(monkeypatch, "cnnkit.run.train.atomic_write", lambda path, *rest: Path(path).name == "spec.yaml")
    run = train_until_killed(spec, tmp_path / "runs")
    monkeypatch.undo()
    assert list(run.iterdir()) == []
    result = cli("train", "--resume", run, ok=False)
    assert (result.exit_code, result.stderr) == (
        2,
        f"Error: {run} is not a cnnkit run folder (no spec.yaml) (hint: pass a folder made by `cnnkit train`)\n",
    )


def test_killed_before_run_json_resumes(tmp_path, spec, monkeypatch):
    import cnnkit.run.train  # noqa: F401

    crash_on(monkeypatch, "cnnkit.run.train.write_json", nth_call(1))
    run = train_until_killed(spec, tmp_path / "runs")
    monkeypatch.undo()
    assert {p.name for p in run.iterdir()} == {"spec.yaml"}
    assert epoch_lines(assert_resumes(run))[0] == f"1/{EPOCHS}"


def test_killed_between_history_and_checkpoint_rewrites_that_epoch(tmp_path, spec, monkeypatch):
    """Epoch 2's history row is being written; its checkpoint is not. Resume redoes epoch 2, and no row is missing."""
    import cnnkit.run.train  # noqa: F401

    crash_on(monkeypatch, "cnnkit.run.recording.write_history", nth_call(2))
    run = train_until_killed(spec, tmp_path / "runs")
    monkeypatch.undo()
    assert rows(run) == 1 and status(run) == "running"
    assert read_manifest(run)["epoch"] == 1
    assert_consistent(run, EPOCHS)
    assert epoch_lines(assert_resumes(run)) == [f"{e}/{EPOCHS}" for e in range(2, EPOCHS + 1)]


@pytest.mark.parametrize("moment", ["saving model.keras", "marking run.json completed"])
def test_killed_after_the_last_epoch_does_not_train_again(moment, tmp_path, spec, monkeypatch):
    import cnnkit.run.train  # noqa: F401

    if moment == "saving model.keras":
        crash_on(monkeypatch, "cnnkit.run.recording.save_model", lambda model, path, *twin: path.name == "model.keras")
    else:
        crash_on(
            monkeypatch,
            "cnnkit.run.train.write_json",
            lambda path, data, *rest: path.name == "run.json" and data.get("status") == "completed",
        )
    run = train_until_killed(spec, tmp_path / "runs")
    monkeypatch.undo()
    history = (run / "history.json").read_text()
    assert rows(run) == EPOCHS and status(run) == "running" and read_manifest(run)["finished"]
    assert_consistent(run, EPOCHS)
    stdout = assert_resumes(run)
    assert epoch_lines(stdout) == [] and (run / "history.json").read_text() == history  # nothing retrained


# ------------------------------------------------------------------------------------- damaged checkpoints
@pytest.fixture(scope="module")
def killed_after_three_epochs(tmp_path_factory) -> Path:
    """Killed while writing epoch 3's history: 2 rows; checkpoint/ holds epoch 2's state."""
    import cnnkit.run.train  # noqa: F401

    folder = tmp_path_factory.mktemp("killed")
    (folder / "killme.yaml").write_text(SPEC)
    with pytest.MonkeyPatch.context() as monkeypatch:
        crash_on(monkeypatch, "cnnkit.run.recording.write_history", nth_call(3))
        run = train_until_killed(folder / "killme.yaml", folder / "runs")
    assert {p.name for p in (run / "checkpoint").iterdir()} == {"manifest.json", "state-2.npz"} and rows(run) == 2
    return run


@pytest.fixture
def killed_run(killed_after_three_epochs, tmp_path) -> Path:
    """A fresh copy of that folder for each test to break and resume."""
    return Path(shutil.copytree(killed_after_three_epochs, tmp_path / killed_after_three_epochs.name))


def test_killed_run_resumes_after_its_last_complete_epoch(killed_run):
    first_row = json.loads((killed_run / "history.json").read_text())["loss"][0]
    assert epoch_lines(assert_resumes(killed_run)) == [f"3/{EPOCHS}", f"4/{EPOCHS}"]
    assert json.loads((killed_run / "history.json").read_text())["loss"][0] == first_row


@pytest.mark.parametrize(
    "damage, why",
    [
        ("truncated state", "File is not a zip file"),
        ("torn manifest", "Expecting value: line 1 column 1 (char 0)"),
        ("state missing", "the state it names, 'state-2.npz', is missing"),
    ],
)
def test_a_damaged_checkpoint_is_reported_not_trained_over(damage, why, killed_run):
    """No kill makes these (every checkpoint file is renamed into place whole); a disk fault or a hand might."""
    folder = killed_run / "checkpoint"
    state = folder / "state-2.npz"
    if damage == "truncated state":
        state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    elif damage == "torn manifest":
        (folder / "manifest.json").write_text("")
    else:
        state.unlink()
    broken = state if damage == "truncated state" else folder / "manifest.json"
    result = cli("train", "--resume", killed_run, ok=False)
    assert (result.exit_code, result.stderr) == (
        2,
        f"Error: {broken} is unreadable ({why}); the run's checkpoint is damaged (hint: remove {folder} to train "
        "this run again from epoch 1)\n",
    )
    shutil.rmtree(folder)  # the hint, followed
    assert epoch_lines(assert_resumes(killed_run))[0] == f"1/{EPOCHS}"


# --------------------------------------------------------------------------------- full disk, read-only folder
def _fail_fsync_from(monkeypatch, n: int) -> None:
    """os.fsync fails with ENOSPC from its n-th call on (atomic_write fsyncs every run file before renaming it)."""
    calls = []
    original = os.fsync

    def fsync(fd):
        calls.append(fd)
        if len(calls) >= n:
            raise ENOSPC
        return original(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def assert_nothing_presented_as_complete(run: Path) -> None:
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")]  # temp files are cleaned up
    assert not (run / "model.keras").exists() and not (run / "metrics.json").exists()
    assert_consistent(run, EPOCHS)


def test_full_disk_at_the_start(tmp_path, spec, monkeypatch):
    _fail_fsync_from(monkeypatch, 1)
    result = cli("train", spec, "--out", tmp_path / "runs", ok=False)
    run = the_run(tmp_path / "runs")
    assert (result.exit_code, result.stderr) == (
        2,
        f"Error: cannot write {run / 'spec.yaml'}: No space left on device {HINT}\n",
    )
    assert list(run.iterdir()) == []


def test_full_disk_mid_training_then_resume(tmp_path, spec, monkeypatch):
    # spec.yaml, run.json, epoch 1's history.json, .csv, state and manifest, then epoch 2's history.json
    _fail_fsync_from(monkeypatch, 7)
    result = cli("train", spec, "--no-pictures", "--out", tmp_path / "runs", ok=False)
    run = the_run(tmp_path / "runs")
    assert (result.exit_code, result.stderr) == (
        2,
        f"Error: cannot write {run / 'history.json'}: No space left on device (hint: free disk space, then: "
        f"cnnkit train --resume {run})\n",
    )
    assert rows(run) == 1
    # run.json is not left saying `running` (its fsynced write failed too; a plain one still fitted)
    assert status(run) == f"failed: cannot write {run / 'history.json'}: No space left on device"
    assert_nothing_presented_as_complete(run)
    monkeypatch.undo()  # space freed
    assert epoch_lines(assert_resumes(run))[0] == f"2/{EPOCHS}"


def test_full_disk_while_keras_saves_a_model(tmp_path, spec, monkeypatch):
    import keras

    def save(model, filepath, *args, **kwargs):  # a zip cut short by the full disk
        Path(filepath).write_bytes(b"PK\x03\x04 cut short")
        raise ENOSPC

    monkeypatch.setattr(keras.Model, "save", save)
    result = cli("train", spec, "--out", tmp_path / "runs", ok=False)
    run = the_run(tmp_path / "runs")
    assert (result.exit_code, result.stderr) == (
        2,
        f"Error: cannot write {run / 'best.keras'}: No space left on device (hint: free disk space, then: "
        f"cnnkit train --resume {run})\n",
    )
    assert not (run / "best.keras").exists() and status(run).startswith("failed: cannot write")
    assert_nothing_presented_as_complete(run)


def test_full_disk_while_a_checkpoint_is_written(tmp_path, spec, monkeypatch):
    import numpy

    def savez(*args, **kwargs):
        raise ENOSPC

    monkeypatch.setattr(numpy, "savez", savez)
    result = cli("train", spec, "--out", tmp_path / "runs", ok=False)
    run = the_run(tmp_path / "runs")
    state = run / "checkpoint" / "state-1.npz"
    assert (result.exit_code, result.stderr) == (
        2,
        f"Error: cannot write {state}: No space left on device (hint: free disk space, then: cnnkit train "
        f"--resume {run})\n",
    )
    assert status(run) == f"failed: cannot write {state}: No space left on device"
    assert_nothing_presented_as_complete(run)
    monkeypatch.undo()
    assert_resumes(run)


def test_read_only_parent_folder(tmp_path, spec, monkeypatch):
    """chmod does not stop root (these tests run as root) and a tmpfs needs privileges: the OS's answer for a
    read-only file system is simulated at Path.mkdir."""
    read_only = tmp_path / "ro"
    read_only.mkdir()
    original = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self.is_relative_to(read_only):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    result = cli("train", spec, "--out", read_only / "runs", ok=False)
    assert (result.exit_code, result.stderr) == (
        2,
        f"Error: cannot create a run folder in {read_only / 'runs'}: Read-only file system (hint: check free "
        "disk space and write permission, or pass another --out folder)\n",
    )
    assert list(read_only.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores chmod 0o555; test_read_only_parent_folder simulates it")
def test_read_only_parent_folder_for_real(tmp_path, spec):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        result = cli("train", spec, "--out", parent, ok=False)
    finally:
        parent.chmod(0o755)
    assert (result.exit_code, result.stderr) == (
        2,
        f"Error: cannot create a run folder in {parent}: Permission denied (hint: check free disk space and "
        "write permission, or pass another --out folder)\n",
    )
    assert list(parent.iterdir()) == []

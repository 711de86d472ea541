"""Killed and broken runs: whatever moment a training process dies at, its run folder stays consistent and
`cnnkit train --resume RUN` finishes it.

* Real SIGKILLs at seeded random moments (subprocesses).
* The same crash at chosen moments, in-process: a `Killed` exception (a BaseException, like the signal nothing
  catches it) raised from inside one of train()'s writes, which leaves the folder exactly as a SIGKILL there would.
* A truncated or torn Keras backup (BackupAndRestore(double_checkpoint=True) falls back to the previous one).
* A full disk / read-only folder: one `Error:` line, exit 2, and nothing half-written presented as complete.

Decided and pinned: a folder killed before its spec.yaml was written cannot be resumed (there is no spec to resume
with); --resume says so in one line. A folder with spec.yaml but no run.json yet resumes normally.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cnnkit.cli import app

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
FINAL_NAMES = {
    "spec.yaml",
    "run.json",
    "history.json",
    "history.csv",
    "best.keras",
    "model.keras",
    "metrics.json",
    "eval.json",
    "plots",
    "backup",
    "tensorboard",  # append-only event files: a kill cuts at most the last record, which TensorBoard skips
}
BACKUP_NAMES = {"latest.weights.h5", "training_metadata.json", "latest.weights.h5.bkp", "training_metadata.json.bkp"}
ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
HINT = "(hint: free disk space or check the folder's permissions)"


class Killed(BaseException):
    """Stands in for SIGKILL: no `except Exception` (nor train()'s own handlers) stops it."""


def cli(*args, ok: bool = True):
    result = CliRunner().invoke(app, [str(a) for a in args])
    if ok and result.exit_code != 0:
        raise AssertionError(f"exit {result.exit_code}\n{result.output}") from result.exception
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def the_run(out: Path) -> Path:
    (run,) = [p for p in out.iterdir() if p.is_dir() and not p.is_symlink()]
    return run


def rows(run: Path) -> int:
    history = json.loads((run / "history.json").read_text())
    lengths = {len(v) for v in history.values()}
    assert len(lengths) == 1, history
    return lengths.pop()


def status(run: Path) -> str | None:
    path = run / "run.json"
    return json.loads(path.read_text())["status"] if path.exists() else None


def assert_consistent(run: Path) -> str:
    """Every file that looks final is complete; returns a short description of the state, for messages."""
    from cnnkit.run.modelfile import load_model
    from cnnkit.spec.parse import load_spec

    for path in run.iterdir():
        if path.name.startswith("."):  # leftovers of a write that was cut short are named as temp files
            assert path.name.endswith((".tmp", ".tmp.keras")), f"{path.name}: hidden, but not a temp file"
        else:
            assert path.name in FINAL_NAMES, f"{path.name}: not a run file"
    for path in run.glob("*.json"):  # cnnkit's own JSON files are written atomically: always whole
        json.loads(path.read_text())
    if (run / "spec.yaml").exists():
        load_spec(run / "spec.yaml")
    for name in ("best.keras", "model.keras"):
        if (run / name).exists():
            load_model(run / name)
    n = rows(run) if (run / "history.json").exists() else 0
    if (run / "history.csv").exists():  # written right after history.json
        assert len((run / "history.csv").read_text().splitlines()) - 1 in (n - 1, n)
    if (run / "metrics.json").exists():  # written after model.keras
        assert (run / "model.keras").exists()
    if status(run) == "completed":
        assert (run / "model.keras").exists() and n == EPOCHS
    meta = run / "backup" / "training_metadata.json"
    if (run / "backup").exists():
        assert {p.name for p in (run / "backup").iterdir()} <= BACKUP_NAMES
    if meta.exists() and meta.read_text():  # Keras writes it in place: empty only if cut mid-write (repaired)
        # The history row of an epoch is written before its backup: the backup is never ahead of the history.
        assert json.loads(meta.read_text())["epoch"] in (n - 1, n)
    return f"status={status(run)} epochs={n} files={sorted(p.name for p in run.iterdir())}"


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
    assert not (run / "backup").exists()
    assert_consistent(run)
    return result.stdout


def epoch_lines(stdout: str) -> list[str]:
    return [line.split()[1] for line in stdout.splitlines() if line.startswith("epoch ")]


@pytest.fixture
def spec(tmp_path) -> Path:
    path = tmp_path / "killme.yaml"
    path.write_text(SPEC)
    return path


# ------------------------------------------------------------------------------ real SIGKILL, random moments
def _progress(out: Path) -> int | None:
    """None before the run folder exists, else the number of epochs in its history."""
    runs = [d for d in out.iterdir() if d.is_dir() and not d.is_symlink()] if out.exists() else []
    if not runs:
        return None
    history = runs[0] / "history.json"
    return len(json.loads(history.read_text())["loss"]) if history.exists() else 0  # written atomically


def _start_and_kill(spec: Path, tmp_path: Path, attempts: range, rng: random.Random) -> list[Path]:
    """Start one training process per attempt (side by side: TF's import dominates and overlaps) and SIGKILL each
    at a random moment: a random point of progress (the folder appears, or epoch k's history row does), then a
    random 0-0.6 s more, which lands in setup, in an epoch, in a checkpoint write or in the final saves.
    Anchoring on progress spreads the kills over the whole run however busy the box is. Returns the folders."""
    procs = []
    for attempt in attempts:
        out = tmp_path / f"runs{attempt}"
        log = open(tmp_path / f"stderr{attempt}", "w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "cnnkit", "train", str(spec), "--no-pictures", "--out", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd=tmp_path,
        )
        procs.append(
            {
                "out": out,
                "proc": proc,
                "log": log,
                "anchor": rng.randint(0, EPOCHS),
                "jitter": rng.uniform(0.0, 0.6),
                "at": None,
            }
        )
    try:
        deadline = time.monotonic() + 300
        pending = list(procs)
        while pending:
            now = time.monotonic()
            assert now < deadline, "the training processes did not finish their part within 300 s"
            for p in list(pending):
                if p["at"] is None:
                    done = _progress(p["out"])
                    if done is not None and done >= p["anchor"]:
                        p["at"] = now + p["jitter"]
                    elif p["proc"].poll() is not None:
                        assert p["proc"].returncode == 0, Path(p["log"].name).read_text()
                        pending.remove(p)  # finished before its moment came: a completed run is checked too
                elif now >= p["at"]:
                    p["proc"].send_signal(signal.SIGKILL)
                    p["proc"].wait(timeout=60)
                    pending.remove(p)
            time.sleep(0.005)
    finally:
        for p in procs:
            if p["proc"].poll() is None:
                p["proc"].kill()
                p["proc"].wait()
            p["log"].close()
    return [the_run(p["out"]) for p in procs]


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_a_resumable_folder(tmp_path, spec):
    rng = random.Random(0)
    states = []
    for run in _start_and_kill(spec, tmp_path, range(5), rng):  # 5 kills, side by side
        state = assert_consistent(run)
        states.append(f"{run.parent.name}: {state}")
        if not (run / "spec.yaml").exists():  # killed in the microseconds between mkdir and spec.yaml
            assert cli("train", "--resume", run, ok=False).stderr.startswith(f"Error: {run} is not a cnnkit run")
            continue
        try:
            assert_resumes(run)
        except AssertionError as error:
            raise AssertionError(f"killed at {state}: {error}") from error
    print("\n".join(states))


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
    import cnnkit.run.folder  # noqa: F401  (train() imports atomic_write from it when it writes spec.yaml)

    crash_on(monkeypatch, "cnnkit.run.folder.atomic_write", lambda path, *rest: Path(path).name == "spec.yaml")
    run = train_until_killed(spec, tmp_path / "runs")
    monkeypatch.undo()
    assert list(run.iterdir()) == []
    result = cli("train", "--resume", run, ok=False)
    assert (result.exit_code, result.stderr) == (
        2,
        f"Error: {run} is not a cnnkit run folder (no spec.yaml) (hint: pass a folder made by `cnnkit train`)\n",
    )


def test_killed_before_run_json_resumes(tmp_path, spec, monkeypatch):
    crash_on(monkeypatch, "cnnkit.run.train.write_json", nth_call(1))
    run = train_until_killed(spec, tmp_path / "runs")
    monkeypatch.undo()
    assert {p.name for p in run.iterdir()} == {"spec.yaml"}
    assert epoch_lines(assert_resumes(run))[0] == f"1/{EPOCHS}"


def test_killed_between_history_and_backup_rewrites_that_epoch(tmp_path, spec, monkeypatch):
    """Epoch 2's history row is being written; its backup is not. Resume redoes epoch 2, and no row is missing."""
    crash_on(monkeypatch, "cnnkit.run.train.write_history", nth_call(2))
    run = train_until_killed(spec, tmp_path / "runs")
    monkeypatch.undo()
    assert rows(run) == 1 and status(run) == "running"
    assert json.loads((run / "backup" / "training_metadata.json").read_text())["epoch"] == 1
    assert_consistent(run)
    assert epoch_lines(assert_resumes(run)) == [f"{e}/{EPOCHS}" for e in range(2, EPOCHS + 1)]


@pytest.mark.parametrize("moment", ["saving model.keras", "marking run.json completed"])
def test_killed_after_the_last_epoch_does_not_train_again(moment, tmp_path, spec, monkeypatch):
    if moment == "saving model.keras":
        crash_on(monkeypatch, "cnnkit.run.train._save_model", lambda model, path, *twin: path.name == "model.keras")
    else:
        crash_on(
            monkeypatch,
            "cnnkit.run.train.write_json",
            lambda path, data, *rest: path.name == "run.json" and data.get("status") == "completed",
        )
    run = train_until_killed(spec, tmp_path / "runs")
    monkeypatch.undo()
    history = (run / "history.json").read_text()
    assert rows(run) == EPOCHS and status(run) == "running" and (run / "backup").is_dir()
    assert_consistent(run)
    stdout = assert_resumes(run)
    assert epoch_lines(stdout) == [] and (run / "history.json").read_text() == history  # nothing retrained


# ----------------------------------------------------------------------------------------- broken backups
@pytest.fixture(scope="module")
def killed_after_three_epochs(tmp_path_factory) -> Path:
    """Killed while writing epoch 3's history: 2 rows; backup/ holds epoch 2 (latest) and epoch 1 (.bkp)."""
    folder = tmp_path_factory.mktemp("killed")
    (folder / "killme.yaml").write_text(SPEC)
    with pytest.MonkeyPatch.context() as monkeypatch:
        crash_on(monkeypatch, "cnnkit.run.train.write_history", nth_call(3))
        run = train_until_killed(folder / "killme.yaml", folder / "runs")
    backup = run / "backup"
    assert {p.name for p in backup.iterdir()} == BACKUP_NAMES and rows(run) == 2
    assert json.loads((backup / "training_metadata.json.bkp").read_text())["epoch"] == 1
    return run


@pytest.fixture
def killed_run(killed_after_three_epochs, tmp_path) -> Path:
    """A fresh copy of that folder for each test to break and resume."""
    return Path(shutil.copytree(killed_after_three_epochs, tmp_path / killed_after_three_epochs.name))


def test_truncated_latest_checkpoint_falls_back_to_the_previous_one(killed_run):
    run = killed_run
    weights = run / "backup" / "latest.weights.h5"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    first_row = json.loads((run / "history.json").read_text())["loss"][0]
    stdout = assert_resumes(run)
    # Restarted after epoch 1 (the .bkp pair), not after epoch 2 (cut in half) and not from scratch.
    assert epoch_lines(stdout)[0] == f"2/{EPOCHS}"
    assert json.loads((run / "history.json").read_text())["loss"][0] == first_row


def test_torn_backup_metadata_falls_back_to_the_previous_pair(killed_run):
    run = killed_run
    (run / "backup" / "training_metadata.json").write_text("")  # Keras opens it with "w", then was killed
    assert epoch_lines(assert_resumes(run))[0] == f"2/{EPOCHS}"


def test_torn_backup_without_a_previous_pair_starts_over(killed_run):
    run = killed_run
    for name in ("training_metadata.json.bkp", "latest.weights.h5.bkp"):
        (run / "backup" / name).unlink()
    (run / "backup" / "training_metadata.json").write_text('{"epo')
    assert epoch_lines(assert_resumes(run))[0] == f"1/{EPOCHS}"


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
    assert status(run) in (None, "running")
    assert_consistent(run)


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
    _fail_fsync_from(monkeypatch, 5)  # spec.yaml, run.json, epoch 1's history.json and .csv, then epoch 2's
    result = cli("train", spec, "--no-pictures", "--out", tmp_path / "runs", ok=False)
    run = the_run(tmp_path / "runs")
    assert (result.exit_code, result.stderr) == (
        2,
        f"Error: cannot write {run / 'history.json'}: No space left on device {HINT}\n",
    )
    assert rows(run) == 1
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
        f"Error: cannot write {run / 'best.keras'}: No space left on device {HINT}\n",
    )
    assert not (run / "best.keras").exists()
    assert_nothing_presented_as_complete(run)


def test_full_disk_while_keras_writes_its_backup(tmp_path, spec, monkeypatch):
    import keras

    def save_weights(model, filepath, *args, **kwargs):
        raise ENOSPC

    monkeypatch.setattr(keras.Model, "save_weights", save_weights)
    result = cli("train", spec, "--out", tmp_path / "runs", ok=False)
    run = the_run(tmp_path / "runs")
    assert (result.exit_code, result.stderr) == (
        2,
        f"Error: cannot write to {run}: No space left on device (hint: free disk space, then: cnnkit train "
        f"--resume {run})\n",
    )
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

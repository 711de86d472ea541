"""Chaos: SIGKILL `cnnkit train` at seeded random moments, over and over, resuming each time the way a user would
(`--resume runs/latest`, `--resume runs` or the run folder); the run must end `completed` with weights
bit-identical to the uninterrupted deterministic run.

One long-lived run takes every kill (a restart costs TensorFlow's import, the kills are many). Each kill aims
at one phase, drawn in turn from TARGETS: start-up (imports, data, model), an epoch, a checkpoint or best.keras
being written (its temp file is on disk), model.keras being written or the test evaluation, and the pictures.
It waits for that phase's mark in the run folder, then kills at a random moment shortly after; a phase a
resumed run no longer reaches is simply not killed in. After every kill the folder it left must be consistent
(runchecks.assert_consistent: only run files or temp-named ones, every JSON and model file whole, the
checkpoint never ahead of the history). CNNKIT_CHAOS_KILLS sets how many (5 in the normal suite, one per
phase; `make chaos` runs 50) and CNNKIT_CHAOS_SEED the seed.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clitools import cli
from runchecks import assert_consistent, status

from cnnkit.run.checkpoint import read_manifest

KILLS = int(os.environ.get("CNNKIT_CHAOS_KILLS", "5"))  # 5: each of TARGETS once
SEED = int(os.environ.get("CNNKIT_CHAOS_SEED", "0"))
SPEC = """\
name: chaos
input_shape: [8, 8, 1]
layers:
  - Conv2D: {filters: 8, kernel_size: 3, padding: same, activation: relu}
  - MaxPooling2D: {pool_size: 2}
  - Flatten
  - Dropout: {rate: 0.2}
  - Dense: {units: 10, activation: softmax}
data: {dataset: digits, max_samples: 600}
train: {optimizer: adam, epochs: 5, batch_size: 16, seed: 3, deterministic: true, reduce_lr_on_plateau: {patience: 1}}
"""
EPOCHS = 5  # SPEC's train.epochs


def phase(run: Path | None) -> str:
    """Where the killed process was, as far as its folder tells."""
    if run is None or not (run / "run.json").exists():
        return "start-up"
    manifest = read_manifest(run)  # raises if a kill left it torn: it never may
    if status(run) == "completed":
        return "after completed"
    if manifest is None:
        return "epoch 1"
    if not manifest["finished"]:
        return f"epoch {manifest['epoch'] + 1}"
    if not (run / "metrics.json").exists():
        return "model.keras / test evaluation"
    return "pictures / completing"


def the_run(out: Path) -> Path | None:
    latest = out / "latest"
    return latest.resolve() if latest.exists() else None


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_ends_bit_identical(tmp_path, report):
    spec = tmp_path / "chaos.yaml"
    spec.write_text(SPEC)
    reference = cli("train", spec, "--no-pictures", "--out", tmp_path / "reference")
    assert reference.exit_code == 0
    expected = json.loads((the_run(tmp_path / "reference") / "run.json").read_text())["weights_sha256"]

    rng = random.Random(SEED)
    phases: collections.Counter = collections.Counter()
    kills, starts, runs = 0, 0, []
    while kills < KILLS:  # a run that completes before all kills are spent is followed by another
        out = tmp_path / f"runs{len(runs)}"
        runs.append(out)
        while True:
            starts += 1
            assert starts <= 3 * KILLS + 20, f"no progress: {dict(phases)}"
            started = time.time()
            killed, code, text = _start_maybe_kill(spec, out, rng, tmp_path / f"stderr{starts}", kills < KILLS)
            if killed:
                kills += 1
                phases["start-up" if not _announced(out, started) else phase(the_run(out))] += 1
                if the_run(out) is not None:  # `latest` names a run once it can be resumed
                    assert_consistent(the_run(out), EPOCHS)
                continue
            if code == 2 and "already completed" in text:
                break  # killed after `completed` was written: resuming says so, which is the truth
            assert code == 0, text
            break
    for out in runs:
        run = the_run(out)
        assert status(run) == "completed", (run, sorted(p.name for p in run.iterdir()))
        info = json.loads((run / "run.json").read_text())
        assert info["weights_sha256"] == expected, f"{run}: killed at {dict(phases)}"
        assert not (run / "checkpoint").exists() and (run / "model.keras").exists() and (run / "plots").is_dir()
        assert not [p.name for p in run.iterdir() if p.name.startswith(".")]
        # Any other folder is one killed between its mkdir and its spec.yaml (microseconds): empty.
        others = [p for p in out.iterdir() if p.is_dir() and not p.is_symlink() and p != run]
        assert all(not any(p.iterdir()) for p in others), others
    report.append(
        f"chaos: {kills} SIGKILLs over {len(runs)} run(s), {starts} starts, by phase: {dict(sorted(phases.items()))}"
    )


def _start_maybe_kill(spec: Path, out: Path, rng: random.Random, log: Path, kill: bool) -> tuple[bool, int, str]:
    """Start `cnnkit train` (or resume through a random path); SIGKILL it at a random moment when `kill`.
    Returns (killed, exit code, stderr)."""
    run = the_run(out)
    if run is None:  # nothing to resume yet: what the user typed first, again
        command = ["train", str(spec), "--out", str(out)]
    else:
        command = ["train", "--resume", str(rng.choice([out / "latest", out, run]))]
    started = time.time()
    with open(log, "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cnnkit", *command], stdout=subprocess.DEVNULL, stderr=stderr, cwd=out.parent
        )
    try:
        if kill:
            target = TARGETS[next(_turn) % len(TARGETS)]
            delay = rng.uniform(0, 3.0) if target == "start-up" else rng.uniform(0, 0.3)
            if target != "start-up":  # after the process announced itself in run.json, at the target's mark
                while proc.poll() is None and not (_announced(out, started) and _reached(the_run(out), target)):
                    time.sleep(0.001)
            deadline = time.monotonic() + delay
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.001)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=60)
                return True, proc.returncode, log.read_text()
        proc.wait(timeout=600)
        return False, proc.returncode, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


TARGETS = ("start-up", "epoch", "checkpoint write", "model.keras / test evaluation", "pictures")
_turn = itertools.count()


def _reached(run: Path | None, target: str) -> bool:
    """Whether the run folder shows the target phase under way (or, for a short write, just begun)."""
    if run is None:
        return False
    if target == "epoch":
        return True  # announced: the data and model are ready, the next thing is training
    if target == "checkpoint write":  # atomic_write's temp file, or a checkpoint state just written
        return any(p.name.startswith(".") for p in (run / "checkpoint").glob("*")) or any(
            p.name.startswith(".best.keras") for p in run.iterdir()
        )
    if target == "model.keras / test evaluation":
        return (run / "model.keras").exists() or any(p.name.startswith(".model.keras") for p in run.iterdir())
    return (run / "plots").is_dir()  # pictures


def _announced(out: Path, since: float) -> bool:
    """run.json was (re)written by this process: it has the data and model, and is about to train."""
    run = the_run(out)
    try:
        return run is not None and (run / "run.json").stat().st_mtime >= since
    except FileNotFoundError:
        return False

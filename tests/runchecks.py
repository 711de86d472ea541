"""What a run folder must hold whatever moment its training process died at: test_chaos.py checks it after every
real SIGKILL, test_runs_killed.py after each crash at a chosen moment (pytest puts tests/ on sys.path)."""

from __future__ import annotations

import json
from pathlib import Path

from cnnkit.run.checkpoint import read_manifest

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
    "report.html",
    "checkpoint",
    "tensorboard",  # append-only event files: a kill cuts at most the last record, which TensorBoard skips
}


def rows(run: Path) -> int:
    """The number of epochs in history.json (every metric has that many values)."""
    history = json.loads((run / "history.json").read_text())
    lengths = {len(v) for v in history.values()}
    assert len(lengths) == 1, history
    return lengths.pop()


def status(run: Path) -> str | None:
    path = run / "run.json"
    return json.loads(path.read_text())["status"] if path.exists() else None


def assert_consistent(run: Path, epochs: int) -> str:
    """Every file that looks final is complete (a run of `epochs` epochs); returns a short description of the
    state, for messages."""
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
        assert (run / "model.keras").exists() and n == epochs
    folder = run / "checkpoint"
    if folder.exists():
        whole = [p.name for p in folder.iterdir() if not p.name.startswith(".")]
        assert set(whole) <= {"manifest.json"} | {p.name for p in folder.glob("state-*.npz")}, whole
        assert len([n for n in whole if n.startswith("state-")]) <= 2  # the older one goes after the manifest moved
    manifest = read_manifest(run)
    if manifest is not None:
        # The history row of an epoch is written before its checkpoint: the checkpoint is never ahead of it.
        assert manifest["epoch"] in (n - 1, n) and len(manifest["history"]["loss"]) == manifest["epoch"]
        assert (folder / manifest["state"]).is_file()
    return f"status={status(run)} epochs={n} files={sorted(p.name for p in run.iterdir())}"

"""Run folders: one new folder per training run, written atomically, found again by path.

A run folder holds everything needed to rebuild, evaluate and resume the run:
  spec.yaml       the resolved spec (after --set overrides)
  model.keras     final model            best.keras   best epoch by train.monitor
  history.json    per-epoch metrics      history.csv  the same, for spreadsheets
  metrics.json    final train/val/test   run.json     versions, device, seed, command, times, status
  checkpoint/     the last complete epoch's state while a run is unfinished (for --resume; see checkpoint.py)
  eval.json       written by `cnnkit evaluate`;  plots/  the pictures
  tensorboard/    TensorBoard event files (run/tensorboard.py);  export/  `cnnkit export`'s artefacts + export.json
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from pathlib import Path

from cnnkit.errors import RunError
from cnnkit.files import atomic_write, unwritable  # noqa: F401  (re-exported for run code)
from cnnkit.text import slug

LATEST = "latest"
BEST = "best.keras"


def write_json(path: Path, data) -> None:
    atomic_write(path, json.dumps(data, indent=2, default=_jsonable) + "\n")


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def write_history(run_dir: Path, history: dict[str, list]) -> None:
    write_json(run_dir / "history.json", history)
    keys = list(history)
    rows = zip(*(history[k] for k in keys)) if keys else []
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["epoch", *keys])
    for epoch, row in enumerate(rows, start=1):
        writer.writerow([epoch, *row])
    atomic_write(run_dir / "history.csv", buffer.getvalue())


def new_run_dir(parent: Path, name: str) -> Path:
    """A fresh folder `parent/<name>-<YYYYmmdd-HHMMSS>[-n]`; never reuses an existing one."""
    parent = Path(parent)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        candidate = parent / (f"{slug(name)}-{stamp}" + (f"-{n}" if n else ""))
        try:
            parent.mkdir(parents=True, exist_ok=True)
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
        except OSError as err:
            raise RunError(
                f"cannot create a run folder in {parent}: {err.strerror or err}",
                hint="check free disk space and write permission, or pass another --out folder",
            ) from None
    raise RunError(f"cannot create a new run folder in {parent}")


def point_latest(run_dir: Path) -> None:
    """`<parent>/latest` -> the newest run, replaced atomically. Only ever to a real run folder: `run_dir` is
    resolved first, so `--resume runs/latest` cannot make `latest` point at itself."""
    run_dir = Path(run_dir).resolve()
    if run_dir.name == LATEST or not run_dir.is_dir():
        raise RunError(f"{run_dir} is not a run folder `latest` can point to")
    link = run_dir.parent / LATEST
    tmp = run_dir.parent / f".{LATEST}.{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        os.symlink(run_dir.name, tmp)
        os.replace(tmp, link)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise unwritable(link, err) from None


def resolve_run(path: str | Path, *, need: str = "spec.yaml") -> Path:
    """A run folder given by path (or a parent holding `latest`), checked to contain `need`."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise RunError(
            f"{path} points to {os.readlink(path)}, which does not exist", hint="pass a folder made by `cnnkit train`"
        )
    if not path.exists():
        raise RunError(f"run folder {path} does not exist", hint="pass a folder made by `cnnkit train`")
    if path.is_dir() and not (path / "spec.yaml").exists() and (path / LATEST).exists():
        path = (path / LATEST).resolve()
    if not path.is_dir() or not (path / "spec.yaml").exists():
        raise RunError(f"{path} is not a cnnkit run folder (no spec.yaml)", hint="pass a folder made by `cnnkit train`")
    if not (path / need).exists() and not (need == "model.keras" and (path / BEST).exists()):
        raise RunError(f"run folder {path} has no {need}")
    return path


def run_model(run_dir: Path) -> Path:
    """The run's model.keras; for a run that has none yet (interrupted, failed), its best.keras if there is one."""
    final = Path(run_dir) / "model.keras"
    return final if final.exists() or not (Path(run_dir) / BEST).exists() else Path(run_dir) / BEST


def model_note(target: str | Path) -> str | None:
    """One line for a command given an unfinished run folder: which model file it uses instead of model.keras."""
    try:
        run_dir = resolve_run(target, need="model.keras")
    except RunError:
        return None  # the command itself reports it
    if run_model(run_dir).name != BEST:
        return None
    status = (read_json(run_dir / "run.json", {}) or {}).get("status", "unknown")
    return f"note: {run_dir} has no model.keras (status: {status}); using best.keras, its best epoch so far"


def read_json(path: Path, default=None):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return default
    except (OSError, json.JSONDecodeError) as err:
        raise RunError(f"{path} is unreadable ({err}); the run folder is damaged") from None

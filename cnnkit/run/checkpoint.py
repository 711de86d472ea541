"""Per-epoch checkpoints: the state `cnnkit train --resume` continues from, exactly.

RUN/checkpoint/ while a run is unfinished:
  state-<E>.npz   after epoch E: every model variable (weights, BatchNorm statistics, dropout RNG state), every
                  optimizer variable (step count, learning rate, moments) and the best weights EarlyStopping keeps
  manifest.json   which state is complete: {"epoch": E, "state": "state-E.npz", "history": {...}, "best": v,
                  "callbacks": {...}, "stopped": bool, "finished": bool}

Every file is written to a temp name, fsynced and renamed (cnnkit.files.atomic_write), and the manifest is written
last: it only ever names a state that is whole. A kill at any instant leaves the previous manifest and its state;
no manifest at all means "start from epoch 1". Older states are removed once the manifest has moved on.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from cnnkit.errors import RunError
from cnnkit.files import atomic_write

FOLDER = "checkpoint"
MANIFEST = "manifest.json"


def _variables(holder) -> list:
    found = holder.variables
    return list(found() if callable(found) else found)  # a method on tf-keras' legacy optimizers


def _model_variables(model) -> list:
    """Weights, BatchNorm statistics and RNG states, in the model's own order. Not metric variables: fit() adds
    them, and they are reset every epoch. By position, not by name: names get suffixes (dense_1...) when a
    process builds a model twice."""
    metric_ids = {id(v) for v in getattr(model, "metrics_variables", [])}
    return [v for v in _variables(model) if id(v) not in metric_ids]


def _keyed(prefix: str, variables: list) -> dict:
    return {f"{prefix}/{i}": v for i, v in enumerate(variables)}


def _targets(model) -> dict:
    targets = _keyed("model", _model_variables(model))
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None:
        targets.update(_keyed("optimizer", _variables(optimizer)))
    return targets


def _value(variable) -> np.ndarray:
    return np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable.value)


def read_manifest(run_dir: Path) -> dict | None:
    """The last complete state's manifest, or None when no epoch was saved yet.

    A kill never leaves a torn manifest or state (both are renamed into place whole): one that is torn was
    damaged by something else, and is reported rather than silently trained over."""
    path = Path(run_dir) / FOLDER / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise damaged(path, err) from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("epoch"), int):
        raise damaged(path, "not a checkpoint manifest")
    if not (path.parent / str(manifest.get("state", ""))).is_file():
        raise damaged(path, f"the state it names, {manifest.get('state')!r}, is missing")
    return manifest


def damaged(path: Path, why) -> RunError:
    return RunError(
        f"{path} is unreadable ({why}); the run's checkpoint is damaged",
        hint=f"remove {path.parent} to train this run again from epoch 1",
    )


def state_arrays(model, callbacks: list) -> dict[str, np.ndarray]:
    """Every array a replay needs. Every worker of a multi_worker run calls this alike: reading a variable can
    be a collective operation there, and collectives must match on all workers."""
    arrays = {k: _value(v) for k, v in _targets(model).items()}
    for index, callback in enumerate(callbacks):
        for i, array in enumerate(getattr(callback, "best_weights", None) or []):
            arrays[f"callback{index}/{i}"] = np.asarray(array)
    return arrays


def callback_counters(callbacks: list) -> dict:
    """EarlyStopping's and ReduceLROnPlateau's counters (by position in the callback list)."""
    names = ("wait", "best", "best_epoch", "stopped_epoch", "cooldown_counter")
    return {
        str(i): {n: _plain(getattr(cb, n)) for n in names if hasattr(cb, n)}
        for i, cb in enumerate(callbacks)
        if type(cb).__name__ in ("EarlyStopping", "ReduceLROnPlateau")
    }


def _plain(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return float(np.asarray(value))


def save(run_dir: Path, arrays: dict, manifest: dict, *, write: bool = True) -> None:
    """Write state-<epoch>.npz, then the manifest naming it, then drop older states."""
    if not write:
        return
    folder = Path(run_dir) / FOLDER
    name = f"state-{manifest['epoch']}{'-final' if manifest.get('finished') else ''}.npz"

    def savez(handle):
        buffer = io.BytesIO()  # np.savez seeks; the temp file handle is written once, in order
        np.savez(buffer, **arrays)
        handle.write(buffer.getvalue())

    atomic_write(folder / name, savez)
    atomic_write(folder / MANIFEST, json.dumps({**manifest, "state": name}, indent=1) + "\n")
    for old in folder.glob("state-*.npz"):
        if old.name != name:
            old.unlink(missing_ok=True)


def _load(run_dir: Path, manifest: dict) -> dict:
    path = Path(run_dir) / FOLDER / manifest["state"]
    try:
        with np.load(path, allow_pickle=False) as saved:
            return {k: saved[k] for k in saved.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise damaged(path, err) from None


def restore_model(run_dir: Path, manifest: dict, model) -> None:
    """Put the saved variables back into `model` (built, with its optimizer built)."""
    arrays = _load(run_dir, manifest)
    path = Path(run_dir) / FOLDER / manifest["state"]
    targets = _targets(model)
    saved = {k for k in arrays if not k.startswith("callback")}
    if saved != set(targets) or any(tuple(arrays[k].shape) != tuple(v.shape) for k, v in targets.items()):
        raise damaged(path, f"{len(saved)} saved variables do not fit the model's {len(targets)}")
    for key, variable in targets.items():
        variable.assign(arrays[key])


def restore_callbacks(run_dir: Path, manifest: dict, callbacks: list) -> None:
    """EarlyStopping's / ReduceLROnPlateau's counters and kept best weights, after they reset themselves."""
    arrays = _load(run_dir, manifest) if any(hasattr(cb, "best_weights") for cb in callbacks) else {}
    for index, callback in enumerate(callbacks):
        kept = sorted((k for k in arrays if k.startswith(f"callback{index}/")), key=lambda k: int(k.split("/")[1]))
        if kept and hasattr(callback, "best_weights"):
            callback.best_weights = [arrays[k] for k in kept]
        for name, value in (manifest.get("callbacks") or {}).get(str(index), {}).items():
            setattr(callback, name, value)

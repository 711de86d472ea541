"""Shell completion (`cnnkit --install-completion`): spec files and run folders where an argument takes them.

Called by the shell on every Tab, so it only lists folders: no TensorFlow, no spec parsing.
"""

from __future__ import annotations

import os
from pathlib import Path

SPEC_SUFFIXES = (".yaml", ".yml")
MODEL_SUFFIXES = (".keras", ".tflite", ".onnx")


def _entries(incomplete: str):
    """(text to offer, path) for every entry of the folder `incomplete` points into that starts like it."""
    folder, _, prefix = incomplete.rpartition("/")
    base = Path(folder or ".") if folder or not incomplete.startswith("/") else Path("/")
    lead = f"{folder}/" if folder or incomplete.startswith("/") else ""
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return
    for name in names:
        if name.startswith(prefix) and (prefix.startswith(".") or not name.startswith(".")):
            yield lead + name, base / name


def is_run(path: Path) -> bool:
    return path.is_dir() and (path / "spec.yaml").is_file()


def _holds_runs(path: Path) -> bool:
    """A folder worth descending into for a run: `runs/` (has `latest` or run folders one level down)."""
    if not path.is_dir():
        return False
    if (path / "latest").exists():
        return True
    try:
        return any(is_run(child) for child in path.iterdir())
    except OSError:
        return False


def spec_files(incomplete: str) -> list[str]:
    """YAML files, and folders to descend into (`configs/`)."""
    out = []
    for text, path in _entries(incomplete):
        if path.is_dir():
            out.append(text + "/")
        elif path.suffix.lower() in SPEC_SUFFIXES:
            out.append(text)
    return out


def run_folders(incomplete: str) -> list[str]:
    """Run folders, and folders that hold runs (`runs/`)."""
    out = []
    for text, path in _entries(incomplete):
        if is_run(path):
            out.append(text)
        elif _holds_runs(path):
            out.append(text + "/")
    return out


def runs_or_models(incomplete: str) -> list[str]:
    """Run folders and model files (.keras, .tflite, .onnx): what evaluate, predict and plot take."""
    models = [text for text, path in _entries(incomplete) if path.is_file() and path.suffix.lower() in MODEL_SUFFIXES]
    return sorted(run_folders(incomplete) + models)

"""No source in the project may switch off safe loading (model files and YAML cannot run code).

The patterns are spelled out below, so this file is the one file the lint skips. Tests that need
these strings as data (hostile-file tests) build them by concatenation, e.g.
`"enable_unsafe_" + "deserialization"`, so the lint stays strict everywhere else.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("cnnkit", "tests", "bench", "configs", "Makefile", ".ci")
FORBIDDEN = {
    r"safe_mode\s*=\s*False": "Keras loading with safe_mode off",
    r"enable_unsafe_deserialization": "Keras' global switch for unsafe loading",
    r"allow_pickle\s*=\s*True": "numpy loading pickles",
    r"yaml\.load(_all)?\s*\(": "yaml.load (use yaml.safe_load or cnnkit.spec.yamlio)",
    r"FullLoader|full_load": "PyYAML's FullLoader",
    r"unsafe_load|UnsafeLoader": "PyYAML's unsafe loader",
}
_PATTERN = re.compile("|".join(f"(?:{p})" for p in FORBIDDEN))


def _files(root: Path):
    for name in SCANNED:
        top = root / name
        candidates = [top] if top.is_file() else sorted(top.rglob("*")) if top.is_dir() else []
        for path in candidates:
            if path.is_file() and "__pycache__" not in path.parts:
                yield path


def violations(root: Path, skip: Path | None = None) -> list[str]:
    """Every `file:line: text` under `root`'s scanned paths that matches a forbidden pattern."""
    hits = []
    for path in _files(root):
        if skip is not None and path.resolve() == skip:
            continue
        raw = path.read_bytes()
        if b"\0" in raw[:8192]:  # binary (a saved model, an image): not source
            continue
        for number, line in enumerate(raw.decode("utf-8", "replace").splitlines(), start=1):
            if _PATTERN.search(line):
                hits.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    return hits


def test_no_source_switches_off_safe_loading():
    hits = violations(ROOT, skip=Path(__file__).resolve())
    assert not hits, "unsafe loading is never allowed in cnnkit:\n" + "\n".join(hits)


def test_lint_finds_each_pattern(tmp_path):
    """The lint itself works: each forbidden spelling, planted in a scanned place, is reported."""
    planted = [
        "model = keras.saving.load_model(p, safe_mode" + " = False)",
        "keras.config.enable_unsafe_" + "deserialization()",
        "np.load(p, allow_pickle" + "=True)",
        "data = yaml." + "load(text)",
        "yaml.load_" + "all(text, Loader=yaml.Full" + "Loader)",
        "yaml.unsafe_" + "load(text)",
    ]
    (tmp_path / "cnnkit").mkdir()
    (tmp_path / "cnnkit" / "bad.py").write_text("ok = 1\n" + "\n".join(planted) + "\n")
    (tmp_path / ".ci").mkdir()
    (tmp_path / ".ci" / "check.sh").write_text("python -c 'import yaml; yaml." + "full_load(x)'\n")
    (tmp_path / "Makefile").write_text("safe:\n\tpython -c 'yaml.safe_load(x)'\n")
    (tmp_path / "notes.py").write_text(planted[0] + "\n")  # outside the scanned paths

    assert violations(tmp_path) == [
        *(f"cnnkit/bad.py:{n}: {line}" for n, line in enumerate(planted, start=2)),
        ".ci/check.sh:1: python -c 'import yaml; yaml." + "full_load(x)'",
    ]

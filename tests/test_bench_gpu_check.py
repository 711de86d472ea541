"""`make gpu-check` (bench/gpu_check.py) on a machine without a GPU: one line, exit 0, nothing written."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from readme_table import gpu_rows  # noqa: E402


def _has_gpu() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return listed.returncode == 0 and "GPU " in listed.stdout


@pytest.mark.skipif(_has_gpu(), reason="this machine has a GPU: gpu_check.py would train for real")
def test_gpu_check_without_a_gpu_says_skipped_and_writes_nothing():
    watched = [REPO / "bench" / "results.json", REPO / "README.md"]
    before = [(p.read_bytes(), p.stat().st_mtime_ns) for p in watched]
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_check.py")], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "skipped: no GPU\n"
    assert [(p.read_bytes(), p.stat().st_mtime_ns) for p in watched] == before


def test_make_gpu_check_runs_the_script():
    # `make gpu-check` itself is not run here: its venv prerequisite may reinstall the package.
    recipe = (REPO / "Makefile").read_text().split("\ngpu-check:")[1].split("\n\n")[0]
    assert "bench/gpu_check.py" in recipe.splitlines()[1]


def test_readme_table_says_the_gpu_paths_are_not_measured_without_a_result():
    (row,) = gpu_rows(None)
    assert "**not measured yet**" in row[2]

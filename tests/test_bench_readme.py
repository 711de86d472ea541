"""The README's benchmark table is generated from bench/results.json, and a straddling ratio is no claim."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from _common import spread, verdict  # noqa: E402


def test_readme_table_is_what_results_json_says():
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "readme_table.py"), "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_a_hand_edited_table_is_caught(tmp_path):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    edited = tmp_path / "README.md"
    edited.write_text(readme.replace("samples/s", "samples/s!", 1), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "readme_table.py"), "--check", "--readme", str(edited)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "differs from" in done.stderr


def test_a_ratio_range_that_straddles_one_is_no_difference():
    assert verdict([0.95, 1.39, 1.1, 1.2, 1.05]) == "no difference"
    assert verdict([1.1, 1.3, 1.2, 1.25, 1.15]) == "better"
    assert verdict([0.8, 0.9, 0.85, 0.95, 0.99]) == "worse"
    assert verdict([0.5, 0.55], higher_is_better=False) == "better"
    assert spread([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}

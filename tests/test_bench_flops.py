"""bench/flops.py's bf16 peak: derived from the CPU's flags (AMX, AVX512_BF16), none without them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from flops import bf16_peak  # noqa: E402


def test_amx_gives_2048_flop_per_cycle_per_core():
    peak = bf16_peak({"avx512f", "avx512_bf16", "amx_bf16"}, cores=2, fp32_lanes=16, ghz=2.0, clock_src="test")
    assert peak["isa"] == "amx_bf16" and peak["flop_per_cycle_per_core"] == 2048
    assert peak["peak_gflops"] == pytest.approx(2 * 2048 * 2.0)
    assert "ASSUMED" in peak["derivation"]


def test_avx512_bf16_doubles_the_fp32_lanes():
    peak = bf16_peak({"avx512f", "avx512_bf16"}, cores=2, fp32_lanes=16, ghz=2.0, clock_src="test")
    fp32 = 2 * 2 * 16 * 2 * 2.0  # cores x FMA units x lanes x 2 x GHz
    assert peak["isa"] == "avx512_bf16" and peak["peak_gflops"] == pytest.approx(2 * fp32)


def test_no_bf16_arithmetic_no_bf16_peak():
    peak = bf16_peak({"avx2", "fma"}, cores=2, fp32_lanes=8, ghz=2.0, clock_src="test")
    assert peak["peak_gflops"] is None and "no amx_bf16 or avx512_bf16" in peak["derivation"]

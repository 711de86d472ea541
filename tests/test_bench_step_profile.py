"""bench/step_profile.py reads oneDNN's kernel timings right, and the README rows say what it measured."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from readme_table import step_rows  # noqa: E402
from step_profile import (  # noqa: E402
    END_MARK,
    MEASURE_MARK,
    conv_flops,
    kernel_breakdown,
    kernel_lines,
    median_breakdown,
    summarise,
)

CONV2 = "mb64_ic32oc64_ih13oh11kh3sh1dh0ph0_iw13ow11kw3sw1dw0pw0"
# Lines as oneDNN 3.x prints them with ONEDNN_VERBOSE=1 (memory formats shortened).
WEIGHTS = (
    "onednn_verbose,v1,primitive,exec,cpu,convolution,jit:avx2,backward_weights,src:f32::blocked:acdb::f0,,"
    f"alg:convolution_direct,{CONV2},{{ms}}"
)
FORWARD = (
    "onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx2,forward_training,src:f32::blocked:acdb::f0,"
    f"attr-post-ops:eltwise_relu,alg:convolution_direct,{CONV2},{{ms}}"
)
POOLING = (
    "onednn_verbose,v1,primitive,exec,cpu,pooling,jit:avx2,backward_data,src:f32::blocked:acdb::f0,,alg:pooling_max,"
    "mb64ic64_ih11oh5kh2sh2dh0ph0_iw11ow5kw2sw2dw0pw0,{ms}"
)


def test_a_convolution_counts_two_flops_per_multiply_add():
    assert conv_flops(CONV2) == 2 * 64 * 64 * 11 * 11 * 32 * 3 * 3
    assert conv_flops("64x32x3x3") is None  # a reorder's problem text: no convolution in it


def test_only_the_measured_fits_are_read_each_on_its_own():
    lines = [
        WEIGHTS.format(ms=99.0),  # the warm-up fit, before the first mark
        MEASURE_MARK,
        WEIGHTS.format(ms=5.0),
        "some other output",
        END_MARK,
        WEIGHTS.format(ms=99.0),  # between fits
        MEASURE_MARK,
        WEIGHTS.format(ms=6.0),
        END_MARK,
        MEASURE_MARK,
        WEIGHTS.format(ms=7.0),  # a fit that never ended: not counted
    ]
    assert kernel_lines(lines) == [[WEIGHTS.format(ms=5.0)], [WEIGHTS.format(ms=6.0)]]
    assert kernel_lines([WEIGHTS.format(ms=1.0)]) == []  # no marks: nothing measured, nothing claimed


def test_each_kernel_keeps_its_median_over_the_fits():
    fits = [[WEIGHTS.format(ms=5.0), POOLING.format(ms=1.0)], [WEIGHTS.format(ms=50.0)], [WEIGHTS.format(ms=6.0)]]
    weights, pooling = median_breakdown(fits, steps=1)
    assert weights["ms_per_step"] == 6.0  # the stalled fit (50 ms) does not decide
    assert weights["gflops"] == pytest.approx(conv_flops(CONV2) / 6e-3 / 1e9, rel=1e-3)
    assert pooling["ms_per_step"] == 1.0
    # A last, smaller batch: the same conv by its label, another shape; it keeps a row of its own.
    partial = WEIGHTS.replace("mb64_", "mb16_").format(ms=2.0)
    rows = median_breakdown([[WEIGHTS.format(ms=5.0), partial]], steps=1)
    assert sorted(r["ms_per_step"] for r in rows) == [2.0, 5.0]


def test_kernels_are_summed_per_step_and_sorted_largest_first():
    steps = 2
    lines = [WEIGHTS.format(ms=6.0), WEIGHTS.format(ms=4.0), FORWARD.format(ms=2.0), FORWARD.format(ms=2.0)]
    lines += [POOLING.format(ms=0.5)] * 4
    rows = kernel_breakdown(lines, steps)
    assert [r["what"] for r in rows] == [
        "conv 32→64 channels, 3×3, 13×13→11×11: backward weights",
        "conv 32→64 channels, 3×3, 13×13→11×11: forward training",
        "pooling backward_data",
    ]
    weights, forward, pooling = rows
    assert weights["ms_per_step"] == 5.0 and weights["calls_per_step"] == 1.0
    assert weights["flop_per_call"] == conv_flops(CONV2)
    assert weights["gflops"] == pytest.approx(conv_flops(CONV2) / 5e-3 / 1e9, rel=1e-3)
    assert forward["gflops"] == pytest.approx(2.5 * weights["gflops"], rel=1e-3)
    assert pooling == {"what": "pooling backward_data", "problem": "", "ms_per_step": 1.0, "calls_per_step": 2.0}


def test_the_step_estimate_carries_the_kernels_saving_over_two_ways():
    steps_run = {"keras_step_ms": [20.0, 21.0, 19.0], "products_step_ms": [19.0, 22.0, 19.0], "max_gradient_diff": 0.0}
    gradient = {
        "tensorflow_ms": [6.0, 6.0, 6.0],
        "nine_products_ms": [4.0, 4.5, 3.5],
        "agree": True,
        "max_abs_diff": 1e-6,
    }
    kernels = kernel_breakdown([WEIGHTS.format(ms=8.0), POOLING.format(ms=1.0)], 1)
    result = summarise(steps_run, kernels, gradient)
    assert result["step_ms"]["median"] == 20.0 and result["samples_per_s_in_step"] == 3200
    estimate = result["weight_gradient"]["step_speedup_estimate"]
    assert estimate["from_isolated_saving"] == pytest.approx(20 / (20 - 2), abs=1e-3)  # medians 6 and 4 ms alone
    # alone x1.5 (median of 6/4, 6/4.5, 6/3.5): a third of the kernel's 8 ms inside the step
    assert estimate["in_step_kernel_ms"] == 8.0
    assert estimate["from_in_step_kernel_time"] == pytest.approx(20 / (20 - 8 / 3), abs=1e-3)
    assert result["weight_gradient"]["verdict"] == "better"
    in_step = result["weight_gradient"]["in_step"]
    assert in_step["speedup_per_round"] == [pytest.approx(20 / 19, abs=1e-3), pytest.approx(21 / 22, abs=1e-3), 1.0]
    assert in_step["verdict"] == "no difference"  # faster alone, no faster in the step: the step decides
    slower = summarise(steps_run, kernels, {**gradient, "nine_products_ms": [7.0, 5.0, 6.5]})
    assert slower["weight_gradient"]["verdict"] == "no difference"
    assert slower["weight_gradient"]["step_speedup_estimate"]["from_isolated_saving"] == 1.0  # no saving: no claim
    assert summarise(steps_run, None, gradient)["weight_gradient"]["step_speedup_estimate"]["in_step_kernel_ms"] is None


def test_readme_rows_name_the_largest_kernels_and_the_estimate():
    steps_run = {"keras_step_ms": [15.0, 14.0, 16.0], "products_step_ms": [15.5, 14.5, 15.0], "max_gradient_diff": 0.0}
    gradient = {"tensorflow_ms": [5.0] * 3, "nine_products_ms": [3.9, 4.0, 4.1], "agree": True, "max_abs_diff": 0.0}
    kernels = kernel_breakdown([WEIGHTS.format(ms=6.0), FORWARD.format(ms=2.0)], 1)
    profile = {
        "config": {"batch": 64, "steps": 60},
        "cpu_kernels": "oneDNN",
        **summarise(steps_run, kernels, gradient),
    }
    step, lever = step_rows(profile, {"peak": {"peak_gflops": 156.5}})
    assert step[2].startswith("15.0 ms [14.0–16.0] (4,267 samples/s in the step)")
    assert step[2].endswith(
        "largest: conv 32→64 channels, 3×3, 13×13→11×11: backward weights 6.0 ms at 48 GFLOP/s, "
        "forward training 2.0 ms at 143 GFLOP/s"
    )
    assert step[3] == "fp32 peak 156.5 GFLOP/s (flops row)"
    assert lever[2] == "step 15.0 ms [14.5–15.5]; that kernel alone 4.00 ms [3.90–4.10]"
    assert lever[4].startswith(
        "step no difference (×0.97 [0.97–1.07], 3 rounds) (medians 15.0 vs 15.0 ms); that kernel alone ×1.25 [1.22–1.28]"
    )
    # isolated saving 1 ms of 15: x1.07; a fifth of the kernel's 6 ms in the step: x1.09
    assert "which would make the step ×1.07–1.09 if it carried over" in lever[4] and "gradients agree" in lever[4]
    assert step_rows({"error": "exit code 1"}, None) == []

"""Achieved training GFLOP/s of the notes' MNIST net under cnnkit, as a fraction of the CPU's fp32 (and bf16) peak.

Usage: python bench/flops.py [--samples-per-s X] [--samples-per-s-bf16 Y] [--data-dir DIR] [--quick]

achieved = samples/s x 3 x forward MACs x 2 FLOP/MAC (a training step ~ one forward + two
backward-sized passes), forward MACs from `cnnkit summary --json`'s total_macs. samples/s is the
cnnkit training throughput that run_all.py measured in train_throughput and passes in with
--samples-per-s; without it this script measures it: cnnkit's train() in-process, 2 epochs on a
subset, the second timed. Peak = cores x FMA units x fp32 SIMD lanes x 2 FLOP/FMA x clock, derived
from /proc/cpuinfo (the assumptions are printed).

The bf16 peak, where the CPU has bf16 arithmetic: AMX (`amx_bf16`: one tile unit per core doing 1024 bf16
FMAs per cycle = 2048 FLOP/cycle/core) or AVX512_BF16 (`avx512_bf16`: VDPBF16PS, twice the fp32 lanes per
FMA unit, so 2x the fp32 peak). Given a samples/s measured with `--set train.precision=mixed_bfloat16`
(--samples-per-s-bf16), the achieved GFLOP/s is also reported as a fraction of that peak. Mixed precision keeps
some arithmetic in fp32 (loss, optimizer, softmax), so the bf16 peak is the ceiling for the convolutions and
matrix products only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import MNIST_SPEC, REPO, EpochTimer, cnnkit_cmd, data_dir, emit, log

FMA_UNITS = 2  # assumption: server cores (Xeon Gold/Platinum, EPYC) issue 2 FMAs per cycle
AMX_UNITS = 1  # assumption: one AMX tile unit per core (Sapphire Rapids and later)
AMX_BF16_FMA_PER_CYCLE = 1024  # per AMX unit: a 16x32 bf16 tile product, TDPBF16PS, at its documented throughput


def cpu_peak() -> dict:
    text = Path("/proc/cpuinfo").read_text()
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())  # the first CPU's values
    flags = set(fields.get("flags", "").split())
    if "avx512f" in flags:
        lanes, isa = 16, "avx512f: 512-bit vectors = 16 fp32 lanes"
    elif {"avx2", "fma"} <= flags:
        lanes, isa = 8, "avx2+fma: 256-bit vectors = 8 fp32 lanes"
    elif "avx" in flags:
        lanes, isa = 8, "avx (no fma): 8 lanes, counted as if fused"
    else:
        lanes, isa = 4, "sse: 128-bit vectors = 4 fp32 lanes"
    max_khz = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    if max_khz.is_file():
        ghz, clock_src = int(max_khz.read_text()) / 1e6, str(max_khz)
    else:
        ghz, clock_src = float(fields.get("cpu MHz", "0")) / 1000, "/proc/cpuinfo `cpu MHz` (no cpufreq in /sys)"
    cores = len(os.sched_getaffinity(0))
    peak = cores * FMA_UNITS * lanes * 2 * ghz
    return {
        "cpu": fields.get("model name"),
        "cores": cores,
        "fma_units_per_core": FMA_UNITS,
        "fp32_lanes": lanes,
        "clock_ghz": ghz,
        "peak_gflops": round(peak, 1),
        "derivation": f"{cores} cores (CPUs this process may run on) x {FMA_UNITS} FMA units (ASSUMED: server "
        f"core) x {lanes} lanes ({isa}) x 2 FLOP/FMA x {ghz:.2f} GHz ({clock_src}) "
        f"= {peak:.1f} GFLOP/s; AVX-512 clocks often run below nominal, so this is an upper "
        f"bound",
        "bf16": bf16_peak(flags, cores, lanes, ghz, clock_src),
    }


def bf16_peak(flags: set, cores: int, fp32_lanes: int, ghz: float, clock_src: str) -> dict:
    """The bf16 peak from the CPU's flags, with its derivation; peak_gflops None where it has no bf16 arithmetic."""
    if "amx_bf16" in flags:
        per_core = AMX_UNITS * AMX_BF16_FMA_PER_CYCLE * 2
        peak = cores * per_core * ghz
        how = (
            f"{cores} cores x {AMX_UNITS} AMX unit (ASSUMED: one per core) x {AMX_BF16_FMA_PER_CYCLE} bf16 FMAs/cycle "
            f"(amx_bf16: TDPBF16PS) x 2 FLOP/FMA = {per_core} FLOP/cycle/core x {ghz:.2f} GHz ({clock_src}) "
            f"= {peak:.1f} GFLOP/s; AMX runs only in oneDNN's matrix kernels, possibly below nominal clock, so "
            "this is an upper bound"
        )
        return {
            "isa": "amx_bf16",
            "flop_per_cycle_per_core": per_core,
            "peak_gflops": round(peak, 1),
            "derivation": how,
        }
    if "avx512_bf16" in flags:
        lanes = 2 * fp32_lanes  # a bf16 dot product (VDPBF16PS) packs two bf16 pairs in each fp32 lane
        per_core = FMA_UNITS * lanes * 2
        peak = cores * per_core * ghz
        how = (
            f"{cores} cores x {FMA_UNITS} FMA units (ASSUMED: server core) x {lanes} bf16 lanes (avx512_bf16: "
            f"2 x {fp32_lanes} fp32 lanes) x 2 FLOP/FMA x {ghz:.2f} GHz ({clock_src}) = {peak:.1f} GFLOP/s, "
            "2x the fp32 peak; an upper bound, as for fp32"
        )
        return {
            "isa": "avx512_bf16",
            "flop_per_cycle_per_core": per_core,
            "peak_gflops": round(peak, 1),
            "derivation": how,
        }
    return {
        "isa": None,
        "flop_per_cycle_per_core": None,
        "peak_gflops": None,
        "derivation": "no amx_bf16 or avx512_bf16 flag: bf16 is converted to fp32 to compute, so its peak is "
        "the fp32 peak at best; no bf16 peak derived",
    }


def forward_macs() -> int:
    done = subprocess.run(
        cnnkit_cmd() + ["summary", str(MNIST_SPEC), "--json"], cwd=REPO, capture_output=True, text=True, check=True
    )
    return int(json.loads(done.stdout)["total_macs"])


def measure_samples_per_s(data: Path, max_samples: int) -> float:
    from cnnkit.run.train import TrainRequest, train

    timer = EpochTimer()
    with tempfile.TemporaryDirectory(prefix="cnnkit-bench-") as tmp:
        result = train(
            TrainRequest(
                spec_file=MNIST_SPEC,
                overrides=(f"data.max_samples={max_samples}",),
                epochs=2,
                data_dir=str(data),
                out=Path(tmp),
            ),
            timer,
        )
        n_train = json.loads((result.run_dir / "run.json").read_text())["samples"]["train"]
    return n_train / timer.times[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples-per-s", type=float, default=None, help="cnnkit training throughput to use")
    parser.add_argument(
        "--samples-per-s-bf16",
        type=float,
        default=None,
        help="cnnkit training throughput with --set train.precision=mixed_bfloat16 (not measured here)",
    )
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--quick", action="store_true", help="measure on 2,000 samples if not given")
    args = parser.parse_args()

    macs = forward_macs()
    if args.samples_per_s:
        sps, source = args.samples_per_s, "train_throughput (passed in by run_all.py)"
    else:
        n = 2000 if args.quick else 20000
        log(f"flops: measuring cnnkit training throughput on {n} samples ...")
        sps, source = measure_samples_per_s(data_dir(args.data_dir), n), f"measured here: 2nd of 2 epochs, {n} samples"
    achieved = sps * 3 * macs * 2 / 1e9
    peak = cpu_peak()
    bf16 = peak["bf16"]
    if args.samples_per_s_bf16:
        achieved_bf16 = args.samples_per_s_bf16 * 3 * macs * 2 / 1e9
        bf16["samples_per_s"] = round(args.samples_per_s_bf16)
        bf16["samples_per_s_source"] = "passed in (--samples-per-s-bf16, train.precision=mixed_bfloat16)"
        bf16["achieved_gflops"] = round(achieved_bf16, 2)
        # Against the bf16 peak where there is one, else (no bf16 arithmetic) the fp32 peak it then runs at.
        ceiling = bf16["peak_gflops"] or peak["peak_gflops"]
        bf16["fraction_of_peak"] = round(achieved_bf16 / ceiling, 4)
        bf16["fraction_of"] = "bf16 peak" if bf16["peak_gflops"] else "fp32 peak (no bf16 arithmetic)"
    emit(
        {
            "benchmark": "flops",
            "forward_macs_per_sample": macs,
            "training_flops_per_sample": 3 * macs * 2,
            "samples_per_s": round(sps),
            "samples_per_s_source": source,
            "achieved_gflops": round(achieved, 2),
            "peak": peak,
            "fraction_of_peak": round(achieved / peak["peak_gflops"], 4),
            "notes": [
                "achieved = samples/s x 3 x forward MACs x 2; samples/s counts training samples over an epoch "
                "that also runs validation (1/4 as many samples, forward only), which this formula leaves "
                "out (~8% more work), and pooling/activation/optimizer arithmetic is not counted either"
            ],
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

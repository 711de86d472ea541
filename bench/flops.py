"""Achieved training GFLOP/s of the notes' MNIST net under cnnkit, as a fraction of the CPU's fp32 peak.

Usage: python bench/flops.py [--samples-per-s X] [--data-dir DIR] [--quick]

achieved = samples/s x 3 x forward MACs x 2 FLOP/MAC (a training step ~ one forward + two
backward-sized passes), forward MACs from `cnnkit summary --json`'s total_macs. samples/s is the
cnnkit training throughput that run_all.py measured in train_throughput and passes in with
--samples-per-s; without it this script measures it: cnnkit's train() in-process, 2 epochs on a
subset, the second timed. Peak = cores x FMA units x fp32 SIMD lanes x 2 FLOP/FMA x clock, derived
from /proc/cpuinfo (the assumptions are printed).
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

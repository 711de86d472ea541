"""The GPU paths, checked on a GPU: mixed_float16 on one GPU and MirroredStrategy over all, vs the notes' script.

Usage: python bench/gpu_check.py [--epochs 5] [--rounds 1] [--data-dir DIR] [--results FILE]
       make gpu-check

Trains the notes' MNIST net (configs/mnist.yaml, 5 epochs, the full mnist.npz) three ways, each in its own
process, interleaved round by round:
  single    cnnkit train configs/mnist.yaml --device gpu --set train.precision=mixed_float16
  mirrored  the same with --strategy mirrored (every visible GPU)
  plain     the notes' plain-Keras script (bench/_common.py NOTES_SCRIPT) on the same GPU (TensorFlow's default
            placement: the first GPU), float32, as the notes write it
Each cnnkit run must reach test accuracy >= 0.99 (its metrics.json). samples/s = training samples / steady epoch
time (median of the epochs after the first), cnnkit's from its printed `epoch i/N  T s` lines as in
train_throughput.py. The result goes to bench/results.json under `benchmarks.gpu_check`, with this machine's
description (the other entries, measured on the CPU machine, are left as they are), the README's table is
regenerated from it, and the same JSON is printed on stdout. Exit 1 when a run misses the accuracy target.

Without a GPU (nvidia-smi lists none, or TensorFlow sees none) it prints `skipped: no GPU`, writes nothing and
exits 0: the check belongs to machines that have one, and `make bench` on a CPU machine must not fail for it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import NOTES_SCRIPT, REPO, data_dir, emit, loadavg, log, median, spread, verdict
from train_throughput import run_cnnkit, run_plain

ACCURACY_TARGET = 0.99  # the notes' net reaches ~99.0-99.1% after 5 epochs in float32 (README, accuracy recipes)
VARIANTS = {
    "single": ("--device", "gpu", "--set", "train.precision=mixed_float16"),
    "mirrored": ("--device", "gpu", "--set", "train.precision=mixed_float16", "--strategy", "mirrored"),
}


def gpus() -> list[str]:
    """The GPUs this machine can train on: nvidia-smi's list, confirmed by TensorFlow in a child process.

    nvidia-smi first, because it answers in milliseconds where importing TensorFlow takes seconds; TensorFlow
    second, because a driver with a CPU-only TensorFlow build (or no CUDA libraries) still cannot train on them.
    Both run in child processes so this script itself never initialises CUDA.
    """
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        log(f"gpu_check: nvidia-smi -L failed ({error})")
        return []
    # "GPU 0: NVIDIA H200 (UUID: GPU-...)": the model name is what a result needs; the UUID names one card.
    names = [
        line.split(": ", 1)[-1].split(" (UUID")[0].strip()
        for line in listed.stdout.splitlines()
        if line.startswith("GPU ")
    ]
    if listed.returncode != 0 or not names:
        log(f"gpu_check: nvidia-smi -L lists no GPU (exit {listed.returncode})")
        return []
    seen = subprocess.run(
        [sys.executable, "-c", "import tensorflow as tf; print(len(tf.config.list_physical_devices('GPU')))"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    count = int(seen.stdout.strip().splitlines()[-1]) if seen.returncode == 0 and seen.stdout.strip() else 0
    if not count:
        log(f"gpu_check: nvidia-smi lists {len(names)} GPU(s) but TensorFlow sees none")
        return []
    return names


def run_details(out: Path) -> dict:
    """What the run folder says about where and how it trained."""
    info = json.loads(next(out.glob("*/run.json")).read_text())
    keys = ("device", "distribution", "mixed_precision", "precision")  # `precision`: the train.precision key's record
    return {key: info[key] for key in keys if key in info}


def summarise(runs: list[dict]) -> dict:
    return {
        "samples_per_s": spread([r["samples_per_s"] for r in runs]),
        "epoch_s": spread([r["epoch_s"] for r in runs]),
        "test_acc": [round(r["test_acc"], 4) for r in runs],
        "wall_s": [round(r["wall_s"], 1) for r in runs],
        "rounds": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in runs],
    }


def write_result(results_file: Path, result: dict) -> None:
    """Set `benchmarks.gpu_check`, leaving every other entry of the file exactly as it was."""
    report = json.loads(results_file.read_text()) if results_file.is_file() else {"benchmarks": {}}
    report.setdefault("benchmarks", {})["gpu_check"] = result
    results_file.write_text(json.dumps(report, indent=2) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="the notes' 5: the accuracy target is for them")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved single/mirrored/plain rounds")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results.json")
    args = parser.parse_args()
    if args.epochs < 2 or args.rounds < 1:
        parser.error("--epochs must be >= 2 (the first epoch pays tracing) and --rounds >= 1")

    names = gpus()
    if not names:
        print("skipped: no GPU")
        return 0
    if not NOTES_SCRIPT.is_file():
        sys.exit(f"Error: reference script {NOTES_SCRIPT} not found (set CNNKIT_NOTES_SCRIPT)")
    npz = data_dir(args.data_dir) / "mnist.npz"

    from run_all import machine  # the same description run_all.py records, taken here, on the GPU machine

    described = {**machine(), "gpus": names}
    runs: dict[str, list[dict]] = {"single": [], "mirrored": [], "plain_keras": []}
    with tempfile.TemporaryDirectory(prefix="cnnkit-gpu-check-") as tmp:
        for r in range(args.rounds):
            for name, extra in VARIANTS.items():
                out = Path(tmp) / f"{name}{r}"
                log(f"gpu_check round {r + 1}/{args.rounds}: cnnkit train {' '.join(extra)} ...")
                run = run_cnnkit(npz, args.epochs, out, extra=extra)
                runs[name].append({**run, **run_details(out)})
                log(f"  {run['samples_per_s']:.0f} samples/s, test accuracy {run['test_acc']:.4f}")
            log("  plain Keras notes script ...")
            runs["plain_keras"].append(run_plain(npz, args.epochs))
            log(f"  {runs['plain_keras'][-1]['samples_per_s']:.0f} samples/s")

    ratios = {
        name: [c["samples_per_s"] / p["samples_per_s"] for c, p in zip(runs[name], runs["plain_keras"])]
        for name in VARIANTS
    }
    accuracy_ok = {name: all(r["test_acc"] >= ACCURACY_TARGET for r in runs[name]) for name in VARIANTS}
    result = {
        "benchmark": "gpu_check",
        "machine": described,
        "config": {
            "net": "notes' MNIST CNN (configs/mnist.yaml)",
            "data": str(npz),
            "epochs": args.epochs,
            "rounds": args.rounds,
            "batch_size": 64,
            "variants": {name: " ".join(extra) for name, extra in VARIANTS.items()},
        },
        **{name: summarise(runs[name]) for name in runs},
        "ratio_samples_per_s_vs_plain": {name: spread(ratios[name]) for name in VARIANTS},
        "verdict_vs_plain": {name: verdict(ratios[name]) for name in VARIANTS},
        "mirrored_vs_single": round(
            median(r["samples_per_s"] for r in runs["mirrored"]) / median(r["samples_per_s"] for r in runs["single"]),
            3,
        ),
        "accuracy_target": ACCURACY_TARGET,
        "meets_accuracy_target": accuracy_ok,
        "loadavg_end": loadavg(),
        "notes": [
            "plain_keras is the notes' script as written (float32, TensorFlow's default placement: the first GPU); "
            "the cnnkit runs use mixed_float16, so the ratio is cnnkit's GPU path against the notes' code",
            "mirrored splits each batch of 64 over all visible GPUs; with one GPU it measures the strategy's cost",
        ],
    }
    write_result(args.results, result)
    if args.results == REPO / "bench" / "results.json":
        subprocess.run([sys.executable, str(REPO / "bench" / "readme_table.py")], check=True)  # the README's table
    emit(result)
    plain = result["plain_keras"]["samples_per_s"]["median"]
    for name in VARIANTS:
        r = result[name]
        log(
            f"{name}: {r['samples_per_s']['median']:,.0f} samples/s (plain {plain:,.0f}), test accuracy "
            f"{min(r['test_acc']):.4f}: {'ok' if accuracy_ok[name] else f'BELOW {ACCURACY_TARGET}'}"
        )
    log(f"wrote {args.results} (benchmarks.gpu_check)")
    return 0 if all(accuracy_ok.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

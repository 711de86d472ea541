"""Training throughput and peak memory: `cnnkit train configs/mnist.yaml` vs the notes' plain-Keras script.

Usage: python bench/train_throughput.py [--epochs 4] [--rounds 5] [--whole-epochs 2] [--memory-rounds 2]
                                       [--memory-epochs 5] [--subset N]
                                       [--lever LABEL=KEY=VALUE ...] [--data-dir DIR] [--quick]

Both sides train the same net (Conv32-Pool-Conv64-Pool-Dense64-Dense10) on the same mnist.npz, with
Adam, batch 64, validation_split 0.2 and the same epoch count, each in its own process, interleaved
A/B/A/B so that load from other processes hits both alike. samples/s = training samples / steady
epoch time (the notes script's rule: median of the epochs after the first; an epoch includes its
validation pass on both sides). Targets: cnnkit/plain samples/s >= 1.3, peak RSS ratio <= 0.6 (judged on all of
MNIST: the full-data series, the notes' 5 epochs, pictures on, which also gives both sides' test accuracy, and that
of configs/mnist_cosine.yaml: the same net and recipe with a cosine decay of the learning rate).

Each round is one A/B pair, and every ratio is reported per round with its median and range: this VM's epochs
vary up to 2x between runs, so a claim holds only when every round agrees ("no difference" when the range of the
per-round ratios straddles 1.0). A second interleaved series times whole processes, `cnnkit train --epochs 2`
with pictures against the plain script's 2 epochs (import, data, fit, test evaluation, exit): what a user waits.
CPU seconds (user + system) are the second opinion: they move much less with load from other processes.

Speed levers (DEFAULT_LEVERS, or --lever): each is one more cnnkit side in every round, trained with its --set
values or environment variables, and compared round by round with cnnkit's defaults; a lever is worth its default
only when every round agrees. The rounds train on the first --subset images (default 20,000) so that 5 rounds of 5
sides fit ~25 minutes on two cores; epoch time is linear in the set size (bench/scaling.py), so samples/s and the ratios carry over.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import (
    MNIST_SPEC,
    NOTES_SCRIPT,
    REPO,
    cnnkit_cmd,
    data_dir,
    emit,
    loadavg,
    log,
    median,
    run_measured,
    spread,
    steady_epoch_s,
    subset_npz,
    verdict,
)

# The speed levers measured on/off in every run (issue 16): cnnkit's defaults are one side, each lever another, with
# these --set values. A lever stays a default only while its verdict against the defaults is "better".
DEFAULT_LEVERS = [
    # on: `auto` validates the notes' net at 128 (its widest layer within 16 MiB a batch, cnnkit/run/batching.py)
    "validation at batch 512=train.validation_batch_size=512",
    "steps_per_execution 16=train.steps_per_execution=16",  # on: the default is 1
    # off: cnnkit turns TensorFlow's oneDNN kernels on for x86-64 (cnnkit/backend.py); TF itself does so only on CPUs
    # with AVX-512 VNNI/BF16/AMX, so on others this side is TensorFlow's own default, the plain script's kernels.
    "oneDNN off=env:TF_ENABLE_ONEDNN_OPTS=0",
    # on: TensorFlow runs as many graph ops at once as there are cores, each op's kernels on the same cores; one at a
    # time might spare the two cores the contention (the conv's two backward ops run side by side).
    "inter-op threads 1=env:TF_NUM_INTEROP_THREADS=1",
]
# On a CPU where precision `auto` takes bfloat16, float32 is the lever's "off" side.
FLOAT32_LEVER = "float32=train.precision=float32"
DEFAULT_SUBSET = 20_000  # per-sample cost does not depend on the set size (bench/scaling.py); 5+ rounds fit an hour
# The same net and recipe with a cosine decay of the learning rate from 0.002: the full-data series also runs it
# (no pictures), for the accuracy side of the target.
RECIPE_SPEC = REPO / "configs" / "mnist_cosine.yaml"
TARGET_SPEED_RATIO = 1.3  # issue 16: steady epochs >= 1.3x the plain script, every round agreeing
TARGET_RSS_RATIO = 0.6
EPOCH_LINE = re.compile(r"^epoch\s+(\d+)/(\d+)\s+([\d.]+)s\b")  # "epoch  9/12    2.1s ..."


def run_cnnkit(
    npz: Path,
    epochs: int,
    out: Path,
    *,
    pictures: bool = False,
    extra: tuple[str, ...] = (),
    env: dict | None = None,
    spec: Path = MNIST_SPEC,
) -> dict:
    """One `cnnkit train` process; `extra`: more CLI arguments (gpu_check.py: --device, --set, --strategy); `env`:
    environment variables set for it alone (a lever such as TF_ENABLE_ONEDNN_OPTS=0)."""
    m = run_measured(
        cnnkit_cmd()
        + ["train", str(spec), "--data-dir", str(npz.parent), "--epochs", str(epochs), "--out", str(out)]
        + ([] if pictures else ["--no-pictures"])
        + list(extra),
        env={**os.environ, **env} if env else None,
    ).check()
    printed, arrived = [], []
    for t, line in m.lines:
        match = EPOCH_LINE.match(line)
        if match:
            printed.append(float(match.group(3)))
            arrived.append(t)
    if len(printed) != epochs:
        raise RuntimeError(f"expected {epochs} 'epoch i/N  T s' lines from cnnkit, parsed {len(printed)}:\n{m.stdout}")
    run_dir = next(out.glob("*/metrics.json")).parent
    run_info = json.loads((run_dir / "run.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    n_train = run_info["samples"]["train"]
    epoch_s = steady_epoch_s(printed)
    # Cross-check with finer resolution: the gaps between the epoch lines' arrival (each gap is one
    # whole epoch, callbacks included). Printed times are rounded to 0.1 s.
    gaps = [b - a for a, b in zip(arrived, arrived[1:])]
    return {
        "before_first_epoch_s": arrived[0] - printed[0],
        "exit_after_last_output_s": m.wall_s - m.lines[-1][0],
        "samples_per_s": n_train / epoch_s,
        "epoch_s": epoch_s,
        "epoch_s_all": printed,
        "epoch_s_from_line_gaps": round(median(gaps), 3) if gaps else None,
        "n_train": n_train,
        "test_acc": metrics["test"]["accuracy"],
        "wall_s": m.wall_s,
        "cpu_s": m.cpu_s,
        "peak_rss_mb": m.peak_rss_mb,
        "peak_tree_rss_mb": m.peak_tree_rss_mb,
    }


def run_plain(npz: Path, epochs: int) -> dict:
    m = run_measured([sys.executable, str(NOTES_SCRIPT), str(npz), str(epochs)]).check()
    report = json.loads([line for _, line in m.lines if line.startswith("{")][-1])
    with np.load(npz, allow_pickle=False) as d:
        n_train = int(len(d["y_train"]) * 0.8)  # the script's own count
    return {
        "samples_per_s": n_train / report["epoch_s_median"],
        "epoch_s": report["epoch_s_median"],
        "first_epoch_s": report["first_epoch_s"],
        "fit_s": report["fit_s"],
        "n_train": n_train,
        "exit_after_last_output_s": m.wall_s - m.lines[-1][0],
        "test_acc": report["test_acc"],
        "wall_s": m.wall_s,
        "cpu_s": m.cpu_s,
        "peak_rss_mb": m.peak_rss_mb,
        "peak_tree_rss_mb": m.peak_tree_rss_mb,
    }


def parse_lever(text: str) -> tuple[str, dict]:
    """'LABEL=KEY=VALUE[;KEY=VALUE]' -> (LABEL, {"args": cnnkit's --set arguments, "env": {NAME: VALUE}}); an item
    'env:NAME=VALUE' is an environment variable for that side's process instead of a spec value."""
    label, _, sets = text.partition("=")
    items = sets.split(";")
    if not label or not all("=" in item for item in items):
        raise ValueError(f"--lever {text!r}: expected LABEL=KEY=VALUE[;KEY=VALUE] (KEY may be env:NAME)")
    return label, {
        "args": [arg for item in items if not item.startswith("env:") for arg in ("--set", item)],
        "env": dict(item[len("env:") :].split("=", 1) for item in items if item.startswith("env:")),
    }


def tree_peak_mb(run: dict) -> float:
    """The larger of a run's two peak-memory readings: its largest process, and its whole tree summed (cnnkit's
    picture process runs beside it)."""
    return max(run["peak_rss_mb"], run["peak_tree_rss_mb"])


def side_summary(runs: list[dict]) -> dict:
    return {
        "samples_per_s": round(median(r["samples_per_s"] for r in runs)),
        # The fastest round: under load from other processes, the least-disturbed estimate.
        "samples_per_s_best": round(max(r["samples_per_s"] for r in runs)),
        "epoch_s": round(median(r["epoch_s"] for r in runs), 3),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs), 1),
        "peak_tree_rss_mb": round(max(r["peak_tree_rss_mb"] for r in runs), 1),
        "test_acc": [round(r["test_acc"], 4) for r in runs],
        "wall_s": [round(r["wall_s"], 1) for r in runs],
        "cpu_s": [round(r["cpu_s"], 1) for r in runs],
        "rounds": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in runs],
    }


def _auto_is_mixed() -> bool:
    sys.path.insert(0, str(REPO))
    from cnnkit.run.precision import BF16_CPU_FLAGS, cpu_flags

    return bool(set(BF16_CPU_FLAGS) & cpu_flags())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--epochs", type=int, default=4
    )  # the median of epochs 2..4: one noisy epoch (this VM stalls ~3 s at random) cannot decide it
    parser.add_argument("--rounds", type=int, default=5, help="interleaved A/B pairs (>= 5 for a claim)")
    parser.add_argument("--whole-epochs", type=int, default=2, help="epochs of the whole-process series (0: skip)")
    parser.add_argument(
        "--memory-rounds",
        type=int,
        default=2,
        help="interleaved rounds of the series on all of MNIST (peak memory, accuracy), pictures on (0: skip)",
    )
    parser.add_argument(
        "--memory-epochs",
        type=int,
        default=5,
        help="epochs of that series; 5: the notes' recipe, whose test accuracy the issue's target names",
    )
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--quick", action="store_true", help="3,000 train / 1,000 test samples, 2 epochs, 1 round")
    parser.add_argument(
        "--subset",
        type=int,
        default=DEFAULT_SUBSET,
        help=f"train on the first N MNIST training images, 0: all 60,000 (default {DEFAULT_SUBSET:,}; test: all 10,000)",
    )
    parser.add_argument(
        "--lever",
        action="append",
        default=None,
        metavar="LABEL=KEY=VALUE[;KEY=VALUE]",
        help="one more cnnkit side per lever, trained with these --set values (env:NAME=VALUE: an environment "
        "variable), interleaved with the others and compared with cnnkit's defaults round by round "
        "(e.g. 'spe16=train.steps_per_execution=16')",
    )
    args = parser.parse_args()
    if args.lever is None:
        args.lever = DEFAULT_LEVERS + ([FLOAT32_LEVER] if _auto_is_mixed() else [])
    try:
        levers = dict(parse_lever(text) for text in args.lever)
    except ValueError as err:
        parser.error(str(err))
    if args.epochs < 1 or args.rounds < 1:
        parser.error("--epochs and --rounds must be >= 1")
    if not NOTES_SCRIPT.is_file():
        sys.exit(f"Error: reference script {NOTES_SCRIPT} not found (set CNNKIT_NOTES_SCRIPT)")
    source = data_dir(args.data_dir) / "mnist.npz"
    if args.quick:
        args.epochs, args.rounds, args.whole_epochs, args.memory_rounds = 2, 1, 1, 0

    with tempfile.TemporaryDirectory(prefix="cnnkit-bench-") as tmp:
        tmp = Path(tmp)
        if args.quick:
            npz, levers = subset_npz(source, tmp, 3000, 1000), {}
        elif args.subset:
            npz = subset_npz(source, tmp, args.subset, 10_000)
        else:
            npz = source
        cnnkit_runs, plain_runs = [], []
        lever_runs = {label: [] for label in levers}
        load_start = loadavg()
        for r in range(args.rounds):
            log(f"train round {r + 1}/{args.rounds}: cnnkit ...")
            cnnkit_runs.append(run_cnnkit(npz, args.epochs, tmp / f"runs{r}"))
            log(
                f"  cnnkit {cnnkit_runs[-1]['samples_per_s']:.0f} samples/s, "
                f"{cnnkit_runs[-1]['peak_rss_mb']:.0f} MB; plain Keras ..."
            )
            plain_runs.append(run_plain(npz, args.epochs))
            log(f"  plain  {plain_runs[-1]['samples_per_s']:.0f} samples/s, {plain_runs[-1]['peak_rss_mb']:.0f} MB")
            for label, lever in levers.items():
                lever_runs[label].append(
                    run_cnnkit(npz, args.epochs, tmp / f"{label}{r}", extra=lever["args"], env=lever["env"])
                )
                log(f"  {label} {lever_runs[label][-1]['samples_per_s']:.0f} samples/s")
        whole_cnnkit, whole_plain = [], []
        for r in range(args.rounds if args.whole_epochs else 0):
            log(
                f"whole-process round {r + 1}/{args.rounds}: cnnkit train --epochs {args.whole_epochs} (pictures on) ..."
            )
            whole_cnnkit.append(run_cnnkit(npz, args.whole_epochs, tmp / f"whole{r}", pictures=True))
            whole_plain.append(run_plain(npz, args.whole_epochs))
            log(f"  cnnkit {whole_cnnkit[-1]['wall_s']:.1f} s, plain {whole_plain[-1]['wall_s']:.1f} s")
        # The notes' own run, all 60,000 images and 5 epochs: its test accuracy on both sides, and peak memory: the
        # plain script's float64 copy of the data grows with the set and cnnkit's uint8 pipeline barely does, so
        # the subset above understates the gap the user sees.
        memory_cnnkit, memory_plain, recipe_runs = [], [], []
        for r in range(args.memory_rounds):
            log(
                f"full-data round {r + 1}/{args.memory_rounds}: all of MNIST, {args.memory_epochs} epochs, "
                "cnnkit with pictures ..."
            )
            memory_cnnkit.append(run_cnnkit(source, args.memory_epochs, tmp / f"memory{r}", pictures=True))
            memory_plain.append(run_plain(source, args.memory_epochs))
            log(f"  cnnkit {tree_peak_mb(memory_cnnkit[-1]):.0f} MB, plain {tree_peak_mb(memory_plain[-1]):.0f} MB")
            recipe_runs.append(run_cnnkit(source, args.memory_epochs, tmp / f"recipe{r}", spec=RECIPE_SPEC))
            log(f"  {RECIPE_SPEC.name}: test accuracy {recipe_runs[-1]['test_acc']:.4f}")

    cnnkit, plain = side_summary(cnnkit_runs), side_summary(plain_runs)
    speed_ratios = [c["samples_per_s"] / p["samples_per_s"] for c, p in zip(cnnkit_runs, plain_runs)]
    cpu_ratios = [c["cpu_s"] / p["cpu_s"] for c, p in zip(cnnkit_runs, plain_runs)]
    rss_ratios = [c["peak_rss_mb"] / p["peak_rss_mb"] for c, p in zip(cnnkit_runs, plain_runs)]
    # plain wall / cnnkit wall: > 1 means the user waits less with cnnkit.
    whole_ratios = [p["wall_s"] / c["wall_s"] for c, p in zip(whole_cnnkit, whole_plain)]
    whole_cpu_ratios = [p["cpu_s"] / c["cpu_s"] for c, p in zip(whole_cnnkit, whole_plain)]
    speed_ratio = cnnkit["samples_per_s"] / plain["samples_per_s"]
    rss_ratio = cnnkit["peak_rss_mb"] / plain["peak_rss_mb"]
    memory_ratios = [tree_peak_mb(c) / tree_peak_mb(p) for c, p in zip(memory_cnnkit, memory_plain)]
    # The target is judged on the full set when it was measured (every round within it), else on the subset.
    rss_target_ratios = memory_ratios or rss_ratios
    emit(
        {
            "benchmark": "train_throughput",
            "config": {
                "net": "notes' MNIST CNN (configs/mnist.yaml)",
                "data": str(npz),
                "epochs": args.epochs,
                "rounds": args.rounds,
                "batch_size": 64,
                "optimizer": "adam",
                "validation_split": 0.2,
                "quick": args.quick,
                "train_subset": args.subset,
                "n_train": cnnkit_runs[0]["n_train"],
            },
            "cnnkit": cnnkit,
            "plain_keras": plain,
            "ratio_samples_per_s": round(speed_ratio, 3),
            "ratio_samples_per_s_best": round(cnnkit["samples_per_s_best"] / plain["samples_per_s_best"], 3),
            "ratio_samples_per_s_per_round": [round(r, 3) for r in speed_ratios],
            "ratio_samples_per_s_spread": spread(speed_ratios),
            "verdict_samples_per_s": verdict(speed_ratios),
            "samples_per_s_spread": {
                "cnnkit": spread([r["samples_per_s"] for r in cnnkit_runs]),
                "plain_keras": spread([r["samples_per_s"] for r in plain_runs]),
            },
            "ratio_cpu_s_spread": spread(cpu_ratios),
            "ratio_peak_rss_spread": spread(rss_ratios),
            "whole_process": {
                "epochs": args.whole_epochs,
                "pictures": True,
                "cnnkit_wall_s": spread([r["wall_s"] for r in whole_cnnkit]),
                "plain_wall_s": spread([r["wall_s"] for r in whole_plain]),
                "cnnkit_cpu_s": spread([r["cpu_s"] for r in whole_cnnkit]),
                "plain_cpu_s": spread([r["cpu_s"] for r in whole_plain]),
                "speedup_wall_per_round": [round(r, 3) for r in whole_ratios],
                "speedup_wall_spread": spread(whole_ratios),
                "speedup_cpu_spread": spread(whole_cpu_ratios),
                "verdict": verdict(whole_ratios),
            },
            # Each lever against cnnkit's defaults, round by round (> 1: the lever is faster).
            "levers": {
                label: {
                    "set": levers[label]["args"][1::2],
                    "env": levers[label]["env"],
                    "samples_per_s": spread([r["samples_per_s"] for r in runs]),
                    "test_acc": [round(r["test_acc"], 4) for r in runs],
                    "ratio_vs_defaults_per_round": [
                        round(v["samples_per_s"] / c["samples_per_s"], 3) for v, c in zip(runs, cnnkit_runs)
                    ],
                    "ratio_vs_defaults_spread": spread(
                        [v["samples_per_s"] / c["samples_per_s"] for v, c in zip(runs, cnnkit_runs)]
                    ),
                    "ratio_vs_plain_spread": spread(
                        [v["samples_per_s"] / p["samples_per_s"] for v, p in zip(runs, plain_runs)]
                    ),
                    "verdict_vs_defaults": verdict(
                        [v["samples_per_s"] / c["samples_per_s"] for v, c in zip(runs, cnnkit_runs)]
                    ),
                }
                for label, runs in lever_runs.items()
            },
            "target_ratio_samples_per_s": f">= {TARGET_SPEED_RATIO}",
            # The paired measure decides: the median of the per-round ratios, every round agreeing.
            "meets_speed_target": median(speed_ratios) >= TARGET_SPEED_RATIO and verdict(speed_ratios) == "better",
            # CPU seconds barely move with load from other processes (wall time does): a second opinion.
            "ratio_cpu_s_whole_process": round(
                median(r["cpu_s"] for r in cnnkit_runs) / median(r["cpu_s"] for r in plain_runs), 3
            ),
            "ratio_peak_rss": round(rss_ratio, 3),
            "full_data_memory": {
                "data": str(source),
                "epochs": args.memory_epochs,
                "pictures": True,
                "rounds": len(memory_cnnkit),
                "cnnkit_peak_mb": spread([tree_peak_mb(r) for r in memory_cnnkit]),
                "plain_peak_mb": spread([tree_peak_mb(r) for r in memory_plain]),
                "ratio_per_round": [round(r, 3) for r in memory_ratios],
                "ratio_spread": spread(memory_ratios),
                "test_acc": {
                    "cnnkit": [round(r["test_acc"], 4) for r in memory_cnnkit],
                    "plain_keras": [round(r["test_acc"], 4) for r in memory_plain],
                    # configs/mnist_cosine.yaml: the same net and recipe, the learning rate on a cosine decay
                    "cnnkit_cosine": [round(r["test_acc"], 4) for r in recipe_runs],
                },
                "cosine_config": str(RECIPE_SPEC.relative_to(REPO)),
            }
            if memory_cnnkit
            else None,
            "target_ratio_peak_rss": f"<= {TARGET_RSS_RATIO}",
            "rss_target_judged_on": "full_data_memory" if memory_ratios else "subset",
            "meets_rss_target": max(rss_target_ratios) <= TARGET_RSS_RATIO,
            "loadavg_start_end": [load_start, loadavg()],
            "notes": [
                "cnnkit epoch times are its printed `epoch i/N  T s` lines (0.1 s resolution); "
                "epoch_s_from_line_gaps cross-checks them at ms resolution",
                "peak_rss_mb: os.wait4 ru_maxrss of each child (exact high-water mark); peak_tree_rss_mb: "
                "sum of VmRSS over the process tree polled every 50 ms",
                "full_data_memory: all 60,000 MNIST training images, the notes' epochs; peak MB is the larger of the "
                "two peaks per process tree (cnnkit's picture process included); the RSS target is judged there, "
                "every round within it",
                "the validation sets differ (the notes take the last 20%, cnnkit a seeded random 20%), so test "
                "accuracies are comparable in level, not identical",
                "cpu_s: user+system CPU seconds of the whole process (import, data, fit, test evaluation); "
                "samples_per_s_best: the fastest round, least disturbed by other load",
                "exit_after_last_output_s: from the last stdout line to process exit (interpreter/TF teardown); "
                "before_first_epoch_s (cnnkit): process start to the start of epoch 1 (imports, data, model)",
                "cnnkit epochs also include its per-epoch backup checkpoint and best.keras save; plain Keras has none",
            ],
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

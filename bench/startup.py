"""Start-up time of the commands that must not import TensorFlow, against `import tensorflow` itself.

Usage: python bench/startup.py [--repeats 5] [--tf-repeats 3] [--quick]
Each command runs as a fresh subprocess; the rounds interleave the commands, so load from other
processes on the machine hits all of them alike. Target: every cnnkit command < 0.5 s.
"""

from __future__ import annotations

import argparse
import sys

from _common import REPO, cnnkit_cmd, emit, imported_modules, loadavg, log, median, wall_time

TARGET_S = 0.5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tf-repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 repeats, 1 TensorFlow import, no warm-up")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.tf_repeats = 2, 1

    cnnkit = cnnkit_cmd()
    configs = sorted(str(p.relative_to(REPO)) for p in (REPO / "configs").glob("*.yaml"))
    commands = {
        "cnnkit --help": ["--help"],
        "cnnkit summary configs/mnist.yaml": ["summary", "configs/mnist.yaml"],
        "cnnkit validate configs/*.yaml": ["validate", *configs],
    }
    import_tf = [sys.executable, "-c", "import tensorflow"]

    for argv in commands.values() if not args.quick else ():
        wall_time(cnnkit + argv)  # one untimed run each: page cache and .pyc files, not start-up
    times = {name: [] for name in commands}
    tf_times = []
    for r in range(args.repeats):
        for name, argv in commands.items():
            times[name].append(wall_time(cnnkit + argv))
        if r < args.tf_repeats:
            tf_times.append(wall_time(import_tf))
        log(f"startup round {r + 1}/{args.repeats}: " + ", ".join(f"{times[n][-1]:.2f}s" for n in commands))

    tf_s = median(tf_times)
    results = {}
    for name, argv in commands.items():
        heavy = imported_modules(["-m", "cnnkit", *argv])
        med = median(times[name])
        results[name] = {
            "median_s": round(med, 3),
            "runs_s": [round(t, 3) for t in times[name]],
            "fraction_of_tf_import": round(med / tf_s, 3),
            "imports_tensorflow": "tensorflow" in heavy,
            "imports_keras": "keras" in heavy,
            "meets_target": med < TARGET_S and not heavy,
        }
    emit(
        {
            "benchmark": "startup",
            "target_s": TARGET_S,
            "commands": results,
            "import_tensorflow": {"median_s": round(tf_s, 3), "runs_s": [round(t, 3) for t in tf_times]},
            "all_meet_target": all(r["meets_target"] for r in results.values()),
            "loadavg_end": loadavg(),
            "method": f"wall time of a fresh subprocess, median of {args.repeats} (TF import: median of "
            f"{args.tf_repeats}), rounds interleaved after one untimed warm-up run (none with --quick); TensorFlow/Keras "
            f"detection via `python -X importtime -m cnnkit ...`",
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Wall time of `cnnkit plot architecture` and `cnnkit plot feature-maps` as fresh processes, against `import tensorflow`.

Usage: python bench/pictures_speed.py [--repeats 5] [--run RUN] [--quick]

Each command runs as a fresh subprocess, what a user waits for; the rounds interleave the commands (and the
TensorFlow import, the floor of any command that loads a model), so load from other processes hits all of them
alike. `plot feature-maps` needs a run: --run, else a 1-epoch `digits` run trained here first (offline, seconds).
Target: `plot architecture configs/color.yaml` < 1 s, and it imports neither TensorFlow, Keras nor matplotlib.
`plot feature-maps` has no fixed target: its time over `import tensorflow` is what cnnkit adds.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from _common import REPO, cnnkit_cmd, emit, imported_modules, loadavg, log, spread, wall_time

TARGET_S = 1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--run", type=Path, default=None, help="a run folder (default: train a 1-epoch digits run)")
    parser.add_argument("--quick", action="store_true", help="2 repeats, no warm-up")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 2
    # This checkout's cnnkit, also in a git worktree whose venv's editable install points at another checkout.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))

    cnnkit = cnnkit_cmd()
    with tempfile.TemporaryDirectory(prefix="cnnkit-bench-") as tmp:
        tmp = Path(tmp)
        run = args.run
        if run is None:
            log("training a 1-epoch digits run for plot feature-maps")
            wall_time(
                cnnkit + ["train", "configs/digits.yaml", "--epochs", "1", "--no-pictures", "--out", str(tmp)],
                timeout=900,
            )
            run = tmp / "latest"
        commands = {
            "cnnkit plot architecture configs/color.yaml": cnnkit
            + ["plot", "architecture", "configs/color.yaml", "--out", str(tmp / "architecture.png")],
            "cnnkit plot feature-maps RUN": cnnkit
            + ["plot", "feature-maps", str(run), "--out", str(tmp / "feature_maps.png")],
            'python -c "import tensorflow"': [sys.executable, "-c", "import tensorflow"],
        }
        for cmd in commands.values() if not args.quick else ():
            wall_time(cmd)  # one untimed run each: page cache and .pyc files, not start-up
        times = {name: [] for name in commands}
        for r in range(args.repeats):
            for name, cmd in commands.items():
                times[name].append(wall_time(cmd))
            log(f"pictures round {r + 1}/{args.repeats}: " + ", ".join(f"{times[n][-1]:.2f}s" for n in commands))
        heavy = imported_modules(
            ["-m", "cnnkit", "plot", "architecture", "configs/color.yaml", "--out", str(tmp / "imports.png")],
            prefixes=("tensorflow", "keras", "tf_keras", "matplotlib"),
        )

    tf_s = spread(times['python -c "import tensorflow"'])["median"]
    results = {}
    for name in commands:
        row = {**spread(times[name]), "runs_s": [round(t, 3) for t in times[name]]}
        if "architecture" in name:
            row.update(target_s=TARGET_S, imports=heavy, meets_target=row["median"] < TARGET_S and not heavy)
        elif "feature-maps" in name:
            row["over_import_tensorflow_s"] = round(row["median"] - tf_s, 3)
        results[name] = row
    emit(
        {
            "benchmark": "pictures_speed",
            "target_s": TARGET_S,
            "commands": results,
            "all_meet_target": all(r.get("meets_target", True) for r in results.values()),
            "loadavg_end": loadavg(),
            "method": f"wall time of a fresh subprocess, median [min-max] of {args.repeats} rounds, interleaved, after "
            "one untimed warm-up run each (none with --quick); feature maps of a 1-epoch digits run (or --run); "
            "TensorFlow/Keras/matplotlib detection via `python -X importtime -m cnnkit plot architecture ...`",
        }
    )
    return 0 if not heavy else 1  # importing them is a correctness failure, not a timing


if __name__ == "__main__":
    sys.exit(main())

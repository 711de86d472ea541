"""Time to draw `cnnkit plot architecture` for every spec in configs/ and to print `cnnkit summary`.

Usage: python bench/summary_speed.py [--repeats 3] [--quick]

Two ways: in-process through the CLI (typer's CliRunner: exactly the command's code, without the
interpreter start), after one untimed warm-up call that pays the matplotlib import, then asserting
that TensorFlow was never imported; and as fresh subprocesses, what a user waits for (median of
N). Target: < 1 s each.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, cnnkit_cmd, emit, loadavg, log, median, wall_time

TARGET_S = 1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--quick", action="store_true", help="1 subprocess run, of the mnist.yaml commands only (in-process: all)"
    )
    args = parser.parse_args()
    if args.quick:
        args.repeats = 1

    from typer.testing import CliRunner

    from cnnkit.cli import app

    runner = CliRunner()
    configs = sorted((REPO / "configs").glob("*.yaml"))
    jobs = {f"plot architecture {p.relative_to(REPO)}": ["plot", "architecture", str(p)] for p in configs}
    jobs["summary configs/mnist.yaml"] = ["summary", str(REPO / "configs" / "mnist.yaml")]

    with tempfile.TemporaryDirectory(prefix="cnnkit-bench-") as tmp:
        tmp = Path(tmp)

        def argv_for(name: str, argv: list[str], where: str) -> tuple[list[str], Path | None]:
            if argv[0] != "plot":
                return argv, None
            png = tmp / f"{where}-{Path(argv[-1]).stem}.png"
            return argv + ["--out", str(png)], png

        def invoke(full: list[str]) -> None:
            result = runner.invoke(app, full)
            if result.exit_code != 0:
                raise RuntimeError(f"cnnkit {' '.join(full)} exited {result.exit_code}: {result.output[-500:]}")

        # Untimed first call: it pays the one-off matplotlib import, reported on its own.
        start = time.perf_counter()
        invoke(["plot", "architecture", str(REPO / "configs" / "mnist.yaml"), "--out", str(tmp / "warmup.png")])
        warmup_s = time.perf_counter() - start
        in_process = {}
        for name, argv in jobs.items():
            full, png = argv_for(name, argv, "inproc")
            start = time.perf_counter()
            invoke(full)
            took = time.perf_counter() - start
            if png is not None and not (png.is_file() and png.stat().st_size > 0):
                raise RuntimeError(f"cnnkit {' '.join(full)} wrote no PNG")
            in_process[name] = took
        tf_imported = "tensorflow" in sys.modules or "keras" in sys.modules
        log(f"in-process: {len(jobs)} commands, slowest {max(in_process.values()):.2f}s, TF imported: {tf_imported}")

        timed = [n for n in jobs if "mnist.yaml" in n.split("/")[-1] and "_" not in n] if args.quick else list(jobs)
        subprocess_s = {name: [] for name in timed}
        for r in range(args.repeats):
            for name in timed:
                full, _ = argv_for(name, jobs[name], "subproc")
                subprocess_s[name].append(wall_time(cnnkit_cmd() + full))
            log(f"subprocess round {r + 1}/{args.repeats}, slowest {max(v[-1] for v in subprocess_s.values()):.2f}s")

    rows = {}
    for name in jobs:
        runs = subprocess_s.get(name, [])
        rows[name] = {
            "in_process_s": round(in_process[name], 3),
            "subprocess_median_s": round(median(runs), 3) if runs else None,
            "subprocess_runs_s": [round(t, 3) for t in runs],
            "meets_target": in_process[name] < TARGET_S and (not runs or median(runs) < TARGET_S),
        }
    emit(
        {
            "benchmark": "summary_speed",
            "target_s": TARGET_S,
            "commands": rows,
            "in_process_warmup_s": round(warmup_s, 3),
            "method": "in-process: CliRunner, after one untimed warm-up call whose time (mostly the matplotlib "
            "import) is in_process_warmup_s; subprocess: fresh `cnnkit ...` processes, median of runs",
            "tensorflow_imported_in_process": tf_imported,
            "all_meet_target": all(r["meets_target"] for r in rows.values()) and not tf_imported,
            "loadavg_end": loadavg(),
        }
    )
    # The no-TensorFlow promise is a correctness check, not a timing: fail loudly if it breaks.
    return 1 if tf_imported else 0


if __name__ == "__main__":
    sys.exit(main())

"""Run every benchmark in sequence and write their JSON, plus a description of the machine, to one file.

Usage: python bench/run_all.py [--quick] [--data-dir DIR] [--out FILE] [--only NAME ...]
       make bench            (sets CNNKIT_DATA_DIR to ../shared/data)

--quick: tiny sizes, a smoke test that finishes in about 2 minutes; writes bench/results.quick.json
so it never overwrites real numbers. Default: the real sizes (several minutes), bench/results.json.
Benchmarks run one after another, never in parallel, so that they do not slow each other down. A
benchmark that fails is recorded with its exit code and stderr tail; the others still run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from _common import REPO, loadavg, log

BENCH = Path(__file__).resolve().parent
ORDER = (
    "startup",
    "summary_speed",
    "pictures_speed",
    "eval_throughput",
    "train_throughput",
    "flops",
    "step_profile",
    "scaling",
    "transfer_demo",
)
TIMEOUT_S = {
    "startup": 300,
    "summary_speed": 300,
    "pictures_speed": 600,
    "eval_throughput": 300,
    "train_throughput": 5400,  # 5 rounds of 6 sides, then 5 whole-process pairs and 2 full-data rounds, on two cores
    "flops": 600,
    "step_profile": 600,
    "scaling": 1200,
    "transfer_demo": 1800,
}


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
        platform.processor(),
    )
    mem_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal:")
    )

    def version(pkg):
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None

    return {
        "cpu_model": model,
        "cpus_online": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "memory_gib": round(mem_kb / 2**20, 1),
        "python": platform.python_version(),
        "tensorflow": version("tensorflow") or version("tensorflow-cpu"),
        "keras": version("keras"),
        "numpy": version("numpy"),
        "cnnkit": version("cnnkit"),
        "platform": platform.platform(),
        "loadavg_at_start": loadavg(),
    }


def measured(machine_facts: dict, started: str) -> dict:
    """Where and when one benchmark ran: results.json mixes runs of different days (and machines) after --only."""
    return {
        "date": started[:10],
        "cpu_model": machine_facts.get("cpu_model"),
        "cpus": machine_facts.get("cpus_usable"),
        "loadavg_at_start": (machine_facts.get("loadavg_at_start") or [None])[0],
    }


def run(name: str, extra: list[str]) -> dict:
    cmd = [sys.executable, str(BENCH / f"{name}.py"), *extra]
    log(f"== {name}: {' '.join(cmd[1:])}")
    start = time.perf_counter()
    try:
        done = subprocess.run(
            cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=TIMEOUT_S[name]
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {TIMEOUT_S[name]} s", "seconds": TIMEOUT_S[name]}
    took = round(time.perf_counter() - start, 1)
    # Keep the benchmark's own progress lines (they start with a [HH:MM:SS] stamp), not TF's start-up noise.
    for line in done.stderr.splitlines():
        if line.startswith("["):
            print(f"   {line}", file=sys.stderr, flush=True)
    try:
        result = json.loads(done.stdout) if done.stdout.strip() else None
    except json.JSONDecodeError:
        result = None
    if done.returncode != 0 or result is None:
        return {
            "error": f"exit code {done.returncode}",
            "seconds": took,
            "result": result,
            "stderr_tail": done.stderr.strip().splitlines()[-20:],
        }
    result["seconds"] = took
    return result


def headline(results: dict) -> list[str]:
    """One line per benchmark with its key number and target, for the terminal."""
    lines = []
    for name, r in results.items():
        if "error" in r:
            lines.append(f"{name:17s} FAILED: {r['error']}")
        elif name == "startup":
            cmds = ", ".join(f"{k.split()[1]} {v['median_s']:.2f}s" for k, v in r["commands"].items())
            lines.append(
                f"{name:17s} {cmds} (import tensorflow {r['import_tensorflow']['median_s']:.2f}s); "
                f"target <0.5s, no TF: {'ok' if r['all_meet_target'] else 'MISSED'}"
            )
        elif name == "summary_speed":
            slow = max(r["commands"].items(), key=lambda kv: kv[1]["subprocess_median_s"] or 0)
            lines.append(
                f"{name:17s} slowest subprocess {slow[0]} {slow[1]['subprocess_median_s']}s, TF imported: "
                f"{r['tensorflow_imported_in_process']}; target <1s: "
                f"{'ok' if r['all_meet_target'] else 'MISSED'}"
            )
        elif name == "pictures_speed":
            arch, maps, tf = r["commands"].values()
            lines.append(
                f"{name:17s} plot architecture {arch['median']:.2f}s [{arch['min']:.2f}-{arch['max']:.2f}], "
                f"feature-maps {maps['median']:.2f}s (import tensorflow {tf['median']:.2f}s); target <1s, "
                f"no TF/matplotlib: {'ok' if r['all_meet_target'] else 'MISSED'}"
            )
        elif name == "eval_throughput":
            v = r["variants"]
            lines.append(
                f"{name:17s} cnnkit {v['cnnkit']['samples_per_s']}/s vs plain {v['plain']['samples_per_s']}/s "
                f"(x{r['ratio_cnnkit_vs_plain']}; plain@256 {v['plain_batch256']['samples_per_s']}/s)"
            )
        elif name == "train_throughput":
            per_round = r.get("ratio_samples_per_s_spread") or {}
            lines.append(
                f"{name:17s} cnnkit {r['cnnkit']['samples_per_s']}/s vs plain {r['plain_keras']['samples_per_s']}/s "
                f"(x{per_round.get('median')} [{per_round.get('min')}-{per_round.get('max')}] per round: "
                f"{r.get('verdict_samples_per_s')}); "
                f"peak RSS {r['cnnkit']['peak_rss_mb']:.0f} vs {r['plain_keras']['peak_rss_mb']:.0f} MB "
                f"(x{r['ratio_peak_rss']}"
                + (
                    f"; all of MNIST x{r['full_data_memory']['ratio_spread']['median']}"
                    if r.get("full_data_memory")
                    else ""
                )
                + f", target <=0.6: {'ok' if r['meets_rss_target'] else 'MISSED'})"
            )
        elif name == "flops":
            lines.append(
                f"{name:17s} {r['achieved_gflops']} GFLOP/s of {r['peak']['peak_gflops']} peak "
                f"({r['fraction_of_peak']:.1%})"
            )
        elif name == "step_profile":
            top, grad = r["kernels"][0] if r.get("kernels") else None, r["weight_gradient"]
            lines.append(
                f"{name:17s} step {r['step_ms']['median']:.1f} ms"
                + (f", largest kernel {top['what']} {top['ms_per_step']:.1f} ms" if top else "")
                + f"; weight gradient as 9 products x{grad['speedup_spread']['median']:.2f} alone, "
                f"x{grad['in_step']['speedup_spread']['median']:.2f} in the step ({grad['in_step']['verdict']})"
            )
        elif name == "transfer_demo":
            lines.append(
                f"{name:17s} FromRun of the notes' MNIST run on {r['config']['samples']} Fashion-MNIST images: "
                f"{r['transfer_test_acc']['median']:.4f} vs scratch {r['scratch_test_acc']['median']:.4f} "
                f"(gain {r['gain']['median']:+.4f} [{r['gain']['min']:+.4f}..{r['gain']['max']:+.4f}])"
            )
        elif name == "scaling":
            lines.append(
                f"{name:17s} time ~ samples^{r['exponent_time_vs_samples']} (expect ~1), "
                f"~ MACs^{r['exponent_time_vs_forward_macs']} over widths"
            )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test (~2 min)")
    parser.add_argument("--data-dir", default=None, help="folder with mnist.npz (default $CNNKIT_DATA_DIR)")
    parser.add_argument("--out", type=Path, default=None, help="default bench/results.json (.quick.json)")
    parser.add_argument("--only", nargs="+", choices=ORDER, default=list(ORDER))
    args = parser.parse_args()
    out = args.out or BENCH / ("results.quick.json" if args.quick else "results.json")

    common = (["--quick"] if args.quick else []) + (["--data-dir", args.data_dir] if args.data_dir else [])
    started = time.perf_counter()
    report = {
        "machine": machine(),
        "quick": args.quick,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "benchmarks": {},
    }
    if set(args.only) != set(ORDER) and out.is_file():
        # Re-running some benchmarks keeps the others' last results, each with the machine and day it ran on.
        previous = json.loads(out.read_text())
        report["benchmarks"] = previous.get("benchmarks", {})
        for entry in report["benchmarks"].values():
            entry.setdefault("measured", measured(previous.get("machine", {}), previous.get("started", "")))
    for name in ORDER:
        if name not in args.only:
            continue
        extra = [a for a in common if name not in ("startup", "summary_speed", "pictures_speed") or a == "--quick"]
        if name == "flops":
            train = report["benchmarks"].get("train_throughput", {})
            if "cnnkit" in train:  # reuse the throughput just measured instead of training again
                extra += ["--samples-per-s", str(train["cnnkit"]["samples_per_s"])]
        report["benchmarks"][name] = run(name, extra)
        report["benchmarks"][name]["measured"] = measured(report["machine"], report["started"])
    report["machine"]["loadavg_at_end"] = loadavg()
    report["total_s"] = round(time.perf_counter() - started, 1)
    report["benchmarks"] = {name: report["benchmarks"][name] for name in ORDER if name in report["benchmarks"]}
    # gpu_check.py (make gpu-check) measures on a machine with a GPU, which this run may not be: keep its last entry.
    kept = json.loads(out.read_text()).get("benchmarks", {}).get("gpu_check") if out.is_file() else None
    if kept is not None:
        report["benchmarks"]["gpu_check"] = kept
    out.write_text(json.dumps(report, indent=2) + "\n")
    if out == BENCH / "results.json":
        subprocess.run([sys.executable, str(BENCH / "readme_table.py")], check=True)  # the README's table
    for line in headline(report["benchmarks"]):
        print(line)
    if args.quick:
        print("(--quick: tiny sizes for a smoke test; the targets are meant for the default sizes)")
    print(
        f"wrote {out} ({report['total_s']} s; load average {report['machine']['loadavg_at_start']} -> "
        f"{report['machine']['loadavg_at_end']} on {report['machine']['cpus_usable']} CPUs)"
    )
    return 1 if any("error" in r for r in report["benchmarks"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())

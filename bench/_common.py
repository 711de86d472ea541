"""Shared helpers for the benchmarks: paths, timing, a child-process runner that records peak RSS.

Every benchmark prints ONE JSON object on stdout and its progress on stderr, so `run_all.py` can
combine them. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MNIST_SPEC = REPO / "configs" / "mnist.yaml"
NOTES_SCRIPT = Path(os.environ.get("CNNKIT_NOTES_SCRIPT", REPO.parent / "shared" / "bench" / "notes_keras_mnist.py"))
POLL_S = 0.05  # how often the process tree's RSS is sampled


def data_dir(arg: str | None) -> Path:
    """--data-dir, else $CNNKIT_DATA_DIR (what `make bench` sets), else ../shared/data."""
    folder = Path(arg or os.environ.get("CNNKIT_DATA_DIR") or REPO.parent / "shared" / "data").resolve()
    if not (folder / "mnist.npz").is_file():
        sys.exit(f"Error: {folder / 'mnist.npz'} not found; pass --data-dir or set CNNKIT_DATA_DIR")
    return folder


def subset_npz(source: Path, folder: Path, n_train: int, n_test: int) -> Path:
    """A smaller mnist.npz (the first N of each split) in `folder`, for --quick smoke runs."""
    import numpy as np

    with np.load(source, allow_pickle=False) as d:
        np.savez(
            folder / "mnist.npz",
            x_train=d["x_train"][:n_train],
            y_train=d["y_train"][:n_train],
            x_test=d["x_test"][:n_test],
            y_test=d["y_test"][:n_test],
        )
    return folder / "mnist.npz"


def cnnkit_cmd() -> list[str]:
    """The installed `cnnkit` entry point (what a user runs), else `python -m cnnkit`."""
    script = Path(sys.executable).parent / "cnnkit"
    return [str(script)] if script.exists() else [sys.executable, "-m", "cnnkit"]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def emit(result: dict) -> None:
    sys.stdout.write(json.dumps(result, indent=2) + "\n")


def median(values):
    values = sorted(values)
    n = len(values)
    if not n:
        return None
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def steady_epoch_s(times: list[float]) -> float:
    """The notes script's own rule, so both sides are reduced alike: the median of the epochs after
    the first (the first pays tracing); for an even count the upper of the two middle values."""
    rest = times[1:] or times
    return sorted(rest)[len(rest) // 2]


def loadavg() -> list[float]:
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


@dataclass
class Measured:
    cmd: list[str]
    rc: int
    wall_s: float
    lines: list[tuple[float, str]]  # (seconds since start, stdout line) as each line arrived
    stderr: str
    peak_rss_mb: float  # kernel high-water mark of the largest process in the tree (wait4)
    peak_tree_rss_mb: float  # largest sum of VmRSS over the tree, sampled every POLL_S
    cpu_s: float = 0.0  # user + system CPU seconds of the tree (wait4): less load-sensitive than wall
    samples: int = field(default=0)

    @property
    def stdout(self) -> str:
        return "".join(line for _, line in self.lines)

    def check(self) -> "Measured":
        if self.rc != 0:
            tail = "\n".join(self.stderr.strip().splitlines()[-15:])
            raise RuntimeError(f"{' '.join(self.cmd)} exited {self.rc}:\n{tail}")
        return self


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # The command name (field 2) may hold spaces or parentheses: split after its last ')'.
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def _vmrss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kb(pid: int) -> int:
    kids = _children_map()
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += _vmrss_kb(p)
        todo.extend(kids.get(p, []))
    return total


def run_measured(cmd: list[str], *, timeout: float = 900, cwd: Path = REPO, env: dict | None = None) -> Measured:
    """Run `cmd`, timestamping each stdout line as it arrives and tracking peak memory.

    Peak RSS comes two ways: os.wait4 returns the child's own rusage (ru_maxrss: the high-water mark
    of the largest process in its tree, exact), and a 50 ms poll of /proc sums VmRSS over the whole
    tree (catches several processes at once, may miss a short spike).
    """
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
    lines: list[tuple[float, str]] = []
    err_chunks: list[str] = []

    def read_out():
        for line in proc.stdout:
            lines.append((time.perf_counter() - start, line))

    def read_err():
        err_chunks.append(proc.stderr.read())

    readers = [threading.Thread(target=read_out, daemon=True), threading.Thread(target=read_err, daemon=True)]
    for t in readers:
        t.start()
    peak_tree, samples, status, usage = 0, 0, None, None
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - start > timeout:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        peak_tree = max(peak_tree, tree_rss_kb(proc.pid))
        samples += 1
        time.sleep(POLL_S)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait for it again
    for t in readers:
        t.join(timeout=10)
    return Measured(
        cmd,
        proc.returncode,
        wall,
        lines,
        "".join(err_chunks),
        peak_rss_mb=usage.ru_maxrss / 1024,
        peak_tree_rss_mb=peak_tree / 1024,
        cpu_s=usage.ru_utime + usage.ru_stime,
        samples=samples,
    )


def wall_time(cmd: list[str], *, cwd: Path = REPO, timeout: float = 120) -> float:
    """Seconds from spawn to exit; output discarded; a non-zero exit is an error, not a time."""
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=timeout)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return took


def imported_modules(cmd_after_python: list[str], prefixes=("tensorflow", "keras")) -> list[str]:
    """Top-level modules matching `prefixes` that `python -X importtime ...` reports importing."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *cmd_after_python],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
    )
    found = set()
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+\d+ \|(\s*)(\S+)", line)
        if m and m.group(2).split(".")[0] in prefixes:
            found.add(m.group(2).split(".")[0])
    return sorted(found)


class EpochTimer:
    """A cnnkit `reporter` (train(request, reporter)) that records each epoch's wall time.

    Its callback has only epoch hooks, so Keras keeps asynchronous batch dispatch, exactly as with
    cnnkit's own progress reporter; it is added last, so an epoch includes cnnkit's per-epoch work
    (backup checkpoint, history, best.keras), as the CLI's printed epoch time does.
    """

    def __init__(self):
        self.times: list[float] = []

    def keras_callback(self, keras, epochs, steps):
        times = self.times

        class Timer(keras.callbacks.Callback):
            async_safe = True

            def on_epoch_begin(self, epoch, logs=None):
                self.t = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                times.append(time.perf_counter() - self.t)

        return Timer()


def spread(values) -> dict:
    """Median and range of a list of measurements: every claim carries its spread."""
    values = [v for v in values if v is not None]
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {
        "median": round(median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "n": len(values),
    }


def verdict(ratios: list[float], *, higher_is_better: bool = True) -> str:
    """'faster' / 'slower' only when every round agrees; a range that straddles 1.0 is 'no difference'.

    `ratios` are per-round cnnkit/reference values, each from one interleaved A/B pair.
    """
    if not ratios:
        return "not measured"
    low, high = min(ratios), max(ratios)
    if low <= 1.0 <= high:
        return "no difference"
    better = low > 1.0 if higher_is_better else high < 1.0
    return "better" if better else "worse"

"""Epoch time vs dataset size and vs network width, for `cnnkit train` on the notes' MNIST net.

Usage: python bench/scaling.py [--sizes 10000,20000,40000,60000] [--widths 1,2,4] [--width-samples 10000]
                               [--data-dir DIR] [--quick]

Runs cnnkit's own train(TrainRequest(...)) in this one process (TensorFlow imported once), with
`data.max_samples=N` for size and `layers.0.Conv2D.filters` / `layers.2.Conv2D.filters` scaled for
width; validation_split stays 0.2 (cnnkit shrinks the carved validation set with max_samples, so
each epoch's validation pass scales with it). Each configuration trains --epochs (3) epochs; the
first pays graph tracing, a constant that would bend the size curve, so the time is the fastest of
the later ones (the minimum filters out stalls from other processes, which only ever add time).
Reports the log-log least-squares exponent of epoch time vs training samples (expect ~1: linear).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import MNIST_SPEC, EpochTimer, data_dir, emit, loadavg, log, subset_npz


def timed_epoch(tmp: Path, data: Path, overrides: list[str], epochs: int) -> dict:
    from cnnkit.backend import keras
    from cnnkit.run.train import TrainRequest, train

    keras().backend.clear_session()  # each configuration starts from the same clean Keras state
    timer = EpochTimer()
    result = train(
        TrainRequest(spec_file=MNIST_SPEC, overrides=tuple(overrides), epochs=epochs, data_dir=str(data), out=tmp),
        timer,
    )
    run_info = json.loads((result.run_dir / "run.json").read_text())
    return {
        "n_train": run_info["samples"]["train"],
        "n_val": run_info["samples"]["val"],
        "epoch_s": min(timer.times[1:]),
        "epoch_s_all": [round(t, 3) for t in timer.times],
    }


def loglog_exponent(x, y) -> float:
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,20000,40000,60000")
    parser.add_argument("--widths", default="1,2,4")
    parser.add_argument("--width-samples", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=3, help="per configuration; the first is not timed")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument(
        "--quick", action="store_true", help="sizes 500/1k/2k, widths x1/x2 at 500, from a 3,000/1,000-image subset"
    )
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.widths, args.width_samples = "500,1000,2000", "1,2", 500
    if args.epochs < 2:
        parser.error("--epochs must be >= 2: the first epoch pays tracing and is not timed")
    sizes = [int(s) for s in args.sizes.split(",")]
    widths = [int(w) for w in args.widths.split(",")]
    data = data_dir(args.data_dir)

    from cnnkit.spec.parse import load_spec

    base = load_spec(MNIST_SPEC)
    filters0, filters2 = base.layers[0].args["filters"], base.layers[2].args["filters"]

    with tempfile.TemporaryDirectory(prefix="cnnkit-bench-") as tmp:
        tmp = Path(tmp)
        if args.quick:  # a small test split too: every train() ends by evaluating it
            (tmp / "data").mkdir()
            data = subset_npz(data / "mnist.npz", tmp / "data", 3000, 1000).parent
        by_size = []
        for n in sizes:
            row = timed_epoch(tmp, data, [f"data.max_samples={n}"], args.epochs)
            row["requested_max_samples"] = n
            row["samples_per_s"] = row["n_train"] / row["epoch_s"]
            by_size.append(row)
            log(f"scaling size {n}: {row['n_train']} train samples, epoch {row['epoch_s']:.2f}s")
        by_width = []
        for w in widths:
            overrides = [
                f"data.max_samples={args.width_samples}",
                f"layers.0.Conv2D.filters={filters0 * w}",
                f"layers.2.Conv2D.filters={filters2 * w}",
            ]
            row = timed_epoch(tmp, data, overrides, args.epochs)
            row.update(
                width=w,
                filters=[filters0 * w, filters2 * w],
                forward_macs=load_spec(MNIST_SPEC, overrides).summary.total_macs,
            )
            row["samples_per_s"] = row["n_train"] / row["epoch_s"]
            by_width.append(row)
            log(f"scaling width x{w}: epoch {row['epoch_s']:.2f}s, {row['forward_macs']:,} MACs/sample")

    n_train = sorted({r["n_train"] for r in by_size})
    size_exp = (
        loglog_exponent([r["n_train"] for r in by_size], [r["epoch_s"] for r in by_size]) if len(n_train) > 1 else None
    )
    width_exp = (
        loglog_exponent([r["forward_macs"] for r in by_width], [r["epoch_s"] for r in by_width])
        if len(by_width) > 1
        else None
    )

    def rnd(rows):
        return [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]

    emit(
        {
            "benchmark": "scaling",
            "by_size": rnd(by_size),
            "exponent_time_vs_samples": round(size_exp, 3) if size_exp is not None else None,
            "expected_exponent_time_vs_samples": "~1 (linear)",
            "by_width": rnd(by_width),
            "exponent_time_vs_forward_macs": round(width_exp, 3) if width_exp is not None else None,
            "method": f"in-process cnnkit.run.train.train(), {args.epochs} epochs per configuration, epoch_s = the "
            f"fastest after the first (an epoch includes its validation pass and cnnkit's per-epoch "
            f"checkpointing); exponents are log-log least-squares slopes",
            "notes": [
                "at --quick sizes an epoch is ~0.1-0.5 s, where fixed per-epoch costs and load noise "
                "dominate: the exponents are only meaningful at the default sizes",
                "max_samples caps the training set left after the 20% validation carve, so a request of "
                "60000 trains on 48000: the fit uses the actual n_train",
            ],
            "loadavg_end": loadavg(),
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

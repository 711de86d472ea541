"""Test-set inference speed: cnnkit's predict_probabilities(model, uint8) vs plain model.predict(x / 255.0).

Usage: python bench/eval_throughput.py [--samples 10000] [--repeats 3] [--data-dir DIR] [--quick]

One process, one notes' MNIST model (built by cnnkit from configs/mnist.yaml, freshly initialised:
inference speed does not depend on the weights), the first N test images. Each variant is called once
untimed (tracing), then the variants are timed in interleaved rounds; the median is reported.
"plain" is what the notes write: model.predict(x / 255.0), which also pays the float64 conversion
and Keras' default batch of 32; "plain_batch256" isolates the batch-size part at cnnkit's batch.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from _common import MNIST_SPEC, data_dir, emit, loadavg, log, median


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--quick", action="store_true", help="2,000 images, 1 timed round")
    args = parser.parse_args()
    if args.quick:
        args.samples, args.repeats = 2000, 1

    with np.load(data_dir(args.data_dir) / "mnist.npz", allow_pickle=False) as d:
        x = d["x_test"][: args.samples].reshape(-1, 28, 28, 1)  # uint8, the layout cnnkit's loaders give

    from cnnkit.backend import tensorflow
    from cnnkit.run.build import build_model
    from cnnkit.run.evaluate import predict_probabilities
    from cnnkit.spec.parse import load_spec

    tf = tensorflow()
    tf.keras.utils.set_random_seed(0)
    model = build_model(load_spec(MNIST_SPEC))

    variants = {
        "cnnkit": lambda: predict_probabilities(model, x),
        "plain": lambda: model.predict(x / 255.0, verbose=0),
        "plain_batch256": lambda: model.predict(x / 255.0, batch_size=256, verbose=0),
    }
    outputs = {name: np.asarray(fn()) for name, fn in variants.items()}  # untimed: traces predict
    times = {name: [] for name in variants}
    for r in range(args.repeats):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
        log(f"eval round {r + 1}/{args.repeats}: " + ", ".join(f"{n} {t[-1]:.2f}s" for n, t in times.items()))

    n = len(x)
    result = {
        name: {
            "samples_per_s": round(n / median(ts)),
            "median_s": round(median(ts), 4),
            "runs_s": [round(t, 4) for t in ts],
        }
        for name, ts in times.items()
    }
    ratio = result["cnnkit"]["samples_per_s"] / result["plain"]["samples_per_s"]
    emit(
        {
            "benchmark": "eval_throughput",
            "config": {
                "net": "notes' MNIST CNN (configs/mnist.yaml), fresh weights",
                "samples": n,
                "repeats": args.repeats,
                "cnnkit_batch_size": 256,
                "plain_batch_size": 32,
            },
            "variants": result,
            "ratio_cnnkit_vs_plain": round(ratio, 3),
            "ratio_cnnkit_vs_plain_batch256": round(
                result["cnnkit"]["samples_per_s"] / result["plain_batch256"]["samples_per_s"], 3
            ),
            # Same model, same images: the variants must agree (float32 x*(1/255) vs float64 x/255).
            "max_abs_prob_diff": float(np.abs(outputs["cnnkit"] - outputs["plain"]).max()),
            "argmax_agreement": float((outputs["cnnkit"].argmax(1) == outputs["plain"].argmax(1)).mean()),
            "loadavg_end": loadavg(),
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

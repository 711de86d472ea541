"""Transfer from your own run: the notes' MNIST conv stack (FromRun) fine-tuned on 1,000 Fashion-MNIST images, against
the same network trained from scratch on the same 1,000 images.

Usage: python bench/transfer_demo.py [--mnist-run RUN] [--samples 1000] [--epochs 20] [--unfreeze-at 11]
                                     [--data-dir DIR] [--quick]

1. The source: `cnnkit train configs/mnist.yaml` (the notes' net, 5 epochs on all of MNIST), unless --mnist-run
   names such a run. Its test accuracy is reported too: the notes' 5-epoch MNIST figure with cnnkit's defaults.
2. transfer: FromRun {until: 3} takes its Conv32-Pool-Conv64-Pool with their weights, frozen; a new Dense64-Dense10
   head trains on top for epochs 1..unfreeze-1, then train.fine_tune unfreezes the stack at learning rate 1e-4.
3. scratch: the same layers, freshly initialised, the same data, epochs and optimizer (Adam 1e-3 throughout:
   nothing is frozen, so there is nothing to unfreeze).
Both train on the first `--samples` Fashion-MNIST training images of the seeded shuffle (data.max_samples; 2 %
of the rest is the validation set the curves show, not training data) and are tested on all 10,000 test images.
The gain is transfer minus scratch test accuracy, whatever its sign. Seeds 0, 1 and 2 give three pairs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from _common import MNIST_SPEC, cnnkit_cmd, data_dir, emit, loadavg, log, run_measured, spread

HEAD = """\
  - Flatten
  - Dense: {units: 64, activation: relu}
  - Dense: {units: 10, activation: softmax}
"""
STACK = """\
  - Conv2D: {filters: 32, kernel_size: 3, activation: relu}
  - MaxPooling2D: {pool_size: 2}
  - Conv2D: {filters: 64, kernel_size: 3, activation: relu}
  - MaxPooling2D: {pool_size: 2}
"""


def spec_text(name: str, stack: str, *, samples: int, epochs: int, unfreeze_at: int | None) -> str:
    fine_tune = f"  fine_tune: {{unfreeze_at_epoch: {unfreeze_at}, learning_rate: 1.0e-4, layers: all}}\n"
    return (
        f"name: {name}\ninput_shape: [28, 28, 1]\nlayers:\n{stack}{HEAD}"
        f"data: {{dataset: fashion_mnist, max_samples: {samples}, validation_split: 0.02}}\n"
        f"train:\n  epochs: {epochs}\n" + (fine_tune if unfreeze_at else "")
    )


def train(spec: Path, data: Path, out: Path, *extra: str) -> dict:
    measured = run_measured(
        cnnkit_cmd() + ["train", str(spec), "--data-dir", str(data), "--out", str(out), "--no-pictures", *extra]
    ).check()
    run = (out / "latest").resolve()
    metrics = json.loads((run / "metrics.json").read_text())
    return {"run": str(run), "test_acc": metrics["test"]["accuracy"], "wall_s": round(measured.wall_s, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist-run", type=Path, default=None, help="a finished run of configs/mnist.yaml")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--unfreeze-at", type=int, default=11)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--quick", action="store_true", help="1 MNIST epoch on 3,000 images, 4 epochs, 1 seed")
    args = parser.parse_args()
    data = data_dir(args.data_dir)
    if args.quick:
        args.epochs, args.unfreeze_at, args.seeds = 4, 3, 1
    load_start = loadavg()
    with tempfile.TemporaryDirectory(prefix="cnnkit-transfer-") as tmp:
        tmp = Path(tmp)
        if args.mnist_run is None:
            log("source: cnnkit train configs/mnist.yaml (the notes' net, 5 epochs on MNIST) ...")
            quick = ["--epochs", "1", "--set", "data.max_samples=3000"] if args.quick else []
            source = train(MNIST_SPEC, data, tmp / "mnist", *quick)
        else:
            run = args.mnist_run.resolve()
            source = {"run": str(run), "test_acc": json.loads((run / "metrics.json").read_text())["test"]["accuracy"]}
        log(f"  MNIST test accuracy {source['test_acc']:.4f}")
        shape = {"samples": args.samples, "epochs": args.epochs}
        from_run = f"  - FromRun: {{run: {source['run']}, until: 3, trainable: false}}\n"
        specs = {
            "transfer": spec_text("fashion-transfer", from_run, **shape, unfreeze_at=args.unfreeze_at),
            # Nothing is frozen, so nothing to unfreeze: every layer trains at Adam's 1e-3 for all epochs.
            "scratch": spec_text("fashion-scratch", STACK, **shape, unfreeze_at=None),
        }
        results = {name: [] for name in specs}
        for seed in range(args.seeds):
            for name, text in specs.items():
                path = tmp / f"{name}.yaml"
                path.write_text(text)
                results[name].append(train(path, data, tmp / f"{name}{seed}", "--seed", str(seed)))
                log(f"  seed {seed} {name}: test accuracy {results[name][-1]['test_acc']:.4f}")
    gains = [t["test_acc"] - s["test_acc"] for t, s in zip(results["transfer"], results["scratch"])]
    emit(
        {
            "benchmark": "transfer_demo",
            "config": {
                **shape,
                "unfreeze_at": args.unfreeze_at,
                "seeds": args.seeds,
                "quick": args.quick,
                "validation_split": 0.02,
            },
            "specs": specs,
            "mnist_source_test_acc": round(source["test_acc"], 4),
            "transfer_test_acc": spread([r["test_acc"] for r in results["transfer"]]),
            "scratch_test_acc": spread([r["test_acc"] for r in results["scratch"]]),
            "gain_per_seed": [round(g, 4) for g in gains],
            "gain": spread(gains),
            "wall_s": {name: [r["wall_s"] for r in runs] for name, runs in results.items()},
            "loadavg_start_end": [load_start, loadavg()],
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Dataset registry: a name in the spec's `data.dataset` -> a loader returning uint8 Splits.

Importing this package never imports TensorFlow; loaders and pipeline.py import it lazily.
Also here: feed (does the data fit the spec, and how it is fed), images (one image file as model input).
May import: cnnkit.spec, cnnkit.backend, cnnkit.files, cnnkit.errors. Never cnnkit.run, cnnkit.viz or cnnkit.cli.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from typing import Callable

from cnnkit.data import csv_file, digits, image_folder, keras_datasets, npz
from cnnkit.data.splits import Splits, carve
from cnnkit.errors import DataError

__all__ = ["DATASETS", "DatasetInfo", "LoadContext", "Splits", "load_splits"]

# Defaults for every data_cfg key, used when the caller left a key out.
DEFAULTS = {
    "dataset": None,
    "path": None,
    "test_path": None,
    "validation_split": 0.2,  # carved from train only when the source has no validation set
    "test_split": 0.2,  # carved from train only when the source has no test set
    "image_size": None,  # image_folder: [H, W]; None = input_shape[:2]
    "color_mode": None,  # image_folder: grayscale|rgb|rgba; None = from input_shape channels
    "header": "auto",  # csv: auto = a first row with a non-number is a header
    "label_column": 0,  # csv: index or header name
    "image_shape": None,  # csv: per-row shape; None = input_shape (or square grayscale)
    "max_samples": None,  # keep the first N training samples after the seeded shuffle
}


@dataclass(frozen=True)
class LoadContext:
    """What a loader may know besides its data_cfg."""

    data_dir: str | None
    input_shape: tuple[int, ...] | None


@dataclass(frozen=True)
class DatasetInfo:
    loader: Callable[[dict, LoadContext], Splits]
    doc: str
    options: tuple[str, ...]  # the data_cfg keys this dataset reads, beyond the common ones


_KERAS_OPTS = ("path",)
DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        keras_datasets.loader("mnist"), "MNIST handwritten digits, 60,000 + 10,000 28x28 grayscale", _KERAS_OPTS
    ),
    "fashion_mnist": DatasetInfo(
        keras_datasets.loader("fashion_mnist"), "Fashion-MNIST clothing, 60,000 + 10,000 28x28 grayscale", _KERAS_OPTS
    ),
    "cifar10": DatasetInfo(
        keras_datasets.loader("cifar10"), "CIFAR-10, 50,000 + 10,000 32x32 color, 10 classes", _KERAS_OPTS
    ),
    "cifar100": DatasetInfo(
        keras_datasets.loader("cifar100"), "CIFAR-100, 50,000 + 10,000 32x32 color, 100 fine classes", _KERAS_OPTS
    ),
    "digits": DatasetInfo(digits.load, "scikit-learn's bundled digits, 1,797 8x8 grayscale (offline)", ()),
    "npz": DatasetInfo(npz.load, "your .npz with x_train/y_train [x_val/y_val, x_test/y_test]", ("path",)),
    "image_folder": DatasetInfo(
        image_folder.load,
        "a folder with one subfolder of images per class",
        ("path", "test_path", "image_size", "color_mode"),
    ),
    "csv": DatasetInfo(
        csv_file.load,
        "a csv of rows: label, pixel0, ..., pixelN",
        ("path", "test_path", "header", "label_column", "image_shape"),
    ),
}


def load_splits(
    data_cfg: dict, *, data_dir: str | None = None, seed: int = 0, input_shape: tuple[int, ...] | None = None
) -> Splits:
    """Load `data_cfg["dataset"]` and carve missing validation/test sets with `seed`."""
    cfg = {**DEFAULTS, **{k: v for k, v in data_cfg.items() if v is not None}}
    name = cfg["dataset"]
    if name not in DATASETS:
        close = difflib.get_close_matches(str(name), DATASETS, n=1)
        raise DataError(
            f"data.dataset: unknown dataset {name!r}; valid: {', '.join(sorted(DATASETS))}",
            hint=f"did you mean {close[0]!r}?" if close else None,
        )
    if data_dir is None:
        data_dir = os.environ.get("CNNKIT_DATA_DIR") or None
    ctx = LoadContext(data_dir, tuple(input_shape) if input_shape else None)
    splits = DATASETS[name].loader(cfg, ctx)
    return carve(
        splits,
        validation_split=cfg["validation_split"],
        test_split=cfg["test_split"],
        max_samples=cfg["max_samples"],
        seed=seed,
    )

"""Dataset loaders: a name in the spec's `data.dataset` -> a loader returning uint8 Splits (LOADERS).

The names, docs and `data:` keys of the datasets are on the spec side (cnnkit/spec/datasets.py).
Importing this package never imports TensorFlow; loaders and pipeline.py import it lazily.
Also here: feed (does the data fit the spec, and how it is fed), images (one image file as model input).
May import: cnnkit.spec, cnnkit.backend, cnnkit.files, cnnkit.errors, cnnkit.text. Never cnnkit.run, cnnkit.viz
or cnnkit.cli.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from cnnkit.data import csv_file, digits, image_folder, keras_datasets, npz
from cnnkit.data.splits import Splits, carve
from cnnkit.errors import DataError
from cnnkit.spec.defaults import DATA_DEFAULTS
from cnnkit.text import did_you_mean

__all__ = ["LOADERS", "LoadContext", "Splits", "load_splits"]


@dataclass(frozen=True)
class LoadContext:
    """What a loader may know besides its data_cfg."""

    data_dir: str | None
    input_shape: tuple[int, ...] | None


# name -> loader(data_cfg, LoadContext) -> Splits. The names, docs and data: keys of each dataset are on the spec
# side (cnnkit/spec/datasets.py), so that a spec is checked without importing a loader; a test keeps both in step.
LOADERS: dict[str, Callable[[dict, LoadContext], Splits]] = {
    "digits": digits.load,
    "mnist": keras_datasets.loader("mnist"),
    "fashion_mnist": keras_datasets.loader("fashion_mnist"),
    "cifar10": keras_datasets.loader("cifar10"),
    "cifar100": keras_datasets.loader("cifar100"),
    "npz": npz.load,
    "image_folder": image_folder.load,
    "csv": csv_file.load,
}


def load_splits(
    data_cfg: dict, *, data_dir: str | None = None, seed: int = 0, input_shape: tuple[int, ...] | None = None
) -> Splits:
    """Load `data_cfg["dataset"]` and carve missing validation/test sets with `seed`."""
    cfg = {**DATA_DEFAULTS, **{k: v for k, v in data_cfg.items() if v is not None}}
    name = cfg["dataset"]
    if name not in LOADERS:
        raise DataError(
            f"data.dataset: unknown dataset {name!r}; valid: {', '.join(sorted(LOADERS))}",
            hint=did_you_mean(str(name), LOADERS),
        )
    if data_dir is None:
        data_dir = os.environ.get("CNNKIT_DATA_DIR") or None
    ctx = LoadContext(data_dir, tuple(input_shape) if input_shape else None)
    splits = LOADERS[name](cfg, ctx)
    return carve(
        splits,
        validation_split=cfg["validation_split"],
        test_split=cfg["test_split"],
        max_samples=cfg["max_samples"],
        seed=seed,
    )

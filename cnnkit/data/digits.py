"""The `digits` dataset: scikit-learn's bundled 1,797 real 8x8 handwritten digits (no download)."""

from __future__ import annotations

import os

import numpy as np

from cnnkit.data.arrays import digit_names
from cnnkit.data.splits import Splits


def load(cfg: dict, ctx) -> Splits:
    from sklearn import datasets  # lazy: scikit-learn takes ~1 s to import

    bunch = datasets.load_digits()
    # Pixels are counts 0..16 (4x4 blocks of a 32x32 bitmap); stretch to the 0..255 every
    # other source uses so pipeline.py's single 1/255 scaling applies.
    x = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., np.newaxis]
    source = os.path.join(os.path.dirname(datasets.__file__), "data", "digits.csv.gz")
    if not os.path.exists(source):
        source = "sklearn.datasets.load_digits()"
    return Splits(x, bunch.target.astype(np.int64), None, None, None, None, class_names=digit_names(10), source=source)

"""The Splits container and the seeded carving of missing validation/test sets."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from cnnkit.errors import DataError


@dataclass
class Splits:
    """Arrays for one run. Images are uint8 (N, H, W, C); labels are int64 class indices (N,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    class_names: list[str]
    source: str  # where the data was read from, for run.json and messages

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _count(n: int, fraction: float) -> int:
    if fraction <= 0:
        return 0
    # At least one sample, so a small fraction of a small set still yields a usable split.
    return max(1, int(round(fraction * n)))


def carve(splits: Splits, *, validation_split: float, test_split: float, max_samples: int | None, seed: int) -> Splits:
    """Fill in missing val/test sets from train and apply max_samples, all from one seeded shuffle.

    One permutation, cut as [test | val | train]: the splits are disjoint by construction, and
    the test cut depends only on (seed, test_split), so changing validation_split or
    max_samples between runs keeps the same test set comparable.
    """
    for name, value in (("validation_split", validation_split), ("test_split", test_split)):
        if not 0 <= value < 1:
            raise DataError(f"data.{name}: expected a fraction in [0, 1), got {value}")
    if max_samples is not None and max_samples < 1:
        raise DataError(f"data.max_samples: expected a positive integer, got {max_samples}")

    n = len(splits.x_train)
    n_test = _count(n, test_split) if splits.x_test is None else 0
    # Like Keras' fit(validation_split=...): a fraction of the training data left after the test cut.
    n_val = _count(n - n_test, validation_split) if splits.x_val is None else 0
    if n_test == 0 and n_val == 0 and (max_samples is None or max_samples >= n):
        return splits  # nothing to carve: keep the source's order
    if n - n_test - n_val < 1:
        raise DataError(
            f"{splits.source}: {n} training samples are too few to carve test_split={test_split} "
            f"and validation_split={validation_split}",
            hint="add samples, lower the split fractions, or provide explicit val/test sets",
        )

    order = np.random.default_rng(seed).permutation(n)
    test_idx, val_idx = order[:n_test], order[n_test : n_test + n_val]
    train_idx = order[n_test + n_val :]
    if max_samples is not None:
        train_idx = train_idx[:max_samples]
        if n_val:
            # Quick runs should be quick end to end: a carved validation set shrinks with the
            # training set, keeping the validation_split ratio. Explicit/test sets stay whole.
            keep = _count(len(train_idx) / (1 - validation_split), validation_split)
            val_idx = val_idx[:keep]

    out = replace(splits, x_train=splits.x_train[train_idx], y_train=splits.y_train[train_idx])
    if n_test:
        out.x_test, out.y_test = splits.x_train[test_idx], splits.y_train[test_idx]
    if n_val:
        out.x_val, out.y_val = splits.x_train[val_idx], splits.y_train[val_idx]
    return out

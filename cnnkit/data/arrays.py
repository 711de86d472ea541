"""Turn user arrays into the one form the rest of cnnkit sees: uint8 samples, int64 labels.

Every check raises DataError prefixed with `where` (e.g. "data.npz: x_train"), so each source
module only has to say where the array came from.
"""

from __future__ import annotations

import math

import numpy as np

from cnnkit.data import limits
from cnnkit.errors import DataError


def pixels_to_uint8(x: np.ndarray, where: str) -> np.ndarray:
    """Pixels as uint8 0..255. Accepts integers in 0..255 and floats in [0, 1] or [0, 255]."""
    if x.dtype == np.uint8:
        return x
    if x.dtype == np.bool_:
        return x.astype(np.uint8) * np.uint8(255)
    if np.issubdtype(x.dtype, np.integer):
        lo, hi = (int(x.min()), int(x.max())) if x.size else (0, 0)
        if lo < 0 or hi > 255:
            raise DataError(
                f"{where}: pixel values must be in 0..255, got {lo}..{hi} (dtype {x.dtype})",
                hint="rescale to 0..255 before saving (e.g. x // 256 for 16-bit images)",
            )
        return x.astype(np.uint8)
    if np.issubdtype(x.dtype, np.floating):
        finite = np.isfinite(x)
        if not finite.all():
            bad = np.flatnonzero(~finite.reshape(len(x), -1).all(axis=1))
            raise DataError(
                f"{where}: {int((~finite).sum())} NaN/inf pixel values in {len(bad)} samples "
                f"(first at sample {int(bad[0])})",
                hint="drop or repair those samples before saving",
            )
        lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
        if lo < 0 or hi > 255:
            raise DataError(
                f"{where}: float pixel values must be in [0, 1] or [0, 255], got {lo:g}..{hi:g}",
                hint="save raw pixels, not standardized ones; cnnkit scales to [0, 1] itself",
            )
        # Everything is stored as uint8 and scaled by 1/255 per batch in pipeline.py: one
        # scaling rule for every source, and 4x less memory than float32. Floats already in
        # [0, 1] (the usual `x / 255.` preprocessing) are therefore mapped back to 0..255.
        scale = 255.0 if hi <= 1.0 else 1.0
        return np.rint(x * scale).astype(np.uint8)
    raise DataError(
        f"{where}: expected numeric pixels, got dtype {x.dtype}", hint="save pixels as uint8 (or float in [0, 1])"
    )


def labels_to_int64(y: np.ndarray, where: str) -> tuple[np.ndarray, int | None]:
    """Class indices as int64 (N,). Also accepts (N, 1) and one-hot (N, K).

    Returns (labels, K) where K is the one-hot width (the class count it implies), else None.
    """
    width = None
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    elif y.ndim == 2:
        width = y.shape[1]
        is_01 = np.isin(y, (0, 1)).all() if y.dtype != np.bool_ else True
        if not is_01 or not (y.sum(axis=1) == 1).all():
            raise DataError(
                f"{where}: shape {tuple(y.shape)} looks one-hot, but not every row is 0/1 with exactly one 1",
                hint="save class indices of shape (N,) instead",
            )
        y = y.argmax(axis=1)
    elif y.ndim != 1:
        raise DataError(f"{where}: expected labels of shape (N,) or one-hot (N, K), got shape {tuple(y.shape)}")
    if y.dtype == np.bool_:
        y = y.astype(np.int64)
    if np.issubdtype(y.dtype, np.floating):
        bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(y))) if y.size else []
        if len(bad):
            raise DataError(
                f"{where}: labels must be integer class indices, got {float(y[bad[0]]):g} at sample {int(bad[0])}",
                hint="save labels as integers 0..K-1",
            )
    elif not np.issubdtype(y.dtype, np.integer):
        raise DataError(
            f"{where}: labels must be integer class indices, got dtype {y.dtype}",
            hint="map class names to integers 0..K-1 before saving",
        )
    if y.size and y.min() < 0:
        first = int(np.flatnonzero(y < 0)[0])
        raise DataError(
            f"{where}: labels must be class indices 0..K-1, got {int(y[first])} at sample {first}",
            hint="shift labels so the first class is 0",
        )
    if (y.size and y.max() >= limits.MAX_CLASSES) or (width or 0) > limits.MAX_CLASSES:
        # Checked before the int64 cast: a float 1e30 would wrap to a negative int64, and a label of 1e12
        # would ask for a trillion class names.
        first = int(np.flatnonzero(y >= limits.MAX_CLASSES)[0]) if y.size and y.max() >= limits.MAX_CLASSES else 0
        value = f"{y[first]:g}" if y.dtype.kind == "f" else str(int(y[first]))
        got = f"{value} at sample {first}" if width is None else f"one-hot rows of {width:,} classes"
        raise DataError(
            f"{where}: labels must be class indices 0..{limits.MAX_CLASSES - 1}, got {got}",
            hint=f"labels are integers in [0, classes), and cnnkit caps classes at {limits.MAX_CLASSES:,}",
        )
    return y.astype(np.int64), width


def as_samples(x: np.ndarray, where: str, input_shape: tuple[int, ...] | None) -> np.ndarray:
    """Give x the sample layout models expect: (N, H, W, C) images or (N, steps, features)."""
    shape = tuple(x.shape)
    if x.ndim == 2:
        # A flat row is ambiguous (which H, W?), so it is only accepted when the model's
        # input_shape says exactly how to fold it.
        if input_shape and math.prod(input_shape) == shape[1]:
            return x.reshape((shape[0], *input_shape))
        want = f"input_shape {list(input_shape)}" if input_shape else "no input_shape"
        raise DataError(
            f"{where}: shape {shape} holds flat rows of {shape[1]} values, not images, and "
            f"they do not fold into {want}",
            hint="reshape to (N, H, W) or (N, H, W, C) before saving",
        )
    if x.ndim == 3:
        # (N, H, W) is a grayscale image stack unless the model reads sequences of that shape.
        if input_shape and len(input_shape) == 2 and tuple(input_shape) == shape[1:]:
            return x
        return x[..., np.newaxis]
    if x.ndim == 4:
        return x
    raise DataError(
        f"{where}: shape {shape} has rank {x.ndim}; expected (N, H, W), (N, H, W, C) or (N, steps, features)"
    )


def check_pairs(pairs: dict[str, tuple[np.ndarray, np.ndarray]], where: str) -> None:
    """Each split has one label per sample, and every split has the training sample shape."""
    ref_name, ref_shape = None, None
    for name, (x, y) in pairs.items():
        if len(x) != len(y):
            raise DataError(
                f"{where}: x_{name} has {len(x)} samples but y_{name} has {len(y)}",
                hint="x and y need exactly one label per sample",
            )
        if ref_shape is None:
            ref_name, ref_shape = name, x.shape[1:]
        elif x.shape[1:] != ref_shape:
            raise DataError(
                f"{where}: x_{name} samples have shape {tuple(x.shape[1:])} but x_{ref_name} "
                f"samples have shape {tuple(ref_shape)}",
                hint="every split must hold samples of the same shape",
            )


def digit_names(num_classes: int) -> list[str]:
    """Class names for sources that only give indices: "0", "1", ..."""
    return [str(i) for i in range(num_classes)]

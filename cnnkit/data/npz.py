"""The `npz` dataset: a user's .npz with x_train/y_train and optional val/test arrays.

Also the one safe .npz reader that keras_datasets.py uses for mnist.npz and friends.
"""

from __future__ import annotations

import math
import os
import zipfile

import numpy as np

from cnnkit.data import limits
from cnnkit.data.arrays import as_samples, check_pairs, digit_names, labels_to_int64, pixels_to_uint8
from cnnkit.data.splits import Splits
from cnnkit.errors import DataError

_SAVE_HINT = "save it with np.savez(path, x_train=x, y_train=y[, x_val=..., y_val=..., x_test=..., y_test=...])"
SPLITS = ("train", "val", "test")


def _size(n: int) -> str:
    """Bytes for a person: 6.0 GiB, 47.0 MiB, 900 bytes."""
    for unit, scale in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:,} bytes"


def _header(path: str, zf: zipfile.ZipFile, info: zipfile.ZipInfo, key: str) -> tuple[tuple, np.dtype, int, int]:
    """(shape, dtype, declared data bytes, data bytes the member holds) of one .npy member, from its header alone."""
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise DataError(
                f"{path}: array '{key}' is in .npy format version {version[0]}.{version[1]}, "
                "which cnnkit does not read (1.0 and 2.0 only)",
                hint=_SAVE_HINT,
            )
        data_at = f.tell()
    if dtype.hasobject:
        # Loading an object array would run pickle code from the file.
        raise DataError(
            f"{path}: array '{key}' has dtype=object, which cannot be loaded safely (it would need pickle)",
            hint="save plain numeric arrays, e.g. np.asarray(x, dtype=np.uint8)",
        )
    return tuple(shape), dtype, math.prod(shape) * dtype.itemsize, max(info.file_size - data_at, 0)


def read_npz(path: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """The named arrays of an .npz, never unpickling anything; absent optional keys are skipped.

    Every header is read first (numpy.lib.format, no data): what the arrays declare must be in the
    file and, all together, fit limits.MAX_UNPACKED_BYTES before a single array is unpacked.
    """
    check_npz_path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            members = {info.filename: info for info in zf.infolist()}
            found = [name[:-4] if name.endswith(".npy") else name for name in members]
            missing = [k for k in required if k not in found]
            if missing:
                raise DataError(
                    f"{path}: missing array {', '.join(map(repr, missing))}; found: {', '.join(found) or 'no arrays'}",
                    hint=_SAVE_HINT,
                )
            keys = required + tuple(k for k in optional if k in found)
            for key in keys:
                if f"{key}.npy" not in members:
                    raise DataError(f"{path}: member '{key}' is not a .npy array", hint=_SAVE_HINT)
            headers = {key: _header(path, zf, members[f"{key}.npy"], key) for key in keys}
            # The cap first: a forged header declaring terabytes is refused for what it asks, whatever it holds.
            total = sum(declared for _, _, declared, _ in headers.values())
            if total > limits.MAX_UNPACKED_BYTES:
                largest = max(headers, key=lambda k: headers[k][2])
                shape, dtype, _, _ = headers[largest]
                raise DataError(
                    f"{path}: its arrays unpack to {_size(total)} (largest: '{largest}', shape {shape} {dtype}), "
                    f"more than cnnkit's cap of {_size(limits.MAX_UNPACKED_BYTES)} for one .npz",
                    hint="save fewer samples, or pixels as uint8",
                )
            for key, (shape, dtype, declared, held) in headers.items():
                if held < declared:
                    raise DataError(
                        f"{path}: array '{key}' is cut short: its header declares shape {shape} {dtype} "
                        f"({declared:,} bytes) but the file holds {held:,}",
                        hint="write the file again",
                    )
            arrays = {}
            for key in keys:
                with zf.open(members[f"{key}.npy"]) as f:
                    arrays[key] = np.lib.format.read_array(f, allow_pickle=False)
            return arrays
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
        # The headers were checked, so this is a damaged archive (bad CRC, a lying zip directory, a bad header).
        raise DataError(
            f"{path}: corrupt .npz archive ({' '.join(str(err).split())})", hint="write the file again"
        ) from None


def npz_keys(path: str, *, hint: str | None = "check data.path") -> list[str]:
    """The array names in an .npz (as np.load lists them), read from the zip directory alone."""
    check_npz_path(path, hint=hint)
    try:
        with zipfile.ZipFile(path) as zf:
            return [name[:-4] if name.endswith(".npy") else name for name in zf.namelist()]
    except (zipfile.BadZipFile, OSError) as err:
        raise DataError(f"{path}: corrupt .npz archive ({err})", hint="write the file again") from None


def check_npz_path(path: str, *, hint: str | None = "check data.path") -> None:
    """Refuse a missing file, a folder, a lone .npy or a non-zip before anything is read."""
    if not os.path.exists(path):
        raise DataError(f"{path}: file not found", hint=hint)
    if os.path.isdir(path):
        raise DataError(f"{path}: is a folder, expected an .npz file", hint=_SAVE_HINT)
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic == b"\x93NUMPY":
        raise DataError(
            f"{path}: is a single-array .npy file, expected an .npz archive with x_train and y_train", hint=_SAVE_HINT
        )
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not an .npz file (not a zip archive)", hint=_SAVE_HINT)


def npz_splits(path: str, arrays: dict[str, np.ndarray], input_shape, class_names=None) -> Splits:
    """Validate and normalize x_*/y_* arrays (already read from `path`) into Splits."""
    for split in ("val", "test"):
        if (f"x_{split}" in arrays) != (f"y_{split}" in arrays):
            have, lack = (f"x_{split}", f"y_{split}") if f"x_{split}" in arrays else (f"y_{split}", f"x_{split}")
            raise DataError(
                f"{path}: has '{have}' but no '{lack}'", hint=f"save both arrays of the {split} split, or neither"
            )
    pairs, width = {}, None
    for split in SPLITS:
        if f"x_{split}" not in arrays:
            continue
        x = as_samples(arrays[f"x_{split}"], f"{path}: x_{split}", input_shape)
        y, w = labels_to_int64(arrays[f"y_{split}"], f"{path}: y_{split}")
        width = width or w
        pairs[split] = (x, y)
    check_pairs(pairs, path)
    pairs = {s: (pixels_to_uint8(x, f"{path}: x_{s}"), y) for s, (x, y) in pairs.items()}

    if len(pairs["train"][0]) == 0:
        raise DataError(f"{path}: x_train has 0 samples", hint="save at least one training sample")
    top = max(int(y.max()) for _, y in pairs.values() if y.size)
    if class_names is None:
        class_names = digit_names(max(top + 1, width or 0))
    for split, (_, y) in pairs.items():
        if y.size and y.max() >= len(class_names):
            raise DataError(
                f"{path}: y_{split} has label {int(y.max())} but there are only {len(class_names)} class names",
                hint="labels must be 0..len(class_names)-1",
            )
    get = lambda s, i: pairs[s][i] if s in pairs else None  # noqa: E731
    return Splits(
        get("train", 0),
        get("train", 1),
        get("val", 0),
        get("val", 1),
        get("test", 0),
        get("test", 1),
        class_names=list(class_names),
        source=path,
    )


def load(cfg: dict, ctx) -> Splits:
    path = cfg.get("path")
    if not path:
        raise DataError("data.path: the npz dataset needs a path to an .npz file", hint=_SAVE_HINT)
    optional = tuple(f"{a}_{s}" for s in ("val", "test") for a in "xy") + ("class_names",)
    arrays = read_npz(path, ("x_train", "y_train"), optional)
    names = arrays.pop("class_names", None)
    if names is not None:
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise DataError(
                f"{path}: class_names must be a 1-D string array, got dtype {names.dtype} shape {tuple(names.shape)}",
                hint="save np.array(['cat', 'dog'])",
            )
        names = [str(n) for n in names.astype(str)]
    return npz_splits(path, arrays, ctx.input_shape, names)

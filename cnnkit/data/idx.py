"""Reader for LeCun's IDX format (the original MNIST / Fashion-MNIST files), gzipped or not.

Layout: 2 zero bytes, a type byte (0x08 = unsigned byte), a rank byte, then `rank` big-endian
uint32 dimensions, then the data. Images are rank 3 (magic 0x00000803), labels rank 1
(0x00000801).
"""

from __future__ import annotations

import gzip
import math
import os
import zlib

import numpy as np

from cnnkit.data import limits
from cnnkit.errors import DataError

# The four files of a dataset, as (split, array) -> base name; a ".gz" suffix is optional.
IDX_FILES = {
    ("train", "x"): "train-images-idx3-ubyte",
    ("train", "y"): "train-labels-idx1-ubyte",
    ("test", "x"): "t10k-images-idx3-ubyte",
    ("test", "y"): "t10k-labels-idx1-ubyte",
}


def find_idx_file(folder: str, base: str) -> str | None:
    for name in (base + ".gz", base):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    return None


def has_idx_files(folder: str) -> bool:
    return any(find_idx_file(folder, base) for base in IDX_FILES.values())


def read_idx(path: str, rank: int) -> np.ndarray:
    opener = gzip.open if path.endswith(".gz") else open
    header = 4 + 4 * rank
    try:
        with opener(path, "rb") as f:
            head = f.read(header)
            _check_magic(path, head, rank)
            dims = [int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank)]
            size = math.prod(dims)
            # Checked before reading: a few-kilobyte .gz can unpack to gigabytes.
            if size > limits.MAX_UNPACKED_BYTES:
                raise DataError(
                    f"{path}: IDX header says {dims} = {size:,} bytes of data, more than cnnkit's cap of "
                    f"{limits.MAX_UNPACKED_BYTES:,} for one file",
                    hint="use the original *-ubyte(.gz) files",
                )
            raw = f.read(size)
            # Anything past the declared data, counted in chunks (never held) to say how long the file is.
            extra = sum(len(chunk) for chunk in iter(lambda: f.read(1 << 20), b""))
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: cannot read ({err})", hint="download the file again; it may be truncated") from None
    if len(raw) != size or extra:
        raise DataError(
            f"{path}: IDX header says {dims} = {size} bytes of data, file holds {len(raw) + extra}",
            hint="download the file again; it is truncated",
        )
    return np.frombuffer(raw, dtype=np.uint8).reshape(dims)


def _check_magic(path: str, head: bytes, rank: int) -> None:
    expected_magic = 0x0800 | rank
    magic = int.from_bytes(head[:4], "big") if len(head) >= 4 else None
    if magic != expected_magic:
        got = f"0x{magic:08x}" if magic is not None else f"{len(head)} bytes"
        kind = "image" if rank == 3 else "label"
        raise DataError(
            f"{path}: not an IDX {kind} file (magic number {got}, expected 0x{expected_magic:08x})",
            hint="use the original *-ubyte(.gz) files",
        )
    if len(head) < 4 + 4 * rank:
        raise DataError(
            f"{path}: IDX header cut short ({len(head)} bytes, expected {4 + 4 * rank})",
            hint="download the file again; it is truncated",
        )


def load_idx_folder(folder: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test) from the four IDX files in `folder`."""
    paths = {key: find_idx_file(folder, base) for key, base in IDX_FILES.items()}
    missing = [IDX_FILES[key] + ".gz" for key, path in paths.items() if path is None]
    if missing:
        raise DataError(
            f"{folder}: incomplete IDX set, missing {', '.join(missing)}",
            hint="put all four *-ubyte.gz files in the same folder",
        )
    arrays = {key: read_idx(path, 3 if key[1] == "x" else 1) for key, path in paths.items()}
    for split in ("train", "test"):
        x, y = arrays[(split, "x")], arrays[(split, "y")]
        if len(x) != len(y):
            raise DataError(
                f"{paths[(split, 'x')]}: {len(x)} images but {paths[(split, 'y')]} has {len(y)} labels",
                hint="the image and label files come from different downloads",
            )
    return (arrays[("train", "x")], arrays[("train", "y")], arrays[("test", "x")], arrays[("test", "y")])

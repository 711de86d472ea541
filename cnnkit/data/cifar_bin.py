"""Reader for the *binary* CIFAR distributions (cifar-10-batches-bin, cifar-100-binary).

The Python versions are pickles; these are fixed-size records, so numpy reads them without
running any code from the file. Record: label byte(s), then 3072 bytes of 32x32 R, G, B planes.
"""

from __future__ import annotations

import os

import numpy as np

from cnnkit.errors import DataError

# name -> (folder, train files, test files, label bytes per record, which label byte is used)
LAYOUTS = {
    "cifar10": ("cifar-10-batches-bin", tuple(f"data_batch_{i}.bin" for i in range(1, 6)), ("test_batch.bin",), 1, 0),
    # CIFAR-100 records carry (coarse, fine) labels; cnnkit uses the 100 fine classes.
    "cifar100": ("cifar-100-binary", ("train.bin",), ("test.bin",), 2, 1),
}
_PIXELS = 3 * 32 * 32


def _read(path: str, label_bytes: int, label_at: int) -> tuple[np.ndarray, np.ndarray]:
    record = label_bytes + _PIXELS
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % record:
        raise DataError(
            f"{path}: {raw.size} bytes is not a whole number of {record}-byte CIFAR records",
            hint="download the binary version again; it is truncated",
        )
    rows = raw.reshape(-1, record)
    x = rows[:, label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x), rows[:, label_at].copy()


def load_cifar_bin(name: str, folder: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test) from a binary CIFAR folder."""
    _, train_files, test_files, label_bytes, label_at = LAYOUTS[name]
    missing = [f for f in train_files + test_files if not os.path.isfile(os.path.join(folder, f))]
    if missing:
        raise DataError(
            f"{folder}: incomplete {name} binary folder, missing {', '.join(missing)}",
            hint="extract the whole binary archive into that folder",
        )

    def read_all(files):
        parts = [_read(os.path.join(folder, f), label_bytes, label_at) for f in files]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    return (*read_all(train_files), *read_all(test_files))

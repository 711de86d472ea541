"""Check the files a data config names before anything heavy runs.

`evaluate --data`, `plot confusion --data` and `plot feature-maps` load the model (and TensorFlow, seconds)
before the data: these checks let a typo'd or wrong-kind path fail at once instead.
"""

from __future__ import annotations

import os

from cnnkit.errors import DataError


def check_data_paths(cfg: dict, *, hint: str | None = "check data.path / data.test_path") -> None:
    """data.path and data.test_path exist and are what their dataset reads (file or folder); nothing is read."""
    from cnnkit.data.csv_file import check_csv_path
    from cnnkit.data.npz import check_npz_path

    dataset = cfg.get("dataset")
    for key in ("path", "test_path"):
        path = cfg.get(key)
        if not path:
            continue
        if dataset == "npz":
            check_npz_path(str(path), hint=hint)
        elif dataset == "csv":
            check_csv_path(str(path), hint=hint)
        elif dataset == "image_folder" and not os.path.isdir(path):
            what = "does not exist" if not os.path.exists(path) else "is a file, expected a folder"
            raise DataError(f"{path}: {what}", hint=hint)

"""The `csv` dataset: one image per row, "label, pixel0, ..., pixelN" (the Kaggle MNIST layout).

numpy's C parser reads the file (a 42,000-row Kaggle file in seconds); only when it fails does
the csv module walk the file again to name the exact row and column, so errors stay precise
without making every load slow.
"""

from __future__ import annotations

import csv
import math
import os
import warnings

import numpy as np

from cnnkit.data import limits
from cnnkit.data.arrays import as_samples, digit_names, pixels_to_uint8
from cnnkit.data.splits import Splits
from cnnkit.errors import DataError

_ENCODING = "utf-8-sig"  # also strips the BOM Excel writes at the start of a UTF-8 file


def _rows(path: str):
    """(1-based line number, cells) for each non-blank row."""
    with open(path, newline="", encoding=_ENCODING) as f:
        reader = csv.reader(f)
        try:
            for cells in reader:
                if cells and any(c.strip() for c in cells):
                    yield reader.line_num, cells
        except csv.Error as err:
            if "field larger than field limit" in str(err):
                raise DataError(
                    f"{path}: line {reader.line_num}: a cell longer than {csv.field_size_limit():,} characters "
                    "(the csv module's field limit)",
                    hint="a label or pixel is a short number: check that this is a csv of pixel rows",
                ) from None
            raise DataError(
                f"{path}: line {reader.line_num}: not valid csv ({err})", hint="fix or delete that line"
            ) from None


def _not_utf8(path: str) -> DataError:
    """The error for a file that is not UTF-8, naming the first line and byte that are not."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as err:
                return DataError(
                    f"{path}: line {number}, byte {err.start + 1}: 0x{raw[err.start]:02x} is not UTF-8 text",
                    hint="save the file as UTF-8; plain numbers are ASCII, which is UTF-8",
                )
    # A character split across the end of the file, which line-by-line reading cannot show.
    return DataError(f"{path}: the file ends in the middle of a UTF-8 character", hint="save the file as UTF-8")


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _label_index(label_column, header: list[str] | None, ncols: int, path: str) -> int:
    if isinstance(label_column, str):
        if header is None:
            raise DataError(
                f"{path}: label_column {label_column!r} is a column name but the file has no header row",
                hint="use a column index, e.g. label_column: 0",
            )
        names = [h.strip() for h in header]
        if label_column not in names:
            shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            raise DataError(
                f"{path}: no column named {label_column!r}; header has {shown}",
                hint="set data.label_column to one of the header names or an index",
            )
        return names.index(label_column)
    if not -ncols <= label_column < ncols:
        raise DataError(
            f"{path}: label_column {label_column} is out of range for {ncols} columns",
            hint=f"use an index from 0 to {ncols - 1}",
        )
    return label_column % ncols


def _diagnose(path: str, skip_line: int, ncols: int) -> None:
    """Find the first bad row/cell and raise a DataError naming it."""
    for line, cells in _rows(path):
        if line <= skip_line:
            continue
        if len(cells) != ncols:
            kind = "short" if len(cells) < ncols else "long"
            raise DataError(
                f"{path}: row {line} is {kind}: {len(cells)} columns, expected {ncols} like the first row",
                hint="every row needs one label and the same number of pixels",
            )
        for col, cell in enumerate(cells, start=1):
            if not _is_number(cell):
                raise DataError(
                    f"{path}: row {line}, column {col}: expected a number, got {cell!r}", hint="fix or delete that row"
                )


def _line_of(path: str, skip_line: int, k: int) -> int:
    """File line number of the k-th (0-based) data row; used only to word an error."""
    data_lines = (line for line, _ in _rows(path) if line > skip_line)
    for i, line in enumerate(data_lines):
        if i == k:
            return line
    return -1


def read_csv(path: str, *, header="auto", label_column=0, image_shape=None, input_shape=None):
    """(x uint8 samples, y int64 labels) from one csv file."""
    try:
        return _read_csv(path, header, label_column, image_shape, input_shape)
    except UnicodeDecodeError:
        # Raised wherever the text is first read (the header sniff, numpy's parser, the row diagnosis).
        raise _not_utf8(path) from None


def check_csv_path(path: str, *, hint: str | None = "check data.path / data.test_path") -> None:
    """Refuse a missing file or a folder before anything is read."""
    if not os.path.isfile(path):
        what = "is a folder, expected a .csv file" if os.path.isdir(path) else "file not found"
        raise DataError(f"{path}: {what}", hint=hint)


def _read_csv(path: str, header, label_column, image_shape, input_shape):
    check_csv_path(path)
    first = next(_rows(path), None)
    if first is None:
        raise DataError(
            f"{path}: empty file, expected rows of label, pixel0, ..., pixelN",
            hint="check that the file was written completely",
        )
    first_line, first_cells = first
    if header not in (True, False, "auto"):
        raise DataError(f'data.header: expected true, false or "auto", got {header!r}')
    if header == "auto":
        header = not all(_is_number(c) for c in first_cells)
    header_cells = first_cells if header else None
    skip_line = first_line if header else 0
    ncols = len(first_cells)
    label_at = _label_index(label_column, header_cells, ncols, path)

    try:
        with open(path, newline="", encoding=_ENCODING) as f, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data" is handled below
            table = np.loadtxt(f, delimiter=",", dtype=np.float32, skiprows=skip_line, comments=None, ndmin=2)
    except ValueError as err:
        _diagnose(path, skip_line, ncols)
        raise DataError(
            f"{path}: cannot parse as numbers ({' '.join(str(err).split())})", hint="expected comma-separated numbers"
        ) from None
    if table.size == 0:
        raise DataError(f"{path}: a header row but no data rows", hint="add rows of pixels")
    if table.shape[1] != ncols:  # e.g. a header with fewer names than the data has values
        raise DataError(
            f"{path}: header row {first_line} has {ncols} columns but the data has {table.shape[1]}",
            hint="fix the header, or set header: false",
        )

    bad = ~np.isfinite(table)
    labels = table[:, label_at]
    bad[:, label_at] |= labels != np.round(labels)
    if bad.any():
        k, col = (int(i) for i in np.argwhere(bad)[0])
        line = _line_of(path, skip_line, k)
        what = "a finite integer class label" if col == label_at else "a finite pixel value"
        raise DataError(
            f"{path}: row {line}, column {col + 1}: expected {what}, got {table[k, col]:g}",
            hint="fix or delete that row",
        )
    if labels.min() < 0:
        k = int(np.argmax(labels < 0))
        raise DataError(
            f"{path}: row {_line_of(path, skip_line, k)}, column {label_at + 1}: "
            f"expected a class index 0..K-1, got {labels[k]:g}",
            hint="shift labels so the first class is 0",
        )
    if labels.max() >= limits.MAX_CLASSES:
        # Checked before the int64 cast: 1e30 would wrap to -9223372036854775808 and 1e12 would ask for
        # a trillion class names.
        k = int(np.argmax(labels >= limits.MAX_CLASSES))
        raise DataError(
            f"{path}: row {_line_of(path, skip_line, k)}, column {label_at + 1}: "
            f"expected a class index 0..{limits.MAX_CLASSES - 1}, got {labels[k]:g}",
            hint=f"labels are integers in [0, classes), and cnnkit caps classes at {limits.MAX_CLASSES:,}",
        )

    pixels = np.delete(table, label_at, axis=1)
    shape = _image_shape(image_shape, input_shape, pixels.shape[1], path, lambda: _line_of(path, skip_line, 0))
    x = as_samples(pixels.reshape((len(pixels), *shape)), path, input_shape)
    return pixels_to_uint8(x, path), labels.astype(np.int64)


def _image_shape(image_shape, input_shape, count: int, path: str, line) -> tuple[int, ...]:
    """The per-sample shape; `line()` gives the first data row's line, only for messages."""
    shape = image_shape or input_shape
    if not shape:
        side = math.isqrt(count)
        if side * side != count:
            raise DataError(
                f"{path}: row {line()} has {count} pixel values, which is not a square "
                f"image, and no image_shape is set",
                hint="set data.image_shape, e.g. [28, 28, 1]",
            )
        return (side, side, 1)
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3):
        raise DataError(f"data.image_shape: expected [H, W] or [H, W, C], got {list(shape)}")
    if math.prod(shape) != count:
        raise DataError(
            f"{path}: row {line()} has {count} pixel values but image_shape {list(shape)} needs {math.prod(shape)}",
            hint="set data.image_shape to the shape the pixels were saved in",
        )
    return shape


def load(cfg: dict, ctx) -> Splits:
    path = cfg.get("path")
    if not path:
        raise DataError(
            "data.path: the csv dataset needs a .csv file",
            hint="set data.path to a file of rows: label, pixel0, ..., pixelN",
        )
    options = dict(
        header=cfg.get("header", "auto"),
        label_column=cfg.get("label_column", 0),
        image_shape=cfg.get("image_shape"),
        input_shape=ctx.input_shape,
    )
    x, y = read_csv(path, **options)
    x_test = y_test = None
    if cfg.get("test_path"):
        x_test, y_test = read_csv(cfg["test_path"], **options)
        if x_test.shape[1:] != x.shape[1:]:
            raise DataError(
                f"{cfg['test_path']}: samples have shape {x_test.shape[1:]} but {path} has {x.shape[1:]}",
                hint="use the same layout in both files",
            )
    top = max(int(y.max()), int(y_test.max()) if y_test is not None else 0)
    return Splits(x, y, None, None, x_test, y_test, class_names=digit_names(top + 1), source=path)

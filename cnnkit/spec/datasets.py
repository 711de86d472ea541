"""The dataset kinds a spec's `data.dataset` may name, and the `data:` keys each one reads.

The spec side of the dataset registry: enough to check a spec's `data:` section (and to list the kinds in
`cnnkit datasets`) without importing a loader, scikit-learn, Pillow or TensorFlow. The loaders live in
cnnkit/data/, in `cnnkit.data.LOADERS` under the same names (a test keeps the two in step). Every key's default
is in `DATA_DEFAULTS` (spec/defaults.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cnnkit.spec.argtypes import ArgError, ArgType, Bool, Enum, Float, Int, OptionalInt, Shape, Str
from cnnkit.spec.defaults import DATA_DEFAULTS


@dataclass(frozen=True)
class Nullable(ArgType):
    """`inner`, or null (the key's "unset", e.g. `image_size: null` = the spec's input_shape)."""

    inner: ArgType

    def __call__(self, name, value):
        return None if value is None else self.inner(name, value)

    def schema(self):
        return {"oneOf": [{"type": "null"}, self.inner.schema()]}


@dataclass(frozen=True)
class ImageSize(ArgType):
    def __call__(self, name, value):
        value = Shape()(name, value)
        if len(value) != 2:
            raise ArgError(f"must be [height, width]. Received: {name}={list(value)}.")
        return value

    def schema(self):
        return {**Shape().schema(), "maxItems": 2, "minItems": 2}


@dataclass(frozen=True)
class Header(ArgType):
    """csv: `auto` (a first row holding a non-number is a header), true or false."""

    def __call__(self, name, value):
        return value if value == "auto" else Bool()(name, value)

    def schema(self):
        return {"oneOf": [{"const": "auto"}, {"type": "boolean"}]}


@dataclass(frozen=True)
class Column(ArgType):
    """csv: a column index, or a header name."""

    def __call__(self, name, value):
        return value if isinstance(value, str) else Int(0)(name, value)

    def schema(self):
        return {"oneOf": [{"type": "string"}, Int(0).schema()]}


@dataclass(frozen=True)
class ClassIds(ArgType):
    """`classes: [0, 1]`: at least two distinct non-negative class ids."""

    def __call__(self, name, value):
        if value is not None and (
            not isinstance(value, list)
            or len(value) < 2
            or len(set(map(repr, value))) != len(value)
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
        ):
            raise ArgError(f"must be a list of at least 2 distinct class ids. Received: {name}={value!r}.")
        return value

    def schema(self):
        return {"oneOf": [{"type": "null"}, {"type": "array", "items": {"type": "integer", "minimum": 0}}]}


PATH = Nullable(Str())
# Keys every dataset reads (carving validation/test sets, choosing classes and samples); `dataset` itself is
# checked against the registry's names.
COMMON_KEYS: dict[str, ArgType] = {
    "validation_split": Float(0.0, 1.0, exclusive_max=True),
    "test_split": Float(0.0, 1.0, exclusive_max=True),
    "classes": ClassIds(),
    "max_samples": OptionalInt(1),
}


@dataclass(frozen=True)
class DatasetKind:
    doc: str  # one line for `cnnkit datasets`
    keys: dict[str, ArgType] = field(default_factory=dict)  # the data: keys it reads beyond COMMON_KEYS
    needs_path: bool = False  # `path` must be given (a user's own file or folder)
    # What an `evaluate --data VALUE` that is not a dataset name must look like to mean this kind: a file suffix
    # (".npz") or FOLDER; None: only by name.
    data_arg: str | None = None


FOLDER = "folder"
_KERAS = {"path": PATH}  # an explicit Keras dataset file (mnist.npz, cifar-10-python.tar.gz, ...)
DATASETS: dict[str, DatasetKind] = {
    "digits": DatasetKind("scikit-learn's bundled digits, 1,797 8x8 grayscale (offline)"),
    "mnist": DatasetKind("MNIST handwritten digits, 60,000 + 10,000 28x28 grayscale", _KERAS),
    "fashion_mnist": DatasetKind("Fashion-MNIST clothing, 60,000 + 10,000 28x28 grayscale", _KERAS),
    "cifar10": DatasetKind("CIFAR-10, 50,000 + 10,000 32x32 color, 10 classes", _KERAS),
    "cifar100": DatasetKind("CIFAR-100, 50,000 + 10,000 32x32 color, 100 fine classes", _KERAS),
    "npz": DatasetKind(
        "your .npz with x_train/y_train [x_val/y_val, x_test/y_test]", {"path": PATH}, needs_path=True, data_arg=".npz"
    ),
    "image_folder": DatasetKind(
        "a folder with one subfolder of images per class",
        {
            "path": PATH,
            "test_path": PATH,
            "image_size": Nullable(ImageSize()),
            "color_mode": Nullable(Enum(("grayscale", "rgb", "rgba"))),
        },
        needs_path=True,
        data_arg=FOLDER,
    ),
    "csv": DatasetKind(
        "a csv of rows: label, pixel0, ..., pixelN",
        {
            "path": PATH,
            "test_path": PATH,
            "header": Header(),
            "label_column": Column(),
            "image_shape": Nullable(Shape()),
        },
        needs_path=True,
        data_arg=".csv",
    ),
}


def all_keys() -> tuple[str, ...]:
    """Every key a `data:` section may hold for some dataset, in DATA_DEFAULTS' order."""
    keys = ["dataset", *COMMON_KEYS, *(k for kind in DATASETS.values() for k in kind.keys)]
    order = list(DATA_DEFAULTS)
    return tuple(sorted(set(keys), key=lambda k: (order.index(k) if k in order else len(order), k)))


def readers(key: str) -> list[str]:
    """The datasets that read `key` (beyond the common keys)."""
    return [name for name, kind in DATASETS.items() if key in kind.keys]


def for_data_arg(value: str, is_folder: bool) -> str | None:
    """The dataset an `evaluate --data VALUE` means: its name, a file with a kind's suffix, else a folder's kind."""
    if value in DATASETS:
        return value
    by_suffix = [n for n, k in DATASETS.items() if k.data_arg not in (None, FOLDER) and value.endswith(k.data_arg)]
    by_folder = [n for n, k in DATASETS.items() if k.data_arg == FOLDER and is_folder]
    return next(iter(by_suffix + by_folder), None)


def data_arg_forms() -> str:
    """'an .npz/.csv file or image folder': what for_data_arg accepts besides a name, in words."""
    suffixes = [k.data_arg for k in DATASETS.values() if k.data_arg not in (None, FOLDER)]
    folders = [n.replace("_", " ") for n, k in DATASETS.items() if k.data_arg == FOLDER]
    return " or ".join(([f"an {'/'.join(suffixes)} file"] if suffixes else []) + folders)

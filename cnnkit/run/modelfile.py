"""Model files cannot run code: every .keras file is inspected before Keras reads it.

A .keras file is a zip of `metadata.json`, `config.json` and `model.weights.h5`. Keras turns
`config.json` into Python objects by importing `module` and looking up `class_name`, so a crafted
config is a code-execution risk even with `safe_mode=True` (each Keras CVE so far was one more way
around it). cnnkit therefore only loads what it could have built itself: a keras.Sequential of
the layers in `cnnkit.spec.layers.KERAS_CLASSES`, whose nested objects are built-in Keras dtype
policies, initializers, regularizers, constraints, optimizers, schedules, losses and metrics, plus cnnkit's
own block layers (`cnnkit>Residual`, `cnnkit>Stack`), whose config is spec YAML read back by the spec parser.
Everything is checked against allow-lists; nothing is looked up in Keras. This module must not
import TensorFlow or Keras at import time (`summary` and `lint` stay fast); `load_model` imports
Keras only after the file has passed.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

from cnnkit.errors import ModelFileError, SpecError
from cnnkit.spec.blocks import residual_from_config, stack_from_config
from cnnkit.spec.layers import KERAS_CLASSES
from cnnkit.text import squeeze

MiB = 1024 * 1024
GiB = 1024 * MiB
# Caps: far above any cnnkit model (a digits CNN saves ~10 KB of config, ~1 MB of weights),
# far below what would exhaust memory or disk when Keras unpacks the file.
MAX_CONFIG_BYTES = 10 * MiB
MAX_METADATA_BYTES = 1 * MiB
MAX_TOTAL_BYTES = 2 * GiB  # uncompressed, all members together; also caps the file itself
MAX_RATIO = 200  # uncompressed/compressed; Keras stores members uncompressed (ratio 1)
MAX_DEPTH = 64  # JSON nesting; a cnnkit config is ~10 deep

MEMBER_CAPS = {
    "metadata.json": MAX_METADATA_BYTES,
    "config.json": MAX_CONFIG_BYTES,
    "model.weights.h5": MAX_TOTAL_BYTES,
}
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_READ_CHUNK = 1 * MiB

# Keras treats these as remote and fetches them through tf.io.gfile (keras.src.utils.file_utils).
_REMOTE = re.compile(r"^(/cns|/cfs|/gcs|/hdfs|/readahead|/placer|/tfhub|.*://)")
_LEGACY_SUFFIXES = (".h5", ".hdf5")
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")

# --- allow-lists (tests check every name against the installed Keras) -----------------------
MODEL_MODULES = frozenset({"keras", "keras.models"})
LAYER_MODULES = frozenset({"keras.layers", "keras"})
LAYER_CLASSES = frozenset({"InputLayer", *KERAS_CLASSES})
# Entries that carry Python code (or load a foreign graph): named in their own message.
CODE_CLASSES = frozenset({"Lambda", "TFSMLayer", "__lambda__", "function"})
# The keys Keras writes on a serialized object; anything else (e.g. `spec_name`) is refused.
OBJECT_KEYS = frozenset(
    {"module", "class_name", "config", "registered_name", "build_config", "compile_config", "shared_object_id"}
)

NESTED_CLASSES: dict[str, frozenset[str]] = {
    "keras": frozenset({"DTypePolicy", "FloatDTypePolicy"}),
    "keras.initializers": frozenset(
        {
            "Constant",
            "GlorotNormal",
            "GlorotUniform",
            "HeNormal",
            "HeUniform",
            "Identity",
            "IdentityInitializer",
            "LecunNormal",
            "LecunUniform",
            "Ones",
            "Orthogonal",
            "OrthogonalInitializer",
            "RandomNormal",
            "RandomUniform",
            "TruncatedNormal",
            "VarianceScaling",
            "Zeros",
        }
    ),
    "keras.regularizers": frozenset({"L1", "L1L2", "L2", "OrthogonalRegularizer"}),
    "keras.constraints": frozenset({"MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm"}),
    "keras.optimizers": frozenset(
        {
            "Adadelta",
            "Adafactor",
            "Adagrad",
            "Adam",
            "AdamW",
            "Adamax",
            "Ftrl",
            "Lamb",
            "Lion",
            "LossScaleOptimizer",
            "Nadam",
            "RMSprop",
            "SGD",
        }
    ),
    "keras.optimizers.schedules": frozenset(
        {
            "CosineDecay",
            "CosineDecayRestarts",
            "ExponentialDecay",
            "InverseTimeDecay",
            "PiecewiseConstantDecay",
            "PolynomialDecay",
        }
    ),
    "keras.losses": frozenset(
        {
            "BinaryCrossentropy",
            "BinaryFocalCrossentropy",
            "CategoricalCrossentropy",
            "CategoricalFocalCrossentropy",
            "CategoricalHinge",
            "CosineSimilarity",
            "Dice",
            "Hinge",
            "Huber",
            "KLDivergence",
            "LogCosh",
            "MeanAbsoluteError",
            "MeanAbsolutePercentageError",
            "MeanSquaredError",
            "MeanSquaredLogarithmicError",
            "Poisson",
            "SparseCategoricalCrossentropy",
            "SquaredHinge",
            "Tversky",
        }
    ),
    "keras.metrics": frozenset(
        {
            "AUC",
            "Accuracy",
            "BinaryAccuracy",
            "BinaryCrossentropy",
            "BinaryIoU",
            "CategoricalAccuracy",
            "CategoricalCrossentropy",
            "CategoricalHinge",
            "CosineSimilarity",
            "F1Score",
            "FBetaScore",
            "FalseNegatives",
            "FalsePositives",
            "Hinge",
            "IoU",
            "KLDivergence",
            "LogCoshError",
            "Mean",
            "MeanAbsoluteError",
            "MeanAbsolutePercentageError",
            "MeanIoU",
            "MeanSquaredError",
            "MeanSquaredLogarithmicError",
            "OneHotIoU",
            "OneHotMeanIoU",
            "Precision",
            "PrecisionAtRecall",
            "R2Score",
            "Recall",
            "RecallAtPrecision",
            "RootMeanSquaredError",
            "SensitivityAtSpecificity",
            "SparseCategoricalAccuracy",
            "SparseCategoricalCrossentropy",
            "SparseTopKCategoricalAccuracy",
            "SpecificityAtSensitivity",
            "SquaredHinge",
            "Sum",
            "TopKCategoricalAccuracy",
            "TrueNegatives",
            "TruePositives",
        }
    ),
}

ACTIVATION_NAMES = frozenset(
    {
        "celu",
        "elu",
        "exponential",
        "gelu",
        "glu",
        "hard_shrink",
        "hard_sigmoid",
        "hard_silu",
        "hard_swish",
        "hard_tanh",
        "leaky_relu",
        "linear",
        "log_sigmoid",
        "log_softmax",
        "mish",
        "relu",
        "relu6",
        "selu",
        "sigmoid",
        "silu",
        "soft_shrink",
        "softmax",
        "softplus",
        "softsign",
        "sparse_plus",
        "sparse_sigmoid",
        "sparsemax",
        "squareplus",
        "swish",
        "tanh",
        "tanh_shrink",
        "threshold",
    }
)
# Keras' `*.get(name)` accepts the snake_case function name and the class name.
_SNAKE_NAMES = {
    "keras.initializers": {
        "constant",
        "glorot_normal",
        "glorot_uniform",
        "he_normal",
        "he_uniform",
        "identity",
        "lecun_normal",
        "lecun_uniform",
        "ones",
        "orthogonal",
        "random_normal",
        "random_uniform",
        "truncated_normal",
        "variance_scaling",
        "zeros",
    },
    "keras.regularizers": {"l1", "l1_l2", "l2", "orthogonal_regularizer"},
    "keras.constraints": {"max_norm", "min_max_norm", "non_neg", "unit_norm"},
}


class _Kind:
    """What a slot of the config may hold: its name strings and its (module, class) objects."""

    def __init__(self, what: str, names: frozenset[str], objects: dict[str, frozenset[str]]):
        self.what, self.names, self.objects = what, names, objects


def _kind_of(module: str, what: str) -> _Kind:
    return _Kind(what, frozenset(_SNAKE_NAMES[module]) | NESTED_CLASSES[module], {module: NESTED_CLASSES[module]})


# A layer argument's kind follows from its name (`kernel_initializer`, `bias_constraint`, ...).
ACTIVATION = _Kind(
    "a Keras activation name or activation layer",
    ACTIVATION_NAMES,
    {"keras.layers": frozenset({"ReLU", "LeakyReLU", "Softmax", "Activation"}) & LAYER_CLASSES},
)
_SUFFIX_KINDS = {
    "_initializer": _kind_of("keras.initializers", "a built-in Keras initializer"),
    "_regularizer": _kind_of("keras.regularizers", "a built-in Keras regularizer"),
    "_constraint": _kind_of("keras.constraints", "a built-in Keras constraint"),
}
MODEL = _Kind("a keras.Sequential model", frozenset(), {m: frozenset({"Sequential"}) for m in MODEL_MODULES})
# cnnkit's own block layers (cnnkit/run/blocks.py): exactly these, each with its registered name. Their
# `block` config is the YAML a spec holds, checked by the spec parser (_check_block), not walked here.
BLOCK_MODULE = "cnnkit.run.blocks"
BLOCK_CLASSES = {"Residual": "cnnkit>Residual", "Stack": "cnnkit>Stack"}
LAYER = _Kind(
    "a keras.layers class that cnnkit builds (cnnkit.spec.layers.KERAS_CLASSES) or a cnnkit block (Residual, Stack)",
    frozenset(),
    {**{m: LAYER_CLASSES for m in LAYER_MODULES}, BLOCK_MODULE: frozenset(BLOCK_CLASSES)},
)
ANY = _Kind(
    "a built-in Keras dtype policy, initializer, regularizer, constraint, optimizer, schedule, loss or metric",
    frozenset(),
    NESTED_CLASSES,
)
# Marker slots: Sequential's inner `config` (whose `layers` is the layer list), and that list.
_MODEL_CONFIG = object()
_LAYER_LIST = object()
_OBJECT_MARKS = ("class_name", "module", "registered_name")  # a dict with one names a class


def _child_slot(key: str) -> _Kind:
    """A layer argument's kind follows from its name (`kernel_initializer`, `activation`...)."""
    if key == "activation":
        return ACTIVATION
    for suffix, kind in _SUFFIX_KINDS.items():
        if key.endswith(suffix):
            return kind
    return ANY


# --- public API ---------------------------------------------------------------------------------


def inspect_keras_file(path: str | os.PathLike) -> dict:
    """Check a .keras file without Keras and return its parsed `config.json`.

    Raises ModelFileError (one line: the path, what was expected, what was found) for anything
    but a local .keras zip holding exactly a Sequential of cnnkit layers and built-in objects.
    """
    where = os.fsdecode(path)
    local = _check_path(where)
    with open(local, "rb") as f:
        return _inspect_open(f, where)


def load_model(path: str | os.PathLike, *, compile: bool = True):
    """Inspect `path`, then load it with Keras (safe_mode=True). Returns a keras.Model.

    The file is copied into a private temporary folder first, and the copy is what gets both
    inspected and loaded: swapping the file after the check cannot smuggle anything past it.
    """
    where = os.fsdecode(path)
    local = _check_path(where)
    with tempfile.TemporaryDirectory(prefix="cnnkit-load-") as tmp:
        copy = Path(tmp) / "model.keras"
        with open(local, "rb") as src, open(copy, "xb") as dst:
            _copy_capped(src, dst, where)
        with open(copy, "rb") as f:
            _inspect_open(f, where)
        from cnnkit.backend import tensorflow

        tensorflow()  # imports TF quietly; `import keras` below is then free
        import keras  # lazily: this module must import without TensorFlow

        from cnnkit.run.blocks import block_classes

        block_classes(keras)  # registers cnnkit>Residual and cnnkit>Stack, the custom classes a model file may name

        try:
            return keras.saving.load_model(str(copy), safe_mode=True, compile=compile)
        except Exception as e:  # Keras raises ValueError/TypeError/OSError/KeyError/...
            raise ModelFileError(
                f"{where}: Keras could not load the model: {type(e).__name__}: {squeeze(str(e))}"
            ) from e


def check_model_config(config: Any, where: str) -> None:
    """Check a parsed `config.json` against the allow-lists; raise ModelFileError if refused.

    `where` is the model file's path, for the message: "<where>: config.json: <JSON path>: ..."."""
    _walk(config, "$", MODEL, 0, f"{where}: config.json")


# --- the file and the zip ----------------------------------------------------------------------


def _check_path(where: str) -> str:
    if _REMOTE.match(where):
        raise ModelFileError(
            f"{where}: expected a local .keras file, found a remote path (cnnkit never fetches model files)"
        )
    if not os.path.lexists(where):
        raise ModelFileError(f"{where}: expected a .keras file, found no such file")
    if os.path.isdir(where):
        found = "a SavedModel directory" if os.path.exists(os.path.join(where, "saved_model.pb")) else "a directory"
        raise ModelFileError(
            f"{where}: expected a .keras file, found {found}; cnnkit only loads .keras files (Keras v3 format)"
        )
    if where.lower().endswith(_LEGACY_SUFFIXES):
        raise ModelFileError(f"{where} is a legacy HDF5 file; cnnkit only loads .keras files (Keras v3 format)")
    if not where.endswith(".keras"):  # exactly: Keras picks its loader by this suffix
        suffix = Path(where).suffix
        raise ModelFileError(
            f"{where}: expected a .keras file, found " + (f"the extension '{suffix}'" if suffix else "no extension")
        )
    if not os.path.isfile(where):
        raise ModelFileError(f"{where}: expected a regular .keras file, found a special file")
    size = os.path.getsize(where)
    if size > MAX_TOTAL_BYTES:
        raise ModelFileError(
            f"{where}: expected a .keras file of at most {_size(MAX_TOTAL_BYTES)}, found {_size(size)}"
        )
    return where


def _copy_capped(src: BinaryIO, dst: BinaryIO, where: str) -> None:
    copied = 0
    while chunk := src.read(_READ_CHUNK):
        copied += len(chunk)
        if copied > MAX_TOTAL_BYTES:  # the file grew after it was checked
            raise ModelFileError(f"{where}: expected a .keras file of at most {_size(MAX_TOTAL_BYTES)}, found more")
        dst.write(chunk)


def _inspect_open(f: BinaryIO, where: str) -> dict:
    head = f.read(len(HDF5_MAGIC))
    f.seek(0)
    try:
        zf = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        found = "HDF5 data (a legacy .h5 file renamed to .keras)" if head == HDF5_MAGIC else "a file that is not a zip"
        raise ModelFileError(f"{where}: expected a .keras zip archive, found {found}") from None
    with zf:
        infos = _check_members(zf, where)
        data = {name: _read_member(zf, info, where) for name, info in infos.items()}
    if not data["model.weights.h5"].startswith(HDF5_MAGIC):
        raise ModelFileError(
            f"{where}: zip member 'model.weights.h5': expected HDF5 data, found {data['model.weights.h5'][:8]!r}..."
        )
    metadata = _parse_json(data["metadata.json"], "metadata.json", where)
    if not isinstance(metadata, dict):
        raise ModelFileError(f"{where}: metadata.json: expected a JSON object, found {_json_type(metadata)}")
    config = _parse_json(data["config.json"], "config.json", where)
    check_model_config(config, where)
    return config


def _check_members(zf: zipfile.ZipFile, where: str) -> dict[str, zipfile.ZipInfo]:
    expected = ", ".join(sorted(MEMBER_CAPS))
    infos: dict[str, zipfile.ZipInfo] = {}
    for info in zf.infolist():
        name = info.filename
        if (
            "/" in name
            or "\\" in name
            or ".." in name
            or ":" in name
            or "\0" in name
            or name.startswith(".")
            or not name
        ):
            raise ModelFileError(
                f"{where}: zip member {name!r}: expected a plain file name, found a path (refused: path traversal)"
            )
        if name not in MEMBER_CAPS:
            raise ModelFileError(f"{where}: expected only the zip members {expected}, found the extra member {name!r}")
        if name in infos:
            raise ModelFileError(f"{where}: expected each zip member once, found {name!r} twice")
        infos[name] = info
    for name in sorted(MEMBER_CAPS):
        if name not in infos:
            raise ModelFileError(f"{where}: expected the zip members {expected}, found no {name!r}")
    total = 0
    for name, info in infos.items():
        if info.flag_bits & 0x1:
            raise ModelFileError(
                f"{where}: zip member {name!r}: expected an unencrypted member, found an encrypted one"
            )
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ModelFileError(
                f"{where}: zip member {name!r}: expected stored or deflated "
                f"data, found compression method {info.compress_type}"
            )
        _check_size(where, name, info.file_size, MEMBER_CAPS[name])
        _check_ratio(where, name, info.file_size, info.compress_size)
        total += info.file_size
    if total > MAX_TOTAL_BYTES:
        raise ModelFileError(
            f"{where}: expected at most {_size(MAX_TOTAL_BYTES)} uncompressed in all, found {_size(total)}"
        )
    return infos


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> bytes:
    """Read a member, enforcing the caps on the bytes that really come out, not the declared
    sizes. The weights are streamed through (CRC and caps checked) and only their head is kept:
    Keras reads them itself, and they may be large."""
    name = info.filename
    keep_all = name != "model.weights.h5"
    kept, count = [], 0
    try:
        with zf.open(info) as m:
            while chunk := m.read(_READ_CHUNK):
                count += len(chunk)
                _check_size(where, name, count, MEMBER_CAPS[name], while_reading=True)
                _check_ratio(where, name, count, info.compress_size, while_reading=True)
                if keep_all or not kept:
                    kept.append(chunk)
    except ModelFileError:
        raise
    except Exception as e:  # zlib.error, BadZipFile (bad CRC), EOFError, OSError ...
        raise ModelFileError(
            f"{where}: zip member {name!r}: expected readable zip data, found a corrupt member ({squeeze(str(e))})"
        ) from None
    return b"".join(kept)


def _check_size(where: str, name: str, size: int, cap: int, while_reading: bool = False) -> None:
    if size > cap:
        found = "more than that while reading" if while_reading else _size(size)
        if found == _size(cap):
            found = f"{size:,} bytes"
        raise ModelFileError(f"{where}: zip member {name!r}: expected at most {_size(cap)} uncompressed, found {found}")


def _check_ratio(where: str, name: str, size: int, compressed: int, while_reading: bool = False) -> None:
    ratio = size / compressed if compressed else (float("inf") if size else 0.0)
    if ratio > MAX_RATIO:
        found = "more than that while reading" if while_reading else f"{ratio:.0f}"
        raise ModelFileError(
            f"{where}: zip member {name!r}: expected a compression ratio of at "
            f"most {MAX_RATIO}, found {found} (zip bomb?)"
        )


def _parse_json(raw: bytes, member: str, where: str) -> Any:
    def no_duplicates(pairs):
        seen = {}
        for key, value in pairs:
            if key in seen:
                raise ModelFileError(f"{where}: {member}: expected each key once per object, found {key!r} twice")
            seen[key] = value
        return seen

    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates)
    except UnicodeDecodeError as e:
        raise ModelFileError(
            f"{where}: {member}: expected UTF-8 JSON, found undecodable byte at offset {e.start}"
        ) from None
    except json.JSONDecodeError as e:
        raise ModelFileError(
            f"{where}: {member}: expected JSON, found invalid JSON at line {e.lineno} column {e.colno} ({e.msg})"
        ) from None
    except RecursionError:
        raise ModelFileError(
            f"{where}: {member}: expected JSON nested at most {MAX_DEPTH} deep, found deeper"
        ) from None


# --- the config tree ---------------------------------------------------------------------------


def _walk(node: Any, jpath: str, slot: Any, depth: int, where: str) -> None:
    """Check one JSON node against what may stand in its `slot`.

    MODEL and LAYER must be objects; a _Kind slot (activation, initializer, ...) holds null, one
    of its names, or one of its objects; ANY holds plain JSON and built-in objects. Every dict
    naming a class is an object reference and must be on an allow-list; every other string must
    not look like a Python path.
    """
    if depth > MAX_DEPTH:
        _refuse(where, jpath, f"JSON nested at most {MAX_DEPTH} deep", "deeper")
    if slot is _LAYER_LIST:
        if not isinstance(node, list):
            _refuse(where, jpath, "a list of layers", _json_type(node))
        for i, item in enumerate(node):
            _walk(item, f"{jpath}[{i}]", LAYER, depth + 1, where)
        return
    is_object = isinstance(node, dict) and any(k in node for k in _OBJECT_MARKS)
    is_block = is_object and slot is LAYER and node.get("module") == BLOCK_MODULE
    holds_layers = slot is _MODEL_CONFIG
    if holds_layers:
        if not isinstance(node, dict) or is_object or "layers" not in node:
            _refuse(
                where,
                jpath,
                "the Sequential config: an object with a list of layers",
                "an object reference" if is_object else _json_type(node),
            )
        slot = ANY
    strict = slot is not ANY  # MODEL, LAYER, or a kind (activation, initializer, ...)
    if isinstance(node, dict):
        if is_object:
            _check_object(node, jpath, slot, where)
        elif strict:
            _refuse(where, jpath, slot.what, "an object without a class_name")
        for key, value in node.items():
            if is_object and key in _OBJECT_MARKS:
                continue  # checked by _check_object
            child = f"{jpath}.{key}" if re.fullmatch(r"\w+", key) else f"{jpath}[{key!r}]"
            if key == "function":
                _refuse(
                    where,
                    child,
                    "no Python function",
                    "a 'function' entry (Python code in a model file is never loaded)",
                )
            if _DOTTED.fullmatch(key):
                _refuse(where, child, "a plain key", f"the Python path {key!r}")
            if is_block and key == "config":
                _check_block(node, value, child, depth + 1, where)
                continue
            if slot is MODEL and key == "config":
                child_slot = _MODEL_CONFIG
            elif holds_layers and key == "layers":
                child_slot = _LAYER_LIST
            else:
                child_slot = _child_slot(key)
            _walk(value, child, child_slot, depth + 1, where)
    elif isinstance(node, str):
        if strict and node not in getattr(slot, "names", ()):
            _refuse(where, jpath, slot.what, repr(node))
        if _DOTTED.fullmatch(node):
            _refuse(where, jpath, "a plain value", f"the Python path {node!r}")
    elif strict and (node is not None or slot is MODEL or slot is LAYER):
        _refuse(where, jpath, slot.what, _json_type(node))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            _walk(item, f"{jpath}[{i}]", ANY, depth + 1, where)


def _check_object(node: dict, jpath: str, slot: Any, where: str) -> None:
    cls, module = node.get("class_name"), node.get("module")
    registered = node.get("registered_name")
    if not isinstance(cls, str):
        _refuse(where, f"{jpath}.class_name", "a class name", _json_type(cls))
    prefix = f"{module}." if isinstance(module, str) and module else ""
    full = prefix + cls
    if cls == "function":  # Keras looks the function up by name: name that in the message
        inner = node.get("config")
        full = f"the function {prefix + inner!r}" if isinstance(inner, str) else repr(full)
    else:
        full = repr(full)
    if cls in CODE_CLASSES or cls.startswith("__"):
        _refuse(where, jpath, slot.what, f"{full} (Python code in a model file is never loaded)")
    if not isinstance(module, str):
        _refuse(where, f"{jpath}.module", f"a Keras module name for {cls!r}", _json_type(module))
    if cls not in slot.objects.get(module, ()):
        _refuse(where, jpath, slot.what, full)
    if module == BLOCK_MODULE:
        if registered != BLOCK_CLASSES[cls]:
            _refuse(where, f"{jpath}.registered_name", repr(BLOCK_CLASSES[cls]), repr(registered))
    elif registered is not None and registered != cls:
        _refuse(
            where, f"{jpath}.registered_name", f"null or {cls!r}", f"{registered!r} (custom objects are never loaded)"
        )
    for key in node:
        if key not in OBJECT_KEYS:
            _refuse(where, f"{jpath}.{key}", f"only the keys {', '.join(sorted(OBJECT_KEYS))}", f"the key {key!r}")
    if not isinstance(node.get("config"), dict):
        _refuse(where, f"{jpath}.config", f"an object holding the config of {cls!r}", _json_type(node.get("config")))


def _check_block(node: dict, config: Any, jpath: str, depth: int, where: str) -> None:
    """A cnnkit block's config: Keras' own keys walked as usual, its `block` read by the spec parser, which
    builds nothing and accepts only what a spec file may hold (so only registry layers come back)."""
    if not isinstance(config, dict):
        _refuse(where, jpath, f"an object holding the config of {node['class_name']!r}", _json_type(config))
    for key, value in config.items():
        if key == "block":
            continue
        _walk(value, f"{jpath}.{key}", _child_slot(key), depth + 1, where)
    block = config.get("block")
    if not isinstance(block, dict):
        _refuse(where, f"{jpath}.block", "the block as a spec writes it ({layers: [...], ...})", _json_type(block))
    try:
        (stack_from_config if node["class_name"] == "Stack" else residual_from_config)(block, "block")
    except SpecError as err:
        _refuse(where, f"{jpath}.block", "a block a cnnkit spec could hold", squeeze(err.message))


def _refuse(where: str, jpath: str, expected: str, found: str):
    raise ModelFileError(f"{where}: {jpath}: expected {expected}, found {found}")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def _size(n: int) -> str:
    return f"{n / GiB:.1f} GB" if n >= GiB else f"{n / MiB:.1f} MB" if n >= MiB else f"{n} bytes"

"""Model files cannot run code: a real .keras round-trips; every hostile file is refused, with an
exact message, before Keras deserializes anything.

Hostile names are built by concatenation ("enable_unsafe_" + "deserialization") so that
tests/test_lint.py can stay strict about the source of every other file.
"""

from __future__ import annotations

import importlib
import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cnnkit.errors import ModelFileError
from cnnkit.run import modelfile
from cnnkit.spec.layers import KERAS_CLASSES

# Every test here builds, saves or loads real Keras models.
pytestmark = pytest.mark.slow


class _Keras:
    """Keras, imported on first use: collecting this file (as `make test-fast` does, to skip it) stays free."""

    def __getattr__(self, name):
        if name.startswith("_") or name == "pytestmark":  # what pytest's collection asks of module attributes
            raise AttributeError(name)
        import keras

        return getattr(keras, name)


keras = _Keras()

UNSAFE_FLAG = "enable_unsafe_" + "deserialization"
MEMBERS = "config.json, metadata.json, model.weights.h5"


def _small_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(path of a real .keras file, the model, a batch of inputs)."""
    model = _small_model()
    path = tmp_path_factory.mktemp("saved") / "small.keras"
    model.save(path)
    x = np.random.default_rng(0).random((5, 8, 8, 1), dtype=np.float32)
    return path, model, x


@pytest.fixture
def keras_must_not_load(monkeypatch):
    def fail(*args, **kwargs):
        pytest.fail(f"keras.saving.load_model was reached for a refused file: {args}")

    monkeypatch.setattr(keras.saving, "load_model", fail)


def _refused(path, message: str) -> None:
    """cnnkit.load_model refuses `path` with exactly `message`, before Keras loads anything."""
    with pytest.raises(ModelFileError) as info:
        modelfile.load_model(path)
    assert str(info.value) == message
    with pytest.raises(ModelFileError) as info:
        modelfile.inspect_keras_file(path)
    assert str(info.value) == message


def _rewrite(
    src: Path, dst: Path, *, config=None, members: dict | None = None, compression: int = zipfile.ZIP_STORED
) -> Path:
    """Copy a .keras zip, editing config.json with `config(dict)` and adding/replacing members."""
    with zipfile.ZipFile(src) as zin:
        contents = {name: zin.read(name) for name in zin.namelist()}
    if config is not None:
        parsed = json.loads(contents["config.json"])
        config(parsed)
        contents["config.json"] = json.dumps(parsed).encode()
    contents.update(members or {})
    with zipfile.ZipFile(dst, "w", compression=compression) as zout:
        for name, data in contents.items():
            zout.writestr(name, data)
    return dst


# --- the happy path ------------------------------------------------------------------------------


def test_real_model_round_trips(saved):
    path, model, x = saved
    config = modelfile.inspect_keras_file(path)
    assert config["class_name"] == "Sequential"
    assert [layer["class_name"] for layer in config["config"]["layers"]] == [
        "InputLayer",
        "Conv2D",
        "MaxPooling2D",
        "Flatten",
        "Dense",
    ]
    loaded = modelfile.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    uncompiled = modelfile.load_model(path, compile=False)
    np.testing.assert_array_equal(uncompiled.predict(x, verbose=0), model.predict(x, verbose=0))


def test_deflated_copy_is_accepted(saved, tmp_path):
    """Keras stores members uncompressed; a re-zipped (deflated) file is still fine."""
    path, model, x = saved
    deflated = _rewrite(path, tmp_path / "deflated.keras", compression=zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(deflated) as z:
        assert {info.compress_type for info in z.infolist()} == {zipfile.ZIP_DEFLATED}
    assert modelfile.inspect_keras_file(deflated) == modelfile.inspect_keras_file(path)
    np.testing.assert_array_equal(modelfile.load_model(deflated).predict(x, verbose=0), model.predict(x, verbose=0))


def test_builtin_objects_are_accepted(tmp_path):
    """Schedules, loss/metric objects, regularizers, constraints, activation layers, policies."""
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = keras.Sequential(
            [
                keras.Input((8, 8, 1)),
                keras.layers.Conv2D(
                    4,
                    3,
                    kernel_regularizer=keras.regularizers.L1L2(1e-3, 1e-3),
                    kernel_constraint=keras.constraints.MaxNorm(2),
                    bias_initializer="he_normal",
                ),
                keras.layers.BatchNormalization(),
                keras.layers.GlobalAveragePooling2D(),
                keras.layers.Dense(3, activation=keras.layers.ReLU()),
            ]
        )
    finally:
        keras.config.set_dtype_policy("float32")
    model.compile(
        keras.optimizers.AdamW(keras.optimizers.schedules.CosineDecay(0.1, 100)),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(), "accuracy"],
    )
    path = tmp_path / "rich.keras"
    model.save(path)
    x = np.random.default_rng(0).random((4, 8, 8, 1)).astype("float32")
    loaded = modelfile.load_model(path)
    # the same network, weights and compiled objects came back, not merely "no exception"
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-3, atol=1e-3)
    assert type(loaded.optimizer).__name__ == "AdamW"
    assert type(loaded.optimizer.learning_rate).__name__ != "float"  # the schedule, not a plain number
    assert type(loaded.loss).__name__ == "SparseCategoricalCrossentropy"


def test_keras_errors_become_model_file_errors(saved, tmp_path):
    """A file that passes inspection but that Keras cannot build: Keras' error, with the path."""

    def bad_units(c):
        c["config"]["layers"][4]["config"]["units"] = "three"

    path = _rewrite(saved[0], tmp_path / "units.keras", config=bad_units)
    with pytest.raises(ModelFileError) as info:
        modelfile.load_model(path)
    assert str(info.value).startswith(f"{path}: Keras could not load the model: ")
    assert "\n" not in str(info.value)


# Each registry entry must survive the check as Keras serializes it (timm-style: a new layer in
# KERAS_CLASSES is tested without a new test). Arguments only where a layer requires them.
REQUIRED_ARGS = {
    "Conv1D": dict(filters=2, kernel_size=3),
    "Conv2D": dict(filters=2, kernel_size=3),
    "Conv3D": dict(filters=2, kernel_size=3),
    "SeparableConv1D": dict(filters=2, kernel_size=3),
    "SeparableConv2D": dict(filters=2, kernel_size=3),
    "DepthwiseConv1D": dict(kernel_size=3),
    "DepthwiseConv2D": dict(kernel_size=3),
    "Conv1DTranspose": dict(filters=2, kernel_size=3),
    "Conv2DTranspose": dict(filters=2, kernel_size=3),
    "Conv3DTranspose": dict(filters=2, kernel_size=3),
    "Dense": dict(units=2),
    "AveragePooling1D": dict(pool_size=2),
    "AveragePooling2D": dict(pool_size=2),
    "AveragePooling3D": dict(pool_size=2),
    "Dropout": dict(rate=0.5),
    "SpatialDropout1D": dict(rate=0.5),
    "SpatialDropout2D": dict(rate=0.5),
    "SpatialDropout3D": dict(rate=0.5),
    "GaussianNoise": dict(stddev=0.1),
    "Activation": dict(activation="relu"),
    "Reshape": dict(target_shape=(4,)),
    "Permute": dict(dims=(2, 1)),
    "Rescaling": dict(scale=0.5),
    "Resizing": dict(height=4, width=4),
    "RandomRotation": dict(factor=0.1),
    "RandomTranslation": dict(height_factor=0.1, width_factor=0.1),
    "RandomZoom": dict(height_factor=0.1),
    "RandomContrast": dict(factor=0.1),
    "RandomBrightness": dict(factor=0.1),
    "RandomCrop": dict(height=4, width=4),
}


@pytest.mark.parametrize("class_name", KERAS_CLASSES)
def test_every_cnnkit_layer_is_accepted(saved, class_name):
    layer = getattr(keras.layers, class_name)(**REQUIRED_ARGS.get(class_name, {}))
    config = modelfile.inspect_keras_file(saved[0])
    config["config"]["layers"] = [config["config"]["layers"][0], keras.saving.serialize_keras_object(layer)]
    modelfile.check_model_config(json.loads(json.dumps(config)), "model.keras")


@pytest.mark.parametrize("module", sorted(modelfile.NESTED_CLASSES))
def test_allow_listed_classes_are_keras_builtins(module):
    public = importlib.import_module(module)
    for name in modelfile.NESTED_CLASSES[module]:
        assert hasattr(getattr(public, name, None), "from_config"), f"{module}.{name}"


def test_allow_listed_names_resolve_in_keras():
    for name in modelfile.ACTIVATION_NAMES:
        keras.activations.get(name)
    for module, names in modelfile._SNAKE_NAMES.items():  # the aliases `get(name)` accepts
        public = importlib.import_module(module)
        for name in names:
            assert callable(getattr(public, name, None)), f"{module}.{name}"


def test_module_imports_without_tensorflow():
    code = (
        "import sys, cnnkit.run.modelfile; "
        "bad = sorted({'tensorflow', 'keras'} & set(sys.modules)); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- refused: what Keras itself writes -----------------------------------------------------------


def test_lambda_layer_saved_by_keras_is_refused(tmp_path, keras_must_not_load):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x * 2)])
    path = tmp_path / "lambda.keras"
    model.save(path)
    _refused(
        path,
        f"{path}: config.json: $.config.layers[1]: expected a keras.layers class that "
        "cnnkit builds (cnnkit.spec.layers.KERAS_CLASSES) or a cnnkit block (Residual, Stack, Backbone), found 'keras.layers.Lambda' "
        "(Python code in a model file is never loaded)",
    )


def test_legacy_h5_is_refused(tmp_path, keras_must_not_load):
    path = tmp_path / "legacy.h5"
    _small_model().save(path)  # Keras' legacy HDF5 saving, chosen by the suffix
    assert path.read_bytes().startswith(b"\x89HDF")
    _refused(path, f"{path} is a legacy HDF5 file; cnnkit only loads .keras files (Keras v3 format)")
    renamed = tmp_path / "renamed.keras"
    renamed.write_bytes(path.read_bytes())
    _refused(
        renamed, f"{renamed}: expected a .keras zip archive, found HDF5 data (a legacy .h5 file renamed to .keras)"
    )


# --- refused: crafted config.json ----------------------------------------------------------------
# Layers of the saved model: [0] InputLayer, [1] Conv2D, [2] MaxPooling2D, [3] Flatten, [4] Dense.


def _layer(c, i):
    return c["config"]["layers"][i]


def _set(i, key, value):
    return lambda c: _layer(c, i)["config"].__setitem__(key, value)


def _insert_layer(value):
    return lambda c: c["config"]["layers"].insert(1, value)


OS_SYSTEM = {"module": "os", "class_name": "system", "config": {"command": "touch pwned"}, "registered_name": None}
EVAL_FN = {"module": "builtins", "class_name": "function", "config": "eval", "registered_name": "function"}
UNSAFE_LAYER = {"module": "keras.config", "class_name": UNSAFE_FLAG, "config": {}, "registered_name": None}
GET_FILE = {
    "module": "keras.utils",
    "class_name": "get_file",
    "config": {"origin": "https://example.invalid/x", "fname": "/tmp/owned"},
    "registered_name": None,
}
INIT = "$.config.layers[1].config.kernel_initializer"
LAYER_WHAT = "a keras.layers class that cnnkit builds (cnnkit.spec.layers.KERAS_CLASSES) or a cnnkit block (Residual, Stack, Backbone)"
CODE = "(Python code in a model file is never loaded)"

CRAFTED = {
    "os.system as an initializer": (
        _set(1, "kernel_initializer", OS_SYSTEM),
        f"{INIT}: expected a built-in Keras initializer, found 'os.system'",
    ),
    "os.system as a layer": (_insert_layer(OS_SYSTEM), f"$.config.layers[1]: expected {LAYER_WHAT}, found 'os.system'"),
    "os.system as a plain string": (
        _set(1, "padding", "os.system"),
        "$.config.layers[1].config.padding: expected a plain value, found the Python path 'os.system'",
    ),
    "builtins.eval as a function": (
        _set(4, "activation", EVAL_FN),
        "$.config.layers[4].config.activation: expected a Keras activation name or activation "
        f"layer, found the function 'builtins.eval' {CODE}",
    ),
    "the unsafe-deserialization switch as a layer": (
        _insert_layer(UNSAFE_LAYER),
        f"$.config.layers[1]: expected {LAYER_WHAT}, found 'keras.config.{UNSAFE_FLAG}'",
    ),
    "the unsafe-deserialization switch as a loss function": (
        lambda c: c["compile_config"].__setitem__(
            "loss", {"module": "keras.config", "class_name": "function", "config": UNSAFE_FLAG, "registered_name": None}
        ),
        "$.compile_config.loss: expected a built-in Keras dtype policy, initializer, "
        "regularizer, constraint, optimizer, schedule, loss or metric, "
        f"found the function 'keras.config.{UNSAFE_FLAG}' {CODE}",
    ),
    "keras.utils.get_file as an initializer": (
        _set(1, "kernel_initializer", GET_FILE),
        f"{INIT}: expected a built-in Keras initializer, found 'keras.utils.get_file'",
    ),
    "keras.utils.get_file in compile_config": (
        lambda c: c["compile_config"].__setitem__("optimizer", GET_FILE),
        "$.compile_config.optimizer: expected a built-in Keras dtype policy, initializer, "
        "regularizer, constraint, optimizer, schedule, loss or metric, "
        "found 'keras.utils.get_file'",
    ),
    "registered_name naming a custom layer": (
        lambda c: _layer(c, 1).__setitem__("registered_name", "my_package>Conv2D"),
        "$.config.layers[1].registered_name: expected null or 'Conv2D', "
        "found 'my_package>Conv2D' (custom objects are never loaded)",
    ),
    "registered_name naming a custom initializer": (
        lambda c: _layer(c, 1)["config"]["kernel_initializer"].__setitem__("registered_name", "my_package>Evil"),
        f"{INIT}.registered_name: expected null or 'GlorotUniform', "
        "found 'my_package>Evil' (custom objects are never loaded)",
    ),
    "Functional top level": (
        lambda c: c.__setitem__("class_name", "Functional"),
        "$: expected a keras.Sequential model, found 'keras.Functional'",
    ),
    "a nested __lambda__": (
        lambda c: c["compile_config"].__setitem__(
            "metrics", [{"class_name": "__lambda__", "config": {"code": "AAAA"}}]
        ),
        "$.compile_config.metrics[0]: expected a built-in Keras dtype policy, initializer, "
        f"regularizer, constraint, optimizer, schedule, loss or metric, found '__lambda__' {CODE}",
    ),
    "a TFSMLayer": (
        _insert_layer(
            {
                "module": "keras.layers",
                "class_name": "TFSMLayer",
                "config": {"filepath": "/tmp/saved_model"},
                "registered_name": None,
            }
        ),
        f"$.config.layers[1]: expected {LAYER_WHAT}, found 'keras.layers.TFSMLayer' {CODE}",
    ),
    "a function entry in a layer config": (
        _set(3, "function", "x"),
        f"$.config.layers[3].config.function: expected no Python function, found a 'function' entry {CODE}",
    ),
    "a layer without a module (Keras' legacy loader)": (
        lambda c: _layer(c, 3).pop("module"),
        "$.config.layers[3].module: expected a Keras module name for 'Flatten', found null",
    ),
    "a Keras class from an internal module": (
        lambda c: _layer(c, 1)["config"]["kernel_initializer"].__setitem__("module", "keras.src.initializers"),
        f"{INIT}: expected a built-in Keras initializer, found 'keras.src.initializers.GlorotUniform'",
    ),
    "an unknown activation name": (
        _set(4, "activation", "eval"),
        "$.config.layers[4].config.activation: expected a Keras activation name or activation layer, found 'eval'",
    ),
}


@pytest.mark.parametrize("edit, tail", CRAFTED.values(), ids=CRAFTED.keys())
def test_crafted_config_is_refused(saved, tmp_path, keras_must_not_load, edit, tail):
    path = _rewrite(saved[0], tmp_path / "crafted.keras", config=edit)
    _refused(path, f"{path}: config.json: {tail}")


def test_duplicate_json_keys_are_refused(saved, tmp_path, keras_must_not_load):
    raw = json.dumps(modelfile.inspect_keras_file(saved[0]))
    raw = raw.replace('"class_name": "Sequential"', '"class_name": "Sequential", "class_name": "Functional"', 1)
    path = _rewrite(saved[0], tmp_path / "dup.keras", members={"config.json": raw.encode()})
    _refused(path, f"{path}: config.json: expected each key once per object, found 'class_name' twice")


def test_invalid_json_is_refused(saved, tmp_path, keras_must_not_load):
    path = _rewrite(saved[0], tmp_path / "bad.keras", members={"config.json": b"{nope"})
    _refused(
        path,
        f"{path}: config.json: expected JSON, found invalid JSON at line 1 column 2 "
        "(Expecting property name enclosed in double quotes)",
    )


# --- refused: the zip itself ---------------------------------------------------------------------


def test_extra_member_is_refused(saved, tmp_path, keras_must_not_load):
    path = _rewrite(saved[0], tmp_path / "extra.keras", members={"evil.py": b"import os"})
    _refused(path, f"{path}: expected only the zip members {MEMBERS}, found the extra member 'evil.py'")


def test_missing_member_is_refused(saved, tmp_path, keras_must_not_load):
    path = tmp_path / "short.keras"
    with zipfile.ZipFile(saved[0]) as zin, zipfile.ZipFile(path, "w") as zout:
        for name in ("metadata.json", "config.json"):
            zout.writestr(name, zin.read(name))
    _refused(path, f"{path}: expected the zip members {MEMBERS}, found no 'model.weights.h5'")


@pytest.mark.parametrize("name", ["../config.json", "/etc/passwd", "assets/x", "..\\x"])
def test_path_traversal_member_is_refused(saved, tmp_path, keras_must_not_load, name):
    path = tmp_path / "traversal.keras"
    with zipfile.ZipFile(saved[0]) as zin, zipfile.ZipFile(path, "w") as zout:
        for member in zin.namelist():
            zout.writestr(member, zin.read(member))
        zout.writestr(zipfile.ZipInfo(name), b"x")
    stored = zipfile.ZipFile(path).namelist()[-1]  # zipfile may normalize the name it writes
    _refused(path, f"{path}: zip member {stored!r}: expected a plain file name, found a path (refused: path traversal)")


def test_zip_bomb_is_refused(saved, tmp_path, keras_must_not_load):
    zeros = b"\x89HDF\r\n\x1a\n" + bytes(5 * 1024 * 1024)
    path = _rewrite(
        saved[0], tmp_path / "bomb.keras", members={"model.weights.h5": zeros}, compression=zipfile.ZIP_DEFLATED
    )
    info = zipfile.ZipFile(path).getinfo("model.weights.h5")
    ratio = info.file_size / info.compress_size
    assert ratio > 1000
    _refused(
        path,
        f"{path}: zip member 'model.weights.h5': expected a compression ratio of at "
        f"most 200, found {ratio:.0f} (zip bomb?)",
    )


def test_oversized_config_is_refused(saved, tmp_path, keras_must_not_load):
    big = b" " * (modelfile.MAX_CONFIG_BYTES + 1)
    path = _rewrite(saved[0], tmp_path / "big.keras", members={"config.json": big})
    _refused(path, f"{path}: zip member 'config.json': expected at most 10.0 MB uncompressed, found 10,485,761 bytes")


def test_lying_declared_size_is_caught_while_reading(saved, tmp_path, keras_must_not_load):
    """The central directory says config.json is 10 bytes; the real data is longer."""
    path = _rewrite(saved[0], tmp_path / "liar.keras")
    data = bytearray(path.read_bytes())
    entry = data.index(b"PK\x01\x02")
    while True:  # find config.json's central-directory record; patch its uncompressed size
        name_len = struct.unpack_from("<H", data, entry + 28)[0]
        if data[entry + 46 : entry + 46 + name_len] == b"config.json":
            break
        entry = data.index(b"PK\x01\x02", entry + 4)
    struct.pack_into("<I", data, entry + 24, 10)
    path.write_bytes(bytes(data))
    _refused(
        path,
        f"{path}: zip member 'config.json': expected readable zip data, found a "
        "corrupt member (Bad CRC-32 for file 'config.json')",
    )


def test_not_a_zip_is_refused(tmp_path, keras_must_not_load):
    path = tmp_path / "text.keras"
    path.write_text("definitely not a zip")
    _refused(path, f"{path}: expected a .keras zip archive, found a file that is not a zip")


def test_weights_that_are_not_hdf5_are_refused(saved, tmp_path, keras_must_not_load):
    path = _rewrite(saved[0], tmp_path / "weights.keras", members={"model.weights.h5": b"PK not hdf5"})
    _refused(path, f"{path}: zip member 'model.weights.h5': expected HDF5 data, found b'PK not h'...")


# --- refused: the path ---------------------------------------------------------------------------


def test_missing_file_is_refused(tmp_path, keras_must_not_load):
    path = tmp_path / "absent.keras"
    _refused(path, f"{path}: expected a .keras file, found no such file")


def test_directory_is_refused(tmp_path, keras_must_not_load):
    _refused(
        tmp_path,
        f"{tmp_path}: expected a .keras file, found a directory; cnnkit only loads .keras files (Keras v3 format)",
    )
    (tmp_path / "saved_model.pb").write_bytes(b"")
    _refused(
        tmp_path,
        f"{tmp_path}: expected a .keras file, found a SavedModel directory; "
        "cnnkit only loads .keras files (Keras v3 format)",
    )


@pytest.mark.parametrize(
    "url",
    ["gs://bucket/model.keras", "https://example.com/model.keras", "hf://someone/model", "/gcs/bucket/model.keras"],
)
def test_remote_path_is_refused(url, keras_must_not_load):
    _refused(url, f"{url}: expected a local .keras file, found a remote path (cnnkit never fetches model files)")


@pytest.mark.parametrize(
    "name, found",
    [("model.pb", "the extension '.pb'"), ("model.KERAS", "the extension '.KERAS'"), ("model", "no extension")],
)
def test_other_extensions_are_refused(saved, tmp_path, keras_must_not_load, name, found):
    path = tmp_path / name
    path.write_bytes(saved[0].read_bytes())
    _refused(path, f"{path}: expected a .keras file, found {found}")


def test_special_file_is_refused(tmp_path, keras_must_not_load):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    path = tmp_path / "pipe.keras"
    os.mkfifo(path)
    _refused(path, f"{path}: expected a regular .keras file, found a special file")


def test_copy_is_what_gets_loaded(saved, monkeypatch):
    """load_model hands Keras a private copy, so swapping the file after the check is useless."""
    seen = []
    real = keras.saving.load_model

    def spy(filepath, **kwargs):
        seen.append((filepath, kwargs))
        return real(filepath, **kwargs)

    monkeypatch.setattr(keras.saving, "load_model", spy)
    modelfile.load_model(saved[0], compile=False)
    ((filepath, kwargs),) = seen
    assert filepath != str(saved[0]) and filepath.endswith(".keras")
    assert kwargs == {"safe_mode": True, "compile": False}
    assert not Path(filepath).exists()  # the private copy is gone afterwards

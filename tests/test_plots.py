"""cnnkit.viz.plots and cnnkit.viz.probe: every picture, for an MNIST-like and a CIFAR-like model.

Each picture is checked the same way: a PNG exists at the path returned, its pixel size is the documented
figsize × DPI, and it is not blank (grey-level spread above a floor). Models are tiny and untrained: the random
initial weights are enough to draw kernels and feature maps.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnkit.errors import CnnkitError, DataError
from cnnkit.viz import (
    plots,
    probe,  # imports Keras only inside its functions
)
from cnnkit.viz.kernels import KERNELS, conv2d


class _Keras:
    """Keras, imported on first use: the picture tests of `make test-fast` need no TensorFlow."""

    def __getattr__(self, name):
        if name.startswith("_") or name == "pytestmark":  # what pytest's collection asks of module attributes
            raise AttributeError(name)
        import keras

        return getattr(keras, name)


keras = _Keras()

DPI = plots.DPI
DIGITS = [str(i) for i in range(10)]
CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CASES = {
    # case: (input shape, class names)
    "mnist": ((28, 28, 1), DIGITS),
    "cifar": ((32, 32, 3), CIFAR),
}


def px(inches: float) -> int:
    return round(inches * DPI)


def assert_picture(path, size: tuple[float, float] | None = None, *, min_std: float = 3.0) -> np.ndarray:
    """The PNG exists, is `size` inches at DPI, and is not a blank canvas; returns its grey pixels."""
    assert path.is_file(), path
    with Image.open(path) as img:
        assert img.format == "PNG"
        if size is not None:
            assert img.size == (px(size[0]), px(size[1]))
        grey = np.asarray(img.convert("L"), dtype=np.float64)
    assert grey.std() > min_std, f"{path.name} looks blank (std {grey.std():.2f})"
    # A crash mid-save must not leave temp files next to the pictures.
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    return grey


# ------------------------------------------------------------------------------------------------ fixtures
def _build(case: str):
    shape, names = CASES[case]
    keras.utils.set_random_seed(0)
    L = keras.layers
    model = keras.Sequential(
        [
            keras.Input(shape),
            L.Conv2D(8, 3, activation="relu", name="conv_a"),
            L.MaxPooling2D(2, name="pool_a"),
            L.Conv2D(16, 3, activation="relu", name="conv_b"),
            L.MaxPooling2D(2, name="pool_b"),
            L.Flatten(name="flatten"),
            L.Dense(len(names), activation="softmax", name="classifier"),
        ],
        name=f"tiny-{case}",
    )
    return model


@pytest.fixture(params=list(CASES))
def picture_case(request):
    """(case name, a sample image, class names): what the pictures that need no model take (no Keras)."""
    shape, names = CASES[request.param]
    return request.param, _sample_image(shape), names


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    """(case name, model, a sample image, class names)"""
    name = request.param
    model = _build(name)
    shape, names = CASES[name]
    image = _sample_image(shape)
    return name, model, image, names


def _sample_image(shape) -> np.ndarray:
    """A digit-like '7' stroke (MNIST) or a coloured square on a gradient (CIFAR), float32 in [0, 1]."""
    h, w, c = shape
    image = np.zeros((h, w, c), np.float32)
    if c == 1:
        image[5:9, 7:21] = 1.0
        for r in range(9, 24):
            col = 20 - (r - 9) // 2
            image[r, col - 2 : col + 1] = 1.0
    else:
        image[..., 2] = np.linspace(0.2, 0.9, w)[None, :]
        image[8:24, 10:22, 0] = 0.9
        image[8:24, 10:22, 2] = 0.1
    return image


def _summary(model, input_shape) -> dict:
    """The summary dict the architecture picture takes, made here from Keras (the real one comes from shapes.py)."""
    layers = [
        {
            "index": i,
            "type": type(layer).__name__,
            "output_shape": list(layer.output.shape[1:]),
            "params": int(layer.count_params()),
        }
        for i, layer in enumerate(model.layers)
    ]
    return {
        "name": model.name,
        "input_shape": list(input_shape),
        "layers": layers,
        "total_params": int(model.count_params()),
        "total_macs": 123456,
    }


# --------------------------------------------------------------------------------------------- pictures
def test_curves(picture_case, tmp_path):
    name, *_ = picture_case
    metric = "accuracy" if name == "mnist" else "top_k_categorical_accuracy"
    epochs = np.arange(8)
    history = {
        "loss": list(1.5 * np.exp(-epochs / 3)),
        metric: list(1 - 0.8 * np.exp(-epochs / 2)),
        "val_loss": list(1.6 * np.exp(-epochs / 3) + 0.05 * np.maximum(epochs - 4, 0)),
        f"val_{metric}": list(1 - 0.85 * np.exp(-epochs / 2)),
    }
    out = plots.plot_curves(history, tmp_path / "deep" / "curves.png")
    assert out == tmp_path / "deep" / "curves.png"  # parent folders are created
    assert_picture(out, (4.5 * 2, 3.4 + 0.6))


def test_curves_without_validation_and_with_a_learning_rate(tmp_path):
    # No val_ keys: the default monitor val_loss falls back to loss; three quantities -> three panels.
    history = {"loss": [1.0, 0.6, 0.5, 0.55], "accuracy": [0.5, 0.7, 0.8, 0.8], "learning_rate": [1e-3] * 4}
    assert_picture(plots.plot_curves(history, tmp_path / "c.png"), (4.5 * 3, 3.4 + 0.6))
    one_epoch = {"loss": [0.9], "val_loss": [1.1]}
    assert_picture(plots.plot_curves(one_epoch, tmp_path / "one.png", monitor="val_accuracy"), (4.5, 4.0))


@pytest.mark.parametrize(
    "history, message",
    [
        ({}, "history must be a non-empty dict of name -> per-epoch values, got {}"),
        ({"loss": []}, "history has no epochs: every quantity is an empty list"),
        ({"loss": ["a"]}, "history['loss'] must be a list of numbers, got ['a']"),
    ],
)
def test_curves_errors(history, message, tmp_path):
    with pytest.raises(DataError) as info:
        plots.plot_curves(history, tmp_path / "c.png")
    assert str(info.value) == message


def test_confusion(picture_case, tmp_path):
    _, _, names = picture_case
    rng = np.random.default_rng(1)
    cm = rng.integers(0, 15, (10, 10)) + np.diag(rng.integers(40, 90, 10))
    out = plots.plot_confusion(cm, names, tmp_path / "cm.png")
    side = 0.42 * 10 + 2.0
    assert_picture(out, (2 * side + 1.5, side + 1.6))


def test_confusion_many_classes_and_unknown_names(tmp_path):
    cm = np.random.default_rng(2).integers(0, 5, (30, 30))  # > 20 classes: no cell numbers, still drawn
    assert_picture(plots.plot_confusion(cm, None, tmp_path / "cm30.png"), (2 * 12.0 + 1.5, 12.0 + 1.6))
    assert_picture(plots.plot_confusion(np.zeros((3, 3), int), ["a", "b", "c"], tmp_path / "empty.png"))


def test_confusion_errors(tmp_path):
    with pytest.raises(DataError) as info:
        plots.plot_confusion(np.zeros((10, 10)), DIGITS[:9], tmp_path / "cm.png")
    assert str(info.value) == "confusion matrix is 10×10 but 9 class names were given"
    with pytest.raises(DataError) as info:
        plots.plot_confusion(np.zeros((3, 4)), None, tmp_path / "cm.png")
    assert str(info.value) == "confusion matrix must be square (K, K), got shape (3, 4)"


@pytest.mark.slow  # the model's own predictions: builds a Keras model
def test_misclassified(case, tmp_path):
    name, model, image, names = case
    rng = np.random.default_rng(3)
    images = np.clip(image[None] + rng.normal(0, 0.3, (40, *image.shape)), 0, 1).astype(np.float32)
    probs = np.asarray(model(images, training=False))
    y_pred, confidence = probs.argmax(axis=1), probs.max(axis=1)
    y_true = (y_pred + 1) % 10  # every prediction wrong, so the grid is full
    if name == "cifar":
        images = (images * 255).astype(np.uint8)  # uint8 input is accepted as well as float
    out = plots.plot_misclassified(images, y_true, y_pred, confidence, names, tmp_path / "mis.png", n=16)
    assert_picture(out, (1.9 * 4, 2.15 * 4 + 0.7))


def test_misclassified_without_mistakes_is_a_placeholder(tmp_path):
    images = np.zeros((5, 28, 28, 1), np.float32)
    labels = np.arange(5)
    out = plots.plot_misclassified(images, labels, labels, np.ones(5), DIGITS, tmp_path / "none.png")
    assert_picture(out, (6.0, 3.0))


def test_misclassified_length_mismatch(tmp_path):
    with pytest.raises(DataError) as info:
        plots.plot_misclassified(np.zeros((4, 8, 8, 1)), [0] * 3, [1] * 4, [0.5] * 4, None, tmp_path / "m.png")
    assert str(info.value) == "y_true has 3 entries but there are 4 images"


@pytest.mark.slow  # builds Keras models
def test_filters(case, tmp_path):
    name, model, _, _ = case
    layer_name, kernel = probe.conv_kernel(model, 0)
    assert layer_name == "conv_a" and kernel.shape == (3, 3, CASES[name][0][-1], 8)
    # 8 filters -> a 4-wide grid of 1.15-inch tiles, at least 5.5 inches wide for the title
    out = plots.plot_filters(kernel, tmp_path / "f0.png", title=f"{layer_name} (layer 0)")
    assert_picture(out, (5.5, 1.15 * 2 + 0.9))
    _, deeper = probe.conv_kernel(model, 2)  # 8 input channels: mean over them, grey
    assert_picture(plots.plot_filters(deeper, tmp_path / "f2.png", title="conv_b"), (5.5, 1.15 * 4 + 0.9))


@pytest.mark.parametrize(
    "shape, size",
    [
        ((3, 3, 3, 64), (8 * 1.15, 8 * 1.15 + 0.9)),  # colour patches, 8 columns
        ((5, 5, 1, 100), (8 * 1.15, 8 * 1.15 + 0.9)),  # capped at max_filters=64
        ((7, 1, 16), (4 * 1.5, 4 * 1.5 + 0.9)),  # 1-D kernels as bars
        ((3, 3, 3, 2, 6), (5.5, 2 * 1.15 + 0.9)),  # 3-D kernels: middle depth slice
    ],
)
@pytest.mark.slow  # builds Keras models
def test_filters_other_ranks(shape, size, tmp_path):
    kernel = np.random.default_rng(4).normal(size=shape)
    assert_picture(plots.plot_filters(kernel, tmp_path / "f.png", title="k"), size)


@pytest.mark.slow  # builds Keras models
def test_feature_maps(case, tmp_path):
    name, model, image, _ = case
    maps = probe.feature_maps(model, image)
    assert [n for n, _ in maps] == ["conv_a", "pool_a", "conv_b", "pool_b"]
    h = CASES[name][0][0]
    assert maps[0][1].shape == (h - 2, h - 2, 8)
    out = plots.plot_feature_maps(image, maps, tmp_path / "fm.png", max_channels=16)
    # 8 columns; blocks of 8 and 16 channels take 1 and 2 rows of tiles
    heights = 0.5 + 2.3 + 2 * (0.45 + 1.25) + 2 * (0.45 + 2 * 1.25)
    assert_picture(out, (8 * 1.25 + 0.4, heights))


@pytest.mark.slow  # builds Keras models
def test_feature_maps_of_sequences_and_volumes(tmp_path):
    rng = np.random.default_rng(5)
    maps = [("conv1d", rng.random((1, 40, 6))), ("conv3d", rng.random((4, 10, 10, 3)))]
    out = plots.plot_feature_maps(rng.random((28, 28)), maps, tmp_path / "fm.png", max_channels=4)
    assert_picture(out, (6.0, 0.5 + 2.3 + 2 * (0.45 + 1.25)))


# Keras' own saver trips NumPy 2's copy-keyword DeprecationWarning; nothing of ours to fix.
@pytest.mark.slow  # builds Keras models
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_feature_maps_from_a_model_loaded_from_a_keras_file(case, tmp_path):
    _, model, image, _ = case
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    for (n1, a1), (n2, a2) in zip(probe.feature_maps(model, image), probe.feature_maps(loaded, image)):
        assert n1 == n2
        np.testing.assert_allclose(a1, a2, atol=1e-6)


@pytest.mark.slow  # draws Keras' own model summary: builds a Keras model
def test_architecture(case, tmp_path):
    name, model, _, _ = case
    summary = _summary(model, CASES[name][0])
    out = plots.plot_architecture(summary, tmp_path / "arch.png")
    grey = assert_picture(out)
    assert grey.shape[1] >= px(7.0) and grey.shape[1] <= px(17.0 + 0.7)


def _deep_summary(n_layers: int) -> dict:
    layers, size, channels = [], 224, 3
    for i in range(n_layers - 3):
        if i % 4 == 3:
            size = max(size // 2, 1)
            layers.append({"type": "MaxPooling2D", "output_shape": [size, size, channels], "params": 0})
        else:
            channels = min(channels * 2, 1024) if i % 4 == 0 else channels
            layers.append(
                {
                    "type": "Conv2D",
                    "output_shape": [size, size, channels],
                    "params": 9 * channels**2,
                    "receptive_field": 3 + 2 * i,
                }
            )
    layers += [
        {"type": "GlobalAveragePooling2D", "output_shape": [channels], "params": 0},
        {"type": "Dropout", "output_shape": [channels], "params": 0},
        {"type": "Dense", "output_shape": [1000], "params": channels * 1000 + 1000},
    ]
    return {
        "name": "deep",
        "input_shape": [224, 224, 3],
        "layers": layers,
        "total_params": sum(layer["params"] for layer in layers),
        "total_macs": 3.2e9,
    }


SHAPED_SUMMARIES = {
    "conv1d": {
        "name": "seq",
        "input_shape": [10, 32],
        "total_params": 12417,
        "layers": [
            {"type": "Conv1D", "output_shape": [10, 64], "params": 6208},
            {"type": "GlobalMaxPooling1D", "output_shape": [64], "params": 0},
            {"type": "Dense", "output_shape": [1], "params": 65},
        ],
    },
    "conv3d": {
        "name": "video",
        "input_shape": [16, 32, 32, 1],
        "total_params": 25426,
        "layers": [
            {"type": "Conv3D", "output_shape": [14, 30, 30, 8], "params": 224},
            {"type": "MaxPooling3D", "output_shape": [7, 15, 15, 8], "params": 0},
            {"type": "Flatten", "output_shape": [12600], "params": 0},
            {"type": "Dense", "output_shape": [2], "params": 25202},
        ],
    },
    "unknown_dims": {
        "name": "any-size",
        "input_shape": [None, None, 3],
        "layers": [
            {"type": "Conv2D", "output_shape": [None, None, 16], "params": 448},
            {"type": "GlobalAveragePooling2D", "output_shape": [16], "params": 0},
            {"type": "SomethingNew", "output_shape": [16], "params": None},
        ],
    },
    "deep40": _deep_summary(40),
}


@pytest.mark.parametrize("key", list(SHAPED_SUMMARIES))
def test_architecture_shapes_and_speed(key, tmp_path):
    summary = json.loads(json.dumps(SHAPED_SUMMARIES[key]))  # what another module would hand over: plain JSON
    plots.plot_architecture(summary, tmp_path / "warm.png")  # first call pays for font loading
    start = time.perf_counter()
    out = plots.plot_architecture(summary, tmp_path / "arch.png")
    elapsed = time.perf_counter() - start
    grey = assert_picture(out)
    assert elapsed < 1.0, f"{key} took {elapsed:.2f} s"
    assert grey.shape[1] <= px(17.0 + 0.7)  # long networks wrap to new rows instead of growing wider
    if key == "deep40":
        assert grey.shape[0] > 3 * px(1.5)


def test_architecture_rejects_a_malformed_summary(tmp_path):
    with pytest.raises(CnnkitError) as info:
        plots.plot_architecture({"name": "x", "layers": [{"type": "Dense"}]}, tmp_path / "a.png")
    assert str(info.value) == ("summary layer 0 must be a dict with 'type' and 'output_shape', got {'type': 'Dense'}")


def test_kernel_playground(picture_case, tmp_path):
    _, image, _ = picture_case
    grey = image.mean(axis=-1)
    names = ["sobel_x", "sobel_y", "laplacian", "gaussian_blur", "notes_x", "sharpen"]
    results = [(n, conv2d(grey, KERNELS[n], padding="same")) for n in names]
    out = plots.plot_kernel_playground(grey, results, tmp_path / "play.png", kernels=KERNELS)
    head = 0.35 + 0.12 * 3
    assert_picture(out, (2.6 * 5, (2.6 + head) * 2 + 0.6))


# ------------------------------------------------------------------------------------------ probe errors
@pytest.mark.slow  # builds Keras models
def test_conv_layer_indices(case):
    _, model, _, _ = case
    assert probe.conv_layer_indices(model) == [0, 2]


@pytest.mark.slow  # builds Keras models
@pytest.mark.parametrize("index", [6, 9, -1])
def test_conv_kernel_index_out_of_range(case, index):
    _, model, _, _ = case
    with pytest.raises(CnnkitError) as info:
        probe.conv_kernel(model, index)
    assert str(info.value) == f"layer index {index} is out of range: the model has 6 layers (0..5)"


@pytest.mark.slow  # builds Keras models
def test_conv_kernel_of_a_non_conv_layer(case):
    _, model, _, _ = case
    with pytest.raises(CnnkitError) as info:
        probe.conv_kernel(model, 4)
    assert str(info.value) == "layer 4 (flatten) has no convolution kernel; conv layers: 0, 2"


@pytest.mark.slow  # builds Keras models
def test_feature_maps_wrong_image_shape():
    model = _build("mnist")
    with pytest.raises(DataError) as info:
        probe.feature_maps(model, np.zeros((32, 32, 3), np.float32))
    assert str(info.value) == "image is 32×32×3 but the model expects 28×28×1"
    # a (H, W) image is fine for a one-channel model
    assert len(probe.feature_maps(model, np.zeros((28, 28), np.float32))) == 4


@pytest.mark.slow  # builds Keras models
def test_conv_kernel_of_a_transposed_conv_is_in_out_ordered():
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2DTranspose(5, 3, name="up")])
    _, kernel = probe.conv_kernel(model, 0)
    assert kernel.shape == (3, 3, 3, 5)


# ----------------------------------------------------------------------------------------- import hygiene
def test_pictures_and_kernels_never_import_tensorflow(tmp_path):
    # Drawing runs in the CLI's fast paths (summary, kernels); pulling in TensorFlow would add seconds.
    code = f"""
import sys, numpy as np
import cnnkit.viz.plots as plots, cnnkit.viz.kernels as kernels, cnnkit.viz.probe
img = np.random.default_rng(0).random((12, 12))
plots.plot_kernel_playground(img, [("sobel_x", kernels.conv2d(img, kernels.get_kernel("sobel_x")))],
                             r"{tmp_path / "p.png"}", kernels=kernels.KERNELS)
plots.plot_architecture({{"name": "n", "input_shape": [8, 8, 1], "layers": [
    {{"type": "Conv2D", "output_shape": [6, 6, 4], "params": 40}}]}}, r"{tmp_path / "a.png"}")
plots.plot_curves({{"loss": [1.0, 0.5]}}, r"{tmp_path / "c.png"}")
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "jax", "torch"))
print(",".join(heavy))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


@pytest.mark.slow  # 13 configs drawn twice each; test_architecture_shapes_and_speed keeps the edit loop's check
@pytest.mark.parametrize("config", sorted(p.name for p in (Path(__file__).parent.parent / "configs").glob("*.yaml")))
def test_architecture_of_every_config(config, tmp_path):
    # The real summary dicts (spec -> summarize, no TensorFlow) for every shipped example, each well under 1 s.
    from cnnkit.spec.parse import load_spec

    summary = load_spec(Path(__file__).parent.parent / "configs" / config).summary.to_dict()
    plots.plot_architecture(summary, tmp_path / "warm.png")
    start = time.perf_counter()
    out = plots.plot_architecture(summary, tmp_path / "arch.png")
    assert time.perf_counter() - start < 1.0
    assert_picture(out)

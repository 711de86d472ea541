"""cnnkit.viz.plots and cnnkit.viz.probe: every picture, for an MNIST-like and a CIFAR-like model.

Each picture is checked the same way: a PNG exists at the path returned, its pixel size is the documented
figsize × DPI, and it is not blank (grey-level spread above a floor). Models are tiny and untrained: the random
initial weights are enough to draw kernels and feature maps.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnkit.errors import CnnkitError, DataError
from cnnkit.viz import (
    architecture,
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
    assert_picture(out, (2 * side + 1.5, side + 1.0))


def test_confusion_many_classes_and_unknown_names(tmp_path):
    cm = np.random.default_rng(2).integers(0, 5, (30, 30))  # > 20 classes: no cell numbers, still drawn
    assert_picture(plots.plot_confusion(cm, None, tmp_path / "cm30.png"), (2 * 12.0 + 1.5, 12.0 + 1.0))
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
    assert_picture(out, (5.5, 1.15 * 2 + 0.9 + 0.55))  # + the colour bar
    _, deeper = probe.conv_kernel(model, 2)  # 8 input channels: mean over them, grey
    assert_picture(plots.plot_filters(deeper, tmp_path / "f2.png", title="conv_b"), (5.5, 1.15 * 4 + 0.9 + 0.55))


@pytest.mark.parametrize(
    "shape, size",
    [
        ((3, 3, 3, 64), (8 * 1.15, 8 * 1.15 + 0.9 + 0.55)),  # colour patches, 8 columns, + the colour bar
        ((5, 5, 1, 100), (8 * 1.15, 8 * 1.15 + 0.9 + 0.55)),  # capped at max_filters=64
        ((7, 1, 16), (4 * 1.5, 4 * 1.5 + 0.9)),  # 1-D kernels as bars (blue > 0, red < 0: no colour bar)
        ((3, 3, 3, 2, 6), (5.5, 2 * 1.15 + 0.9 + 0.55)),  # 3-D kernels: middle depth slice
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


# Keras' own saver trips NumPy 2's copy-keyword DeprecationWarning: filtered for Keras' module in pyproject.toml.
@pytest.mark.slow  # builds Keras models
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
    out = architecture.plot_architecture(summary, tmp_path / "arch.png")
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
def test_architecture_shapes(key, tmp_path):
    summary = json.loads(json.dumps(SHAPED_SUMMARIES[key]))  # what another module would hand over: plain JSON
    architecture.plot_architecture(summary, tmp_path / "warm.png")  # first call pays for font loading
    out = architecture.plot_architecture(summary, tmp_path / "arch.png")  # its speed: bench/pictures_speed.py
    grey = assert_picture(out)
    assert grey.shape[1] <= px(17.0 + 0.7)  # long networks wrap to new rows instead of growing wider
    if key == "deep40":
        assert grey.shape[0] > 3 * px(1.5)


def test_architecture_rejects_a_malformed_summary(tmp_path):
    with pytest.raises(CnnkitError) as info:
        architecture.plot_architecture({"name": "x", "layers": [{"type": "Dense"}]}, tmp_path / "a.png")
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
import cnnkit.viz.plots as plots, cnnkit.viz.kernels as kernels, cnnkit.viz.probe, cnnkit.viz.architecture as architecture
img = np.random.default_rng(0).random((12, 12))
plots.plot_kernel_playground(img, [("sobel_x", kernels.conv2d(img, kernels.get_kernel("sobel_x")))],
                             r"{tmp_path / "p.png"}", kernels=kernels.KERNELS)
architecture.plot_architecture({{"name": "n", "input_shape": [8, 8, 1], "layers": [
    {{"type": "Conv2D", "output_shape": [6, 6, 4], "params": 40}}]}}, r"{tmp_path / "a.png"}")
plots.plot_curves({{"loss": [1.0, 0.5]}}, r"{tmp_path / "c.png"}")
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "jax", "torch"))
print(",".join(heavy))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


@pytest.mark.slow  # 13 configs; test_architecture_shapes keeps the edit loop's check
@pytest.mark.parametrize("config", sorted(p.name for p in (Path(__file__).parent.parent / "configs").glob("*.yaml")))
def test_architecture_of_every_config(config, tmp_path):
    # The real summary dicts (spec -> summarize, no TensorFlow) for every shipped example.
    from cnnkit.spec.parse import load_spec

    summary = load_spec(Path(__file__).parent.parent / "configs" / config).summary.to_dict()
    out = architecture.plot_architecture(summary, tmp_path / "arch.png")
    assert_picture(out)


# ------------------------------------------------------------------------------- every text inside the picture
@pytest.fixture
def drawn(monkeypatch):
    """The matplotlib Figures the plot functions save, in order (to measure where their texts landed)."""
    figures = []
    save = plots._save

    def keep(fig, out_path):
        figures.append(fig)
        return save(fig, out_path)

    monkeypatch.setattr(plots, "_save", keep)
    monkeypatch.setattr(plots, "_release", lambda fig: None)  # the figures are measured after their save
    return figures


def test_a_saved_figure_lets_go_of_its_pixels(tmp_path):
    """_save frees the figure's pixel buffer at once, not when the cyclic garbage collector next runs: the pictures
    of a run would otherwise pile up in the memory of `cnnkit train`."""
    fig = plots._new_figure(4, 3)
    fig.subplots(1, 2)[0].imshow(np.zeros((8, 8)))
    path = plots._save(fig, tmp_path / "f.png")
    assert Image.open(path).size == (4 * DPI, 3 * DPI)
    assert fig.canvas.renderer is None and fig.axes == []


def _texts(fig):
    """The texts a save draws: visible, non-empty, and no tick label of a tick outside its axis' view (the
    locator makes those too, but matplotlib does not draw them)."""
    from matplotlib.axes import Axes
    from matplotlib.text import Text

    undrawn = set()
    for ax in fig.findobj(Axes):
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not lo - 1e-9 * max(1.0, abs(hi - lo)) <= tick.get_loc() <= hi + 1e-9 * max(1.0, abs(hi - lo)):
                    undrawn |= {id(tick.label1), id(tick.label2)}
    for text in fig.findobj(Text):
        axes = text.axes
        if id(text) in undrawn or not (text.get_visible() and text.get_text().strip()):
            continue
        if axes is None or axes.get_visible():
            yield text


def _renderer(fig):
    """The Agg renderer of `fig`, drawn as savefig draws it (the figures are canvas-less until saved)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
        fig.canvas.draw()
    return fig.canvas.get_renderer()


def assert_no_text_clipped(fig) -> None:
    """Every visible text's bounding box lies inside the figure (after the save, so the layout has run)."""
    renderer = _renderer(fig)
    width, height = fig.bbox.width, fig.bbox.height
    clipped = []
    for text in _texts(fig):
        box = text.get_window_extent(renderer)
        if box.x0 < -0.5 or box.y0 < -0.5 or box.x1 > width + 0.5 or box.y1 > height + 0.5:
            clipped.append(f"{text.get_text()!r} at {box.extents.round(1)} in {width:.0f}×{height:.0f}")
    assert not clipped, clipped


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


COUNTS = [2, 3, 4, 10]  # columns / classes / panels every picture is drawn with


@pytest.mark.parametrize("k", COUNTS)
def test_confusion_keeps_every_text_inside_and_apart(k, drawn, tmp_path):
    cm = np.diag(np.full(k, 400)) + 1  # off-diagonal cells of 1 in ~400: below 1 %, not 0 %
    names = [f"class {i}" for i in range(k)]
    plots.plot_confusion(cm, names, tmp_path / "cm.png")
    (fig,) = drawn
    assert_no_text_clipped(fig)
    left, right = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]  # counts, then recall
    left_bar = min((ax for ax in fig.axes if ax.get_label() == "<colorbar>"), key=lambda ax: ax.get_position().x0)
    texts = [t.get_text() for t in right.texts]
    assert "<1%" in texts and "0%" not in texts
    renderer = _renderer(fig)
    # The right panel's axis label and class names stay clear of the left panel's colour bar.
    bar_box = left_bar.get_tightbbox(renderer)
    for text in [right.yaxis.label, *right.get_yticklabels()]:
        assert not _overlap(text.get_window_extent(renderer), bar_box), text.get_text()
    # No empty band between the title and the panels' titles: at most a third of an inch.
    title_bottom = fig._suptitle.get_window_extent(renderer).y0
    panels_top = max(ax.title.get_window_extent(renderer).y1 for ax in (left, right))
    assert title_bottom - panels_top < DPI / 3


def test_resampling_keeps_blocks_and_blends_between_them():
    a = np.array([[0.0, 1.0], [2.0, 3.0]])
    np.testing.assert_array_equal(plots._resample(a, 4, 4, False), np.repeat(np.repeat(a, 2, 0), 2, 1))
    smooth = plots._resample(a, 4, 4, True)
    np.testing.assert_allclose(smooth[0], [0.0, 0.25, 0.75, 1.0])  # edges held, linear between the centres
    np.testing.assert_allclose(smooth[:, 0], [0.0, 0.5, 1.5, 2.0])
    np.testing.assert_allclose(plots._resample(np.full((3, 5), 0.4), 7, 9, True), 0.4)
    rgb = np.zeros((2, 2, 3))
    rgb[..., 0] = a
    assert plots._resample(rgb, 6, 3, True).shape == (6, 3, 3)


@pytest.mark.parametrize("k", COUNTS)
def test_misclassified_title_fits_at_every_width(k, drawn, tmp_path):
    n = k * k  # a k-column grid
    rng = np.random.default_rng(k)
    images = rng.random((n + 5, 8, 8, 1)).astype(np.float32)
    y_true = np.arange(n + 5) % 10
    plots.plot_misclassified(images, y_true, (y_true + 1) % 10, rng.random(n + 5), DIGITS, tmp_path / "m.png", n=n)
    (fig,) = drawn
    assert len(fig.images) == n and not fig.axes  # painted, not an Axes each (see plots._paint_panel)
    assert_no_text_clipped(fig)
    renderer = _renderer(fig)
    boxes = [text.get_window_extent(renderer) for text in _texts(fig)]
    assert len(boxes) == n + 1  # every image's title, and the picture's
    assert not any(_overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    from matplotlib.transforms import Bbox

    images = [Bbox.from_bounds(im.ox, im.oy, im.get_size()[1], im.get_size()[0]) for im in fig.images]
    assert not any(_overlap(text, image) for text in boxes for image in images)
    assert all(0 <= box.x0 and box.x1 <= fig.bbox.width and 0 <= box.y0 and box.y1 <= fig.bbox.height for box in images)


@pytest.mark.parametrize("k", COUNTS)
def test_filters_have_a_scale_and_keep_texts_inside(k, drawn, tmp_path):
    kernel = np.random.default_rng(k).normal(size=(3, 3, 1, k))
    plots.plot_filters(kernel, tmp_path / "f.png", title=f"layer 0 (conv2d): {k} learned kernels 3×3×1")
    (fig,) = drawn
    assert_no_text_clipped(fig)
    (bar,) = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert [t.get_text() for t in bar.get_xticklabels()] == ["lowest weight", "middle", "highest weight"]
    assert bar.xaxis.label.get_text() == "each filter on its own scale"
    # One image of all the tiles, not one Axes per filter (32 of them made the picture 2 s; now ~0.4 s).
    (tiles,) = [ax for ax in fig.axes if ax.images]
    assert sorted(t.get_text() for t in tiles.texts) == sorted(f"#{f}" for f in range(k))
    assert len(tiles.patches) == k  # a frame per tile: a white kernel pixel stays visible on the white page


@pytest.mark.parametrize("k", COUNTS)
def test_feature_maps_one_axes_per_layer_and_texts_inside(k, drawn, tmp_path):
    rng = np.random.default_rng(k)
    maps = [("conv", rng.random((12, 12, k))), ("pool", rng.random((6, 6, k))), ("wide", rng.random((5, 9, k)))]
    plots.plot_feature_maps(rng.random((14, 14)), maps, tmp_path / "fm.png")
    (fig,) = drawn
    assert_no_text_clipped(fig)
    # One image per layer, not one Axes per channel (Axes cost ~20 ms each: 64 of them made the picture slow).
    from matplotlib.axes import Axes

    assert len(fig.findobj(Axes)) == 1 + len(maps)
    labels = sorted(int(t.get_text()) for t in _texts(fig) if t.get_text().isdigit())
    assert labels == sorted(list(range(k)) * len(maps))


@pytest.mark.parametrize("k", COUNTS)
def test_curves_and_kernels_keep_texts_inside(k, drawn, tmp_path):
    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7]}
    history.update({f"metric_{i}": [0.5, 0.6] for i in range(k - 1)})
    plots.plot_curves(history, tmp_path / "c.png")
    image = np.random.default_rng(k).random((16, 16))
    names = list(KERNELS)[: k - 1]
    plots.plot_kernel_playground(
        image, [(n, conv2d(image, KERNELS[n], padding="same")) for n in names], tmp_path / "k.png", kernels=KERNELS
    )
    for fig in drawn:
        assert_no_text_clipped(fig)


def _architecture_summary(k: int) -> dict:
    layers = [{"type": "Conv2D", "output_shape": [30, 30, 8 * (i + 1)], "params": 100} for i in range(k - 1)]
    layers.append({"type": "Flatten", "output_shape": [7200], "params": 0})
    return {"name": "n", "input_shape": [32, 32, 3], "layers": layers}


@pytest.mark.parametrize("summary", [_architecture_summary(k) for k in COUNTS] + list(SHAPED_SUMMARIES.values()))
def test_architecture_keeps_texts_inside(summary):
    drawing = architecture.layout(summary)
    width, height = drawing.pixels
    clipped = [
        f"{text.text!r} at {[round(v, 1) for v in box]} in {width}×{height}"
        for text, box in drawing.text_boxes()
        if box[0] < -0.5 or box[1] < -0.5 or box[2] > width + 0.5 or box[3] > height + 0.5
    ]
    assert not clipped, clipped


def test_architecture_labels_do_not_overlap_each_other():
    """Slots are as wide as their label (measured with the font), so neighbouring labels never run together."""
    drawing = architecture.layout(SHAPED_SUMMARIES["deep40"])
    labels = [box for text, box in drawing.text_boxes() if text.size == architecture._LABEL_PT]
    for a, b in zip(labels, labels[1:]):
        if abs(a[1] - b[1]) < 1:  # the same row
            assert a[2] <= b[0], (a, b)


def test_architecture_input_block_is_not_drawn_in_the_reshape_colour(tmp_path):
    layers = [
        {"type": "Conv2D", "output_shape": [26, 26, 8], "params": 80},
        {"type": "Flatten", "output_shape": [5408], "params": 0},
        {"type": "Dense", "output_shape": [10], "params": 54090},
    ]
    summary = {"name": "n", "input_shape": [28, 28, 1], "layers": layers}
    fronts = [shape for shape in architecture.layout(summary).shapes if shape.front]  # in layer order
    colours = [np.array(architecture._rgb(shape.fill)) / 255 for shape in fronts[:4]]  # input, Conv2D, Flatten, Dense
    # The input has a colour of its own: it used to be a grey one step from Flatten's "reshape" grey.
    assert all(np.abs(colours[0] - other).max() > 0.2 for other in colours[1:]), colours
    # ...its side face too: white shaded like the other boxes is that grey again.
    shapes = architecture.layout(summary).shapes
    input_side, flatten_front = shapes[shapes.index(fronts[0]) + 2], fronts[2]
    side_rgb, reshape_rgb = (np.array(architecture._rgb(s.fill)) / 255 for s in (input_side, flatten_front))
    assert np.abs(side_rgb - reshape_rgb).max() > 0.15, (input_side.fill, flatten_front.fill)
    # ...and the PNG shows it: the middle of each front face has its colour.
    out = architecture.plot_architecture(summary, tmp_path / "a.png")
    with Image.open(out) as img:
        for shape, colour in zip(fronts[:4], colours):
            (x0, y0), (x1, y1) = shape.points[0], shape.points[2]
            pixel = img.getpixel((round((x0 + x1) / 2 * DPI), round((img.height / DPI - (y0 + y1) / 2) * DPI)))
            assert np.abs(np.array(pixel[:3]) / 255 - colour).max() < 0.02, (shape.fill, pixel)


_HEAVY = ("cnnkit.data", "cnnkit.run", "tensorflow", "keras", "tf_keras", "matplotlib", "numpy")


def _modules_after_plot_architecture(out: Path, prelude: str = "") -> list[str]:
    """Run `cnnkit plot architecture configs/color.yaml` in a fresh interpreter, through the entry point a user
    runs (cnnkit.cli:main), then list which of _HEAVY it loaded (packages by their top-level name)."""
    config = Path(__file__).parent.parent / "configs" / "color.yaml"
    code = (
        f"import sys\n{prelude}\nfrom cnnkit.cli import main\n"
        f"sys.argv = ['cnnkit', 'plot', 'architecture', {str(config)!r}, '--out', {str(out)!r}]\n"
        "try:\n    main()\nexcept SystemExit as leaving:\n    assert not leaving.code, leaving.code\n"
        f"print(sorted({{m if m.startswith('cnnkit') else m.split('.')[0] for m in sys.modules "
        f"if m.startswith({_HEAVY!r})}}))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert out.is_file()
    return eval(proc.stdout.splitlines()[-1])


def test_plot_architecture_imports_neither_tensorflow_nor_matplotlib(tmp_path):
    """`plot architecture` imports only what drawing a spec needs (bench/pictures_speed.py: < 1 s for a fresh
    process; importing matplotlib alone takes most of that, TensorFlow several times it)."""
    assert _modules_after_plot_architecture(tmp_path / "a.png") == []


def test_the_import_check_catches_pyplot(tmp_path):
    """The check has teeth: with an `import matplotlib.pyplot` added on the drawing path, it names matplotlib."""
    prelude = (
        "import cnnkit.viz.architecture as drawing\nrender = drawing.render\n"
        "def render_with_pyplot(d):\n    import matplotlib.pyplot  # noqa\n    return render(d)\n"
        "drawing.render = render_with_pyplot"
    )
    assert _modules_after_plot_architecture(tmp_path / "a.png", prelude) == ["matplotlib", "numpy"]


def test_our_variable_conversions_raise_no_numpy_copy_warning(case):
    """The Keras DeprecationWarning filtered in pyproject.toml is Keras' own: the learning rate read after every
    epoch and the kernels shown as filters are Variables, converted by our code without it."""
    import warnings

    from cnnkit.run.replay import as_float

    _, model, _, _ = case
    optimizer = keras.optimizers.Adam(learning_rate=0.002)
    optimizer.build(model.trainable_variables)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        import keras as real_keras  # as_float asks the module itself whether it is tf-keras

        assert abs(as_float(real_keras, optimizer.learning_rate) - 0.002) < 1e-9
        assert probe.conv_kernel(model, 0)[1].shape[-1] == 8

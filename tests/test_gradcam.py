"""Grad-CAM and saliency: the maths on arrays, the model side on tiny Keras models (RGB, channels_first, Conv1D,
binary), the picture, the CLI, and, trained for real, the quadrant test: a net that tells classes apart by where a
bright patch is must have its Grad-CAM mass in that quadrant."""

from __future__ import annotations

import numpy as np
import pytest
from clitools import cli
from PIL import Image

from cnnkit.errors import CnnkitError, DataError
from cnnkit.viz import gradcam, plots
from cnnkit.viz.heatmaps import plot_explanations

keras = pytest.importorskip("keras")


def assert_png(path, min_std: float = 10.0) -> tuple[int, int]:
    with Image.open(path) as img:
        assert img.format == "PNG"
        grey = np.asarray(img.convert("L"), dtype=np.float64)
        size = img.size
    assert grey.std() > min_std, f"{path.name} looks blank"
    return size


# ------------------------------------------------------------------------------------------------ the maths
def test_grad_cam_is_the_original_when_the_gradient_is_the_same_at_every_position():
    """Behind global average pooling dScore/dA is constant over positions: then the per-position weights are
    exactly Selvaraju et al.'s channel weights (position-averaged gradients)."""
    rng = np.random.default_rng(0)
    acts = rng.uniform(0, 1, (2, 5, 6, 4))
    per_channel = np.array([1.0, -0.3, 0.5, 0.2]).reshape(1, 1, 1, 4) * [[[[1.0]]], [[[0.5]]]]
    grads = np.broadcast_to(per_channel, acts.shape)
    original = np.maximum((grads.mean(axis=(1, 2), keepdims=True) * acts).sum(-1), 0)
    original /= original.reshape(2, -1).max(axis=1)[:, None, None]
    np.testing.assert_allclose(gradcam.grad_cam(acts, grads, -1), original)


def test_grad_cam_channel_axis_and_relu():
    rng = np.random.default_rng(1)
    acts, grads = rng.uniform(0, 1, (3, 4, 4, 5)), rng.normal(size=(3, 4, 4, 5))
    last = gradcam.grad_cam(acts, grads, -1)
    first = gradcam.grad_cam(np.moveaxis(acts, -1, 1), np.moveaxis(grads, -1, 1), 1)
    np.testing.assert_allclose(first, last)
    assert last.min() >= 0 and np.allclose(last.reshape(3, -1).max(axis=1), 1)
    # Only evidence against the class: the map stays empty rather than stretched from nothing.
    assert not gradcam.grad_cam(acts, -np.abs(grads), -1).any()


def test_saliency_takes_the_largest_channel_and_keeps_sequences_whole():
    grads = np.zeros((1, 2, 2, 3))
    grads[0, 0, 1, 2] = -4.0  # a negative gradient counts by its size
    grads[0, 1, 0, 0] = 2.0
    np.testing.assert_allclose(gradcam.saliency(grads, -1)[0], [[0, 1], [0.5, 0]])
    assert gradcam.saliency(np.ones((2, 7, 3)), None).shape == (2, 7, 3)


def test_resize_keeps_constants_and_centres():
    np.testing.assert_allclose(plots.resize_linear(np.full((2, 3), 0.4), (8, 12)), 0.4)
    # one hot cell in the top-left quadrant of a 2×2 map stays in the top-left quadrant of 16×16
    big = plots.resize_linear(np.array([[1.0, 0.0], [0.0, 0.0]]), (16, 16))
    assert big[:8, :8].sum() / big.sum() > 0.7 and big[0, 0] == 1.0
    assert plots.resize_linear(np.array([0.0, 1.0]), (4,)).tolist() == [0.0, 0.25, 0.75, 1.0]


def test_mistakes_most_confident_first_else_least_confident_correct():
    y, pred = np.array([0, 1, 2, 3, 4]), np.array([0, 2, 2, 0, 1])
    conf = np.array([0.9, 0.6, 0.8, 0.95, 0.7])
    chosen, wrong = gradcam.mistakes(y, pred, conf, 2)
    assert wrong and chosen.tolist() == [3, 4]
    chosen, wrong = gradcam.mistakes(y, y, conf, 2)
    assert not wrong and chosen.tolist() == [1, 4]


# ------------------------------------------------------------------------------------------- the model side
def _model(shape, body, classes=3, head="softmax", name="m"):
    keras.utils.set_random_seed(0)
    L = keras.layers
    units = 1 if head == "sigmoid" else classes
    return keras.Sequential([keras.Input(shape), *body, L.Dense(units, activation=head, name="out")], name=name)


def _conv2d(fmt="channels_last"):
    L = keras.layers
    return [
        L.Conv2D(6, 3, padding="same", activation="relu", data_format=fmt, name="c1"),
        L.Conv2D(8, 3, padding="same", activation="relu", data_format=fmt, name="c2"),
        L.GlobalAveragePooling2D(data_format=fmt, name="gap"),
    ]


def test_rgb_model_maps_and_probabilities():
    model = _model((10, 12, 3), _conv2d())
    batch = np.random.default_rng(0).uniform(0, 1, (3, 10, 12, 3)).astype("float32")
    found = gradcam.explain(model, batch, true=np.array([0, 1, 2]))
    expected = np.asarray(model(batch))
    for item, probs in zip(found, expected):
        assert item.image.shape == (10, 12, 3) and item.heat.shape == (10, 12)
        assert 0 <= item.heat.min() and item.heat.max() <= 1
        np.testing.assert_allclose(item.probabilities, probs, rtol=1e-5, atol=1e-6)
        assert item.predicted == int(np.argmax(probs))
        assert (item.heat_true is None) == (item.true == item.predicted)
    assert gradcam.target_layer(model) == 1  # the last conv, c2
    saliency = gradcam.explain(model, batch, method="saliency")
    assert saliency[0].heat.shape == (10, 12) and saliency[0].true is None


@pytest.mark.slow  # imports TensorFlow (or starts a browser): not for make test-fast
def test_channels_first_gives_the_same_maps_as_channels_last():
    """The same weights in (C, H, W) layout: same probabilities, same maps (run under XLA: TF's CPU kernels have
    no NCHW convolution)."""
    last = _model((9, 9, 2), _conv2d())
    first = _model((2, 9, 9), _conv2d("channels_first"))
    first.set_weights(last.get_weights())
    batch = np.random.default_rng(2).uniform(0, 1, (2, 9, 9, 2)).astype("float32")
    a = gradcam.explain(last, batch, true=np.array([1, 2]))
    b = gradcam.explain(first, np.moveaxis(batch, -1, 1), true=np.array([1, 2]))
    assert gradcam.layout(first) == "channels_first" and b[0].image.shape == (9, 9, 2)
    for x, y in zip(a, b):
        np.testing.assert_allclose(y.probabilities, x.probabilities, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(y.heat, x.heat, atol=1e-4)
        np.testing.assert_allclose(y.image, x.image)
    probs = gradcam.probabilities(first, (np.moveaxis(batch, -1, 1) * 255).astype(np.uint8))
    assert probs.shape == (2, 3)


def test_image_files_are_read_in_the_models_layout(tmp_path):
    rgb = np.zeros((6, 9, 3), np.uint8)
    rgb[..., 0], rgb[0, :, 2] = 255, 51  # red everywhere; the top row also a little blue
    Image.fromarray(rgb).save(tmp_path / "red.png")
    first = gradcam.read_for(_model((3, 6, 9), _conv2d("channels_first")), tmp_path / "red.png")
    assert first.shape == (3, 6, 9) and first[0].min() == 1.0 and first[2, 0].max() == 0.2 and first[2, 1:].max() == 0
    last = gradcam.read_for(_model((6, 9, 3), _conv2d()), tmp_path / "red.png")
    np.testing.assert_allclose(np.moveaxis(first, 0, -1), last)


def test_conv1d_gives_a_strip_per_step_and_saliency_per_value():
    L = keras.layers
    model = _model(
        (20, 7),
        [L.Conv1D(4, 3, padding="same", activation="relu", name="c"), L.MaxPooling1D(2), L.Flatten()],
        head="sigmoid",
    )
    batch = np.random.default_rng(3).uniform(0, 1, (2, 20, 7)).astype("float32")
    found = gradcam.explain(model, batch, true=np.array([0, 1]))
    assert found[0].heat.shape == (20,) and found[0].image.shape == (20, 7)
    assert found[0].probabilities.shape == (2,) and np.isclose(found[0].probabilities.sum(), 1)
    assert gradcam.explain(model, batch, method="saliency")[0].heat.shape == (20, 7)


def test_layer_choice_and_refusals():
    L = keras.layers
    model = _model((8, 8, 1), [*_conv2d()[:2], L.Flatten(name="flat")])
    assert gradcam.target_layer(model, "c1") == 0 and gradcam.target_layer(model, "1") == 1
    with pytest.raises(CnnkitError) as caught:
        gradcam.target_layer(model, "nope")
    assert str(caught.value) == "--layer nope: no such layer; expected one of: c1, c2"
    with pytest.raises(CnnkitError) as caught:
        gradcam.target_layer(model, "flat")
    assert (
        str(caught.value)
        == "--layer flat: flat outputs 512, not a map over the input's positions; expected one of: c1, c2"
    )
    dense_only = _model((8, 8, 1), [L.Flatten(), L.Dense(4)])
    with pytest.raises(CnnkitError, match="has no convolution layer for Grad-CAM.*hint: use --method saliency"):
        gradcam.explain(dense_only, np.zeros((1, 8, 8, 1), "float32"))
    assert gradcam.explain(dense_only, np.zeros((1, 8, 8, 1), "float32"), method="saliency")[0].heat.shape == (8, 8)
    with pytest.raises(DataError, match=r"inputs are 4×4×1 but the model expects 8×8×1"):
        gradcam.explain(model, np.zeros((1, 4, 4, 1), "float32"))
    with pytest.raises(CnnkitError, match="--method must be one of gradcam, saliency. Received: 'cam'"):
        gradcam.explain(model, np.zeros((1, 8, 8, 1), "float32"), method="cam")


@pytest.mark.slow  # imports TensorFlow (or starts a browser): not for make test-fast
def test_picture_rows_for_images_and_strips(tmp_path):
    rgb = _model((10, 10, 3), _conv2d())
    batch = np.random.default_rng(4).uniform(0, 1, (3, 10, 10, 3)).astype("float32")
    found = gradcam.explain(rgb, batch, true=np.array([0, 1, 2]), labels=["a.png", "b.png", "c.png"])
    size = assert_png(plot_explanations(found, tmp_path / "g.png", method="gradcam", where="c2", class_names=None))
    columns = 5 if any(e.heat_true is not None for e in found) else 4
    assert size == (round((1.9 * (columns - 1) + 2.5) * 120), round((1.9 * 1.12 * 3 + 0.9) * 120))
    L = keras.layers
    seq = _model((16, 5), [L.Conv1D(3, 3, padding="same", name="c"), L.GlobalAveragePooling1D()])
    found = gradcam.explain(seq, np.random.default_rng(5).uniform(0, 1, (1, 16, 5)).astype("float32"))
    assert_png(plot_explanations(found, tmp_path / "s.png", method="gradcam", where="c", kind="images"))
    with pytest.raises(DataError, match="nothing to explain"):
        plot_explanations([], tmp_path / "e.png", method="gradcam", where="c")


@pytest.mark.parametrize("rows", [1, 3, 8])
def test_picture_laid_out_by_hand_keeps_every_text_inside_and_apart(rows, tmp_path, monkeypatch):
    """The rows are placed in inches (constrained layout cost 1.2 s of 3): no title, class name, tick or percent
    may leave the picture or run into another, with 14-character class names and two-line titles."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from cnnkit.viz import heatmaps

    figures = []
    save = heatmaps._save
    monkeypatch.setattr(heatmaps, "_save", lambda fig, out: figures.append(fig) or save(fig, out))
    monkeypatch.setattr(plots, "_release", lambda fig: None)  # the figure is measured after its save
    rng = np.random.default_rng(rows)
    names = [f"class-name-{i:03d}" for i in range(10)]  # 14 characters, the most the bars show
    found = [
        gradcam.Explanation(
            label=f"test #{1000 + i}",
            image=rng.random((28, 28, 1)).astype("float32"),
            probabilities=rng.dirichlet(np.full(10, 0.3)),
            predicted=3,
            true=5,
            heat=rng.random((7, 7)),
            heat_true=rng.random((7, 7)),
        )
        for i in range(rows)
    ]
    plot_explanations(found, tmp_path / "g.png", method="gradcam", where="conv2d_1", class_names=names, kind="mistakes")
    (fig,) = figures
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.canvas.draw()
    texts = fig.findobj(lambda a: hasattr(a, "get_text") and a.get_visible() and a.get_text().strip())
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
    titles = {
        "top-3 probabilities",
        "Grad-CAM: class-name-003",
        "pred: class-name-003 (",
        "evidence for true: class-na",
    }
    assert all(sum(text.startswith(title) for text, _ in boxes) == rows for title in titles)
    for t, (text, box) in zip(texts, boxes):
        assert box.x0 >= -0.5 and box.y0 >= -0.5 and box.x1 <= fig.bbox.width + 0.5, text
        assert box.y1 <= fig.bbox.height + 0.5, text
        for ax in fig.axes:  # nor over another panel (a title over the row above's pictures)
            if ax is not t.axes:
                panel = ax.bbox
                assert box.x1 <= panel.x0 or panel.x1 <= box.x0 or box.y1 <= panel.y0 or panel.y1 <= box.y0, text
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1 :]:
            apart = box_a.x1 <= box_b.x0 or box_b.x1 <= box_a.x0 or box_a.y1 <= box_b.y0 or box_b.y1 <= box_a.y0
            assert apart, f"{a!r} runs into {b!r}"


def test_image_rows_paint_their_panels_and_keep_only_the_bars_as_axes(tmp_path, monkeypatch):
    """The image panels are painted pixels, not Axes (8 rows of 4 image Axes cost ~1.3 s of the picture's ~2 s): the
    input shows as blocks, the heat in the colour map's colours, and the overlay is the heat over the input."""
    from matplotlib import colormaps

    from cnnkit.viz import heatmaps

    figures = []
    save = heatmaps._save
    monkeypatch.setattr(heatmaps, "_save", lambda fig, out: figures.append(fig) or save(fig, out))
    monkeypatch.setattr(plots, "_release", lambda fig: None)
    heat = np.zeros((4, 4))
    heat[:2, :2] = 1.0  # all the evidence in the top-left quadrant
    found = [
        gradcam.Explanation(f"test #{i}", np.ones((8, 8)), np.array([0.1, 0.9]), 1, 0, heat, heat[::-1]) for i in (1, 2)
    ]
    path = plot_explanations(found, tmp_path / "g.png", method="gradcam", where="c", class_names=["no", "yes"])
    assert len(figures[0].axes) == 2  # one probability chart per row, nothing else
    with Image.open(path) as img:
        pixels = np.asarray(img.convert("RGB"), np.float64) / 255
    width, height = figures[0].get_size_inches()
    boxes = heatmaps._row_boxes(0, 5, width, height)

    def colour(panel: int, fx: float, fy: float) -> np.ndarray:
        """The colour at (fx, fy) of a panel of row 0, as fractions of its side from the top-left."""
        x, y, w, h = (round(v * plots.DPI) for v in boxes[panel])
        return pixels[len(pixels) - (y + h) + round(fy * h), x + round(fx * w)]

    hot, cold = (np.array(colormaps[heatmaps.HEAT_CMAP](v)[:3]) for v in (1.0, 0.0))
    np.testing.assert_allclose(colour(0, 0.5, 0.5), [1, 1, 1], atol=0.01)  # the white input
    np.testing.assert_allclose(colour(1, 0.25, 0.25), hot, atol=0.01)
    np.testing.assert_allclose(colour(1, 0.75, 0.75), cold, atol=0.01)
    np.testing.assert_allclose(colour(2, 0.2, 0.2), 0.5 + 0.5 * hot, atol=0.01)  # HEAT_ALPHA over white
    np.testing.assert_allclose(colour(2, 0.8, 0.8), 0.5 + 0.5 * cold, atol=0.01)
    np.testing.assert_allclose(colour(3, 0.2, 0.8), 0.5 + 0.5 * hot, atol=0.01)  # the true class's map, flipped
    np.testing.assert_allclose(colour(0, 0.0, 0.5), [0, 0, 0], atol=0.01)  # the panel's frame


# --------------------------------------------------------------------------------- trained: the quadrant test
QUADRANT_SPEC = """
name: quadrants
input_shape: [16, 16, 1]
layers:
  - Conv2D: {{filters: 8, kernel_size: 3, padding: same, activation: relu}}
  - MaxPooling2D
  - Conv2D: {{filters: 16, kernel_size: 3, padding: same, activation: relu}}
  - Flatten
  - Dense: {{units: 4, activation: softmax}}
data: {{dataset: npz, path: {path}, validation_split: 0.1}}
train: {{epochs: 3, batch_size: 32}}
"""


def quadrant_images(n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """16×16 noise (0..109); class c has a 4×4 white patch somewhere inside quadrant c (0 TL, 1 TR, 2 BL, 3 BR)."""
    y = rng.integers(0, 4, n)
    x = rng.integers(0, 110, (n, 16, 16, 1)).astype(np.uint8)
    for image, c in zip(x, y):
        top, left = (c // 2) * 8 + rng.integers(0, 5), (c % 2) * 8 + rng.integers(0, 5)
        image[top : top + 4, left : left + 4] = 255
    return x, y


def quadrant_mask(c: int) -> np.ndarray:
    mask = np.zeros((16, 16))
    mask[(c // 2) * 8 : (c // 2) * 8 + 8, (c % 2) * 8 : (c % 2) * 8 + 8] = 1
    return mask


@pytest.fixture(scope="module")
def quadrant_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("quadrants")
    rng = np.random.default_rng(0)
    (x_train, y_train), (x_test, y_test) = quadrant_images(700, rng), quadrant_images(120, rng)
    np.savez(folder / "quad.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    (folder / "spec.yaml").write_text(QUADRANT_SPEC.format(path=folder / "quad.npz"))
    cli("train", folder / "spec.yaml", "--out", folder / "runs", "--no-pictures")
    return (folder / "runs" / "latest").resolve(), x_test, y_test


@pytest.mark.slow
def test_grad_cam_mass_lies_in_the_quadrant_that_decides_the_class(quadrant_run):
    from cnnkit.run.modelfile import load_model

    run, x, y = quadrant_run
    # Trained with --no-pictures: still a report, saying how to draw the pictures.
    page = (run / "report.html").read_text()
    assert "trained with <code>--no-pictures</code>" in page
    assert "completed after" in page and "running" not in page
    model = load_model(run / "model.keras")
    found = gradcam.explain(model, x.astype("float32") / 255, true=y)
    assert np.mean([e.predicted == c for e, c in zip(found, y)]) > 0.9  # the net has learned the task
    mass = np.array([(e.heat * quadrant_mask(c)).sum() / e.heat.sum() for e, c in zip(found, y)])
    for c in range(4):
        assert mass[y == c].mean() >= 0.6, (c, mass[y == c].mean())
    assert np.median(mass) >= 0.6


@pytest.mark.slow
def test_plot_gradcam_cli(quadrant_run, tmp_path):
    run, x, _ = quadrant_run
    result = cli("plot", "gradcam", run, "--index", 0, "--index", 5)
    assert result.output.strip() == f"wrote {run / 'plots' / 'gradcam.png'}"
    assert_png(run / "plots" / "gradcam.png")
    assert_png(cli("plot", "gradcam", run, "--misclassified", 3, "--out", tmp_path / "m.png") and tmp_path / "m.png")
    Image.fromarray(x[0, :, :, 0]).save(tmp_path / "patch.png")
    cli("plot", "gradcam", run, tmp_path / "patch.png", "--method", "saliency", "--out", tmp_path / "s.png")
    assert_png(tmp_path / "s.png")
    from cnnkit.run.modelfile import load_model

    # Keras numbers layer names per process (dense, dense_1, ...): read them from the model, not from a guess.
    names = [layer.name for layer in load_model(run / "model.keras").layers]
    dense = next(name for name in names if name.startswith("dense"))
    maps = [name for name in names if name.startswith(("conv2d", "max_pooling2d"))]
    cli("plot", "gradcam", run, "--index", 1, "--layer", maps[0], "--out", tmp_path / "l.png")
    assert_png(tmp_path / "l.png")
    refusals = {
        ("--index", 0, "--misclassified", 2): "Error: say which inputs to explain with exactly one of: IMAGE files, "
        "--index N (repeatable), --misclassified K; got --index and --misclassified",
        (): "Error: say which inputs to explain with exactly one of: IMAGE files, --index N (repeatable), "
        "--misclassified K; got none",
        ("--index", 500): "Error: test image #500 does not exist: the test split has 120 images (0..119)",
        ("--index", 0, "--method", "cam"): "Error: --method must be one of gradcam, saliency. Received: 'cam'",
        ("--index", 0, "--layer", dense): f"Error: --layer {dense}: {dense} outputs 4, not a map over the input's "
        f"positions; expected one of: {', '.join(maps)}",
    }
    for args, message in refusals.items():
        result = cli("plot", "gradcam", run, *args, ok=False)
        assert (result.exit_code, result.output.strip()) == (2, message)

"""cnnkit.viz.kernels: the hand-made kernel registry, a numpy Conv2D that must equal Keras', and image loading."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnkit.errors import CnnkitError, DataError
from cnnkit.viz import kernels
from cnnkit.viz.kernels import KERNELS, conv2d, get_kernel, load_image

# The kernels the course notes and the OpenCV notebook name; the registry may grow, never lose these.
REQUIRED = (
    "sobel_x",
    "sobel_y",
    "scharr_x",
    "scharr_y",
    "prewitt_x",
    "prewitt_y",
    "laplacian",
    "sharpen",
    "box_blur",
    "gaussian_blur",
    "emboss",
    "outline",
    "horizontal_lines",
    "vertical_lines",
    "identity",
    "notes_x",
)


def test_registry_has_the_notes_kernels():
    assert set(REQUIRED) <= set(KERNELS)
    assert set(kernels.DESCRIPTIONS) == set(KERNELS)


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_every_kernel_is_a_frozen_odd_square(name):
    kernel = KERNELS[name]
    assert kernel.dtype == np.float64 and kernel.ndim == 2
    assert kernel.shape[0] == kernel.shape[1] and kernel.shape[0] % 2 == 1
    assert not kernel.flags.writeable  # shared by the whole process
    copy = get_kernel(name)
    copy[0, 0] = 99.0  # callers get their own writable copy
    assert KERNELS[name][0, 0] != 99.0


@pytest.mark.parametrize("name", ["box_blur", "gaussian_blur", "identity", "sharpen"])
def test_smoothing_kernels_keep_brightness(name):
    # Weights sum to 1, so a flat image stays flat and as bright.
    out = conv2d(np.full((6, 6), 0.4), KERNELS[name])
    np.testing.assert_allclose(out, 0.4)


@pytest.mark.parametrize(
    "name",
    [
        "sobel_x",
        "sobel_y",
        "scharr_x",
        "scharr_y",
        "prewitt_x",
        "prewitt_y",
        "laplacian",
        "outline",
        "horizontal_lines",
        "vertical_lines",
    ],
)
def test_edge_kernels_ignore_flat_regions(name):
    np.testing.assert_allclose(conv2d(np.full((6, 6), 0.7), KERNELS[name]), 0.0, atol=1e-12)


def test_sobel_x_is_positive_where_brightness_rises_to_the_right():
    # Cross-correlation, not flipped: a dark-to-light step from left to right gives a positive response.
    image = np.zeros((5, 6))
    image[:, 3:] = 1.0
    out = conv2d(image, KERNELS["sobel_x"])
    assert out.max() == 4.0 and out.min() == 0.0


def test_notes_worked_example():
    # Notes 003: the 5×5 binary image convolved with the X-shaped kernel; the first cell is the 4 in the slides.
    image = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]], float)
    np.testing.assert_array_equal(conv2d(image, KERNELS["notes_x"]), [[4, 3, 4], [2, 4, 3], [2, 3, 4]])


def test_unknown_kernel_lists_valid_names_and_suggests():
    with pytest.raises(CnnkitError) as info:
        get_kernel("sobelx")
    assert info.value.message == "unknown kernel 'sobelx': expected one of " + ", ".join(sorted(KERNELS))
    assert info.value.hint == "did you mean 'sobel_x' or 'sobel_y'?"  # the one did_you_mean (cnnkit/text.py)


def test_unknown_kernel_without_a_close_match_has_no_hint():
    with pytest.raises(CnnkitError) as info:
        get_kernel("zzz")
    assert info.value.hint is None


# ------------------------------------------------------------------------------------ equality with Keras
@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras")


def _keras_conv(keras, image, kernel, strides, padding):
    layer = keras.layers.Conv2D(1, kernel.shape, strides=strides, padding=padding, use_bias=False)
    layer.build((1, *image.shape, 1))
    layer.set_weights([kernel[:, :, None, None].astype(np.float32)])
    out = layer(image[None, :, :, None].astype(np.float32))
    return keras.ops.convert_to_numpy(out)[0, :, :, 0]


_RNG = np.random.default_rng(7)
_KERNEL_CASES = {
    "sobel_x": KERNELS["sobel_x"],
    "notes_x": KERNELS["notes_x"],
    "random_2x2": _RNG.normal(size=(2, 2)),  # even kernels are where TF's asymmetric padding shows
    "random_5x4": _RNG.normal(size=(5, 4)),
}


@pytest.mark.slow  # imports TensorFlow to run Keras' own Conv2D
@pytest.mark.parametrize("shape", [(7, 7), (8, 8), (9, 6), (10, 11)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("kernel_name", list(_KERNEL_CASES))
@pytest.mark.parametrize("strides", [1, 2, (2, 1), 3])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_conv2d_matches_keras(keras, shape, kernel_name, strides, padding):
    image = np.random.default_rng(sum(shape)).random(shape).astype(np.float32)
    kernel = _KERNEL_CASES[kernel_name]
    ours = conv2d(image, kernel, strides=strides, padding=padding)
    theirs = _keras_conv(keras, image, kernel, strides, padding)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


@pytest.mark.parametrize(
    "size, k, s, padding, expected",
    [
        (28, 3, 1, "valid", 26),
        (28, 3, 2, "valid", 13),
        (28, 5, 1, "same", 28),
        (28, 3, 2, "same", 14),
        (7, 2, 2, "same", 4),
        (7, 3, 2, "valid", 3),
    ],
)
def test_output_size_formulas(size, k, s, padding, expected):
    out = conv2d(np.zeros((size, size)), np.zeros((k, k)), strides=s, padding=padding)
    assert out.shape == (expected, expected)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"padding": "full"}, "invalid padding 'full': expected one of valid, same"),
        ({"strides": 0}, "invalid strides: expected a positive int or a pair of positive ints, got 0"),
        ({"strides": (1, 2, 3)}, "invalid strides: expected a positive int or a pair of positive ints, got (1, 2, 3)"),
    ],
)
def test_conv2d_argument_errors(kwargs, message):
    with pytest.raises(CnnkitError) as info:
        conv2d(np.zeros((5, 5)), np.ones((3, 3)), **kwargs)
    assert str(info.value) == message


def test_conv2d_kernel_larger_than_image():
    with pytest.raises(CnnkitError) as info:
        conv2d(np.zeros((3, 3)), np.ones((5, 5)))
    assert info.value.message == "kernel 5×5 does not fit in a 3×3 image with padding='valid'"


def test_conv2d_rejects_colour_images():
    with pytest.raises(CnnkitError, match=r"^conv2d expects a 2-D \(H, W\) image, got shape \(4, 4, 3\)$"):
        conv2d(np.zeros((4, 4, 3)), np.ones((3, 3)))


# ------------------------------------------------------------------------------------------- load_image
def test_load_image_grey_and_colour(tmp_path):
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[..., 0] = 255
    rgb[2:4, :, 1] = 128
    path = tmp_path / "red.png"
    Image.fromarray(rgb).save(path)

    colour = load_image(path, grayscale=False)
    assert colour.shape == (6, 8, 3) and colour.dtype == np.float32
    np.testing.assert_allclose(colour, rgb / 255.0, atol=1e-6)

    grey = load_image(path)
    assert grey.shape == (6, 8) and 0.0 <= grey.min() and grey.max() <= 1.0


def test_load_image_16_bit_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 4), 32768, np.uint16)).save(path)
    np.testing.assert_allclose(load_image(path), 0.5, atol=1e-3)


def test_load_image_missing_file(tmp_path):
    path = tmp_path / "nope.png"
    with pytest.raises(DataError) as info:
        load_image(path)
    assert str(info.value) == f"cannot load image {path}: the path does not exist"


def test_load_image_unreadable_file(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not a picture")
    with pytest.raises(DataError) as info:
        load_image(path)
    assert str(info.value) == (
        f"cannot load image {path}: expected a PNG/JPEG/BMP/GIF file, got unreadable data (UnidentifiedImageError)"
    )

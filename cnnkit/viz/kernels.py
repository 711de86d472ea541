"""Hand-designed convolution kernels and a numpy Conv2D that matches Keras exactly (no TensorFlow).

This is the "OpenCV notebook" half of the course: users type in a Sobel or the notes' X-shaped kernel, slide it
over an image and see what a single filter does before a network learns its own. `conv2d` follows Keras Conv2D to
the pixel (cross-correlation, TF's `same` padding) so what users see here is what a Conv2D layer with that kernel
would output.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from cnnkit.errors import CnnkitError, DataError
from cnnkit.text import did_you_mean

# name -> (kernel rows, one-line description). Rows are written as a user reads them: row 0 is the top of the
# window. Keras does not flip kernels (cross-correlation), so sobel_x is positive where brightness rises to the right.
_KERNEL_TABLE: dict[str, tuple[list[list[float]], str]] = {
    "identity": ([[0, 0, 0], [0, 1, 0], [0, 0, 0]], "copies the image: the do-nothing filter"),
    "sobel_x": ([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], "horizontal gradient: lights up vertical edges"),
    "sobel_y": ([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], "vertical gradient: lights up horizontal edges"),
    "scharr_x": ([[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]], "Sobel with better rotation symmetry (vertical edges)"),
    "scharr_y": ([[-3, -10, -3], [0, 0, 0], [3, 10, 3]], "Sobel with better rotation symmetry (horizontal edges)"),
    "prewitt_x": ([[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]], "unweighted horizontal gradient (vertical edges)"),
    "prewitt_y": ([[-1, -1, -1], [0, 0, 0], [1, 1, 1]], "unweighted vertical gradient (horizontal edges)"),
    "laplacian": ([[0, 1, 0], [1, -4, 1], [0, 1, 0]], "second derivative: edges in every direction"),
    "outline": ([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], "8-neighbour Laplacian: bright outlines on black"),
    "sharpen": ([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], "identity + edges: boosts high frequencies"),
    "box_blur": ([[1 / 9] * 3] * 3, "mean of the 3x3 neighbourhood: smooths noise"),
    "gaussian_blur": (
        [[1 / 16, 2 / 16, 1 / 16], [2 / 16, 4 / 16, 2 / 16], [1 / 16, 2 / 16, 1 / 16]],
        "weighted mean, centre counts most: a softer blur",
    ),
    "emboss": ([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], "diagonal gradient plus the image: a raised-relief look"),
    "horizontal_lines": ([[-1, -1, -1], [2, 2, 2], [-1, -1, -1]], "bright thin horizontal lines"),
    "vertical_lines": ([[-1, 2, -1], [-1, 2, -1], [-1, 2, -1]], "bright thin vertical lines"),
    # The worked example of notes 003 ("Kernel/Filter, K ="): over its 5x5 binary image it gives [[4,3,4],...].
    "notes_x": ([[1, 0, 1], [0, 1, 0], [1, 0, 1]], "the notes' X-shaped example kernel: responds to diagonal crosses"),
}


def _frozen(rows: list[list[float]]) -> np.ndarray:
    # Read-only so a caller that edits a kernel in place cannot change it for everyone else in the process.
    array = np.array(rows, dtype=np.float64)
    array.setflags(write=False)
    return array


KERNELS: dict[str, np.ndarray] = {name: _frozen(rows) for name, (rows, _) in _KERNEL_TABLE.items()}
DESCRIPTIONS: dict[str, str] = {name: text for name, (_, text) in _KERNEL_TABLE.items()}

PADDINGS = ("valid", "same")


def get_kernel(name: str) -> np.ndarray:
    """The registered kernel `name` as a fresh, writable float64 array."""
    if name not in KERNELS:
        raise CnnkitError(
            f"unknown kernel '{name}': expected one of {', '.join(sorted(KERNELS))}", did_you_mean(name, KERNELS)
        )
    return KERNELS[name].copy()


def _pair(value, what: str) -> tuple[int, int]:
    """Normalise an int or a pair of ints to a pair of positive ints (Keras' standardize_tuple, for rank 2)."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in pair):
        raise CnnkitError(f"invalid {what}: expected a positive int or a pair of positive ints, got {value!r}")
    return int(pair[0]), int(pair[1])


def _same_pads(size: int, k: int, s: int) -> tuple[int, int]:
    # TF's SAME rule: the output has ceil(size/s) positions; whatever padding that needs, the extra pixel (when
    # the total is odd) goes to the bottom/right. Getting this wrong shifts even-sized strided outputs by one.
    total = max((math.ceil(size / s) - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def conv2d(image: np.ndarray, kernel: np.ndarray, *, strides=(1, 1), padding: str = "valid") -> np.ndarray:
    """Slide `kernel` (kh, kw) over `image` (H, W) exactly like keras.layers.Conv2D(1, kernel, use_bias=False).

    Cross-correlation (the kernel is not flipped); `same` zero-pads like TensorFlow; `valid` gives
    floor((H - kh) / s) + 1 rows.
    """
    image = np.asarray(image)
    kernel = np.asarray(kernel)
    if image.ndim != 2:
        raise CnnkitError(f"conv2d expects a 2-D (H, W) image, got shape {image.shape}")
    if kernel.ndim != 2:
        raise CnnkitError(f"conv2d expects a 2-D (kh, kw) kernel, got shape {kernel.shape}")
    if not (np.issubdtype(image.dtype, np.number) and np.issubdtype(kernel.dtype, np.number)):
        raise CnnkitError(f"conv2d expects numeric arrays, got image {image.dtype} and kernel {kernel.dtype}")
    sh, sw = _pair(strides, "strides")
    if padding not in PADDINGS:
        raise CnnkitError(f"invalid padding {padding!r}: expected one of {', '.join(PADDINGS)}")
    (h, w), (kh, kw) = image.shape, kernel.shape
    dtype = np.result_type(image.dtype, kernel.dtype, np.float32)

    if padding == "same":
        top, bottom = _same_pads(h, kh, sh)
        left, right = _same_pads(w, kw, sw)
        image = np.pad(image.astype(dtype, copy=False), ((top, bottom), (left, right)))
    if image.shape[0] < kh or image.shape[1] < kw:
        raise CnnkitError(
            f"kernel {kh}×{kw} does not fit in a {h}×{w} image with padding='valid'",
            "use padding='same' or a smaller kernel",
        )

    windows = np.lib.stride_tricks.sliding_window_view(image, (kh, kw))[::sh, ::sw]
    return np.einsum("ijkl,kl->ij", windows, kernel.astype(dtype, copy=False), dtype=dtype)


def load_image(path, *, grayscale: bool = True) -> np.ndarray:
    """Read an image file as float32 in [0, 1]: (H, W) when grayscale, else (H, W, 3)."""
    from PIL import UnidentifiedImageError  # Pillow is only needed when a file is actually read

    from cnnkit.data.images import open_image  # the one pixel-cap rule for every image cnnkit reads

    path = Path(path)
    if not path.is_file():
        what = "is a directory, not an image file" if path.is_dir() else "does not exist"
        raise DataError(f"cannot load image {path}: the path {what}")
    try:
        with open_image(path) as img:
            img.load()
            if img.mode.startswith("I;16") or img.mode == "I":
                # 16-bit greyscale: Pillow's convert("L") clips instead of scaling, so scale by hand.
                raw = np.asarray(img, dtype=np.float64)
                peak = 65535.0 if img.mode.startswith("I;16") else max(float(raw.max()), 1.0)
                grey = np.clip(raw / peak, 0.0, 1.0).astype(np.float32)
                return grey if grayscale else np.repeat(grey[..., None], 3, axis=-1)
            array = np.asarray(img.convert("L" if grayscale else "RGB"), dtype=np.float32)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(
            f"cannot load image {path}: expected a PNG/JPEG/BMP/GIF file, got unreadable data ({type(exc).__name__})"
        ) from exc
    return array / 255.0

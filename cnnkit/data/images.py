"""Reading image files: the one place that opens a user's image, for every command.

`open_image` applies the pixel cap (limits.MAX_IMAGE_PIXELS) from the header, before a single pixel is
decoded, so a few-kilobyte "decompression bomb" is refused the same way by train (image_folder),
predict, plot feature-maps and plot kernels. `image_for` turns one file into a model's input and says
when the picture had to be resized so much that the prediction is suspect.
"""

from __future__ import annotations

import re
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from cnnkit.data import limits
from cnnkit.errors import DataError

# Pillow warns (DecompressionBombWarning) from 89.5 MP and refuses from 179 MP. cnnkit's own cap is lower,
# so Pillow's warning would only ever precede cnnkit's one-line error: it is silenced for good, process-wide
# (a filter set per call would race the image_folder reader's threads).
warnings.filterwarnings("ignore", message=r"Image size \(\d+ pixels\) exceeds limit")

# A resize beyond this factor (either way, either axis), or an aspect ratio off by more than this
# fraction, is reported by image_for: a 112x112 photo of a 7 shrunk to 8x8 is read as a 4.
RESIZE_WARN_FACTOR = 2.0
ASPECT_WARN_TOLERANCE = 0.05


class ImageTooLarge(DataError):
    """An image whose header declares more pixels than limits.MAX_IMAGE_PIXELS."""

    def __init__(self, path, pixels: int):
        # `reason` without the path, for readers that list several bad files in one line.
        self.reason = (
            f"image has {pixels:,} pixels, more than cnnkit's cap of {limits.MAX_IMAGE_PIXELS:,} "
            "(refused unread: it could be a decompression bomb)"
        )
        super().__init__(f"{path}: {self.reason}", hint="shrink the image first, e.g. to the model's input size")


@contextmanager
def open_image(path):
    """A Pillow image opened lazily (header only) and checked against the pixel cap; decode it with .load().

    Pillow's own errors (missing file, not an image, truncated data) propagate for the caller to word.
    """
    from PIL import Image

    try:
        img = Image.open(path)
    except Image.DecompressionBombError as err:
        # Pillow refuses > 2 x its own limit inside open(), before cnnkit sees the size: take it from its message.
        found = re.search(r"\((\d+) pixels\)", str(err))
        raise ImageTooLarge(path, int(found[1]) if found else 2 * Image.MAX_IMAGE_PIXELS + 1) from None
    with img:
        width, height = img.size
        if width * height > limits.MAX_IMAGE_PIXELS:
            raise ImageTooLarge(path, width * height)
        yield img


@contextmanager
def _user_image(path: Path):
    """open_image with every failure as a one-line DataError naming the file."""
    from PIL import UnidentifiedImageError

    if path.is_dir():
        raise DataError(f"{path}: is a folder, expected an image file")
    try:
        with open_image(path) as img:
            yield img
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: not a readable image ({' '.join(str(err).split())})") from None


def check_image(path) -> None:
    """Refuse a missing, unreadable or oversized image file without decoding its pixels (no model needed).

    Commands call this on every image a user named before they import TensorFlow, so a typo fails at once.
    """
    with _user_image(Path(path)) as img:
        img.verify()


def model_image_size(model, path) -> tuple[int, int, int]:
    """(height, width, channels) of a model's image input; `path` names the image in the error."""
    want = tuple(int(d) for d in model.input_shape[1:])
    if len(want) not in (2, 3):
        raise DataError(f"{path}: the model's input {want} is not an image")
    return want[0], want[1], want[2] if len(want) == 3 else 1


def resize_warning(path, source: tuple[int, int], target: tuple[int, int]) -> str | None:
    """One line saying why a (width, height) picture fed at (width, height) may be misread; None when it fits."""
    (w, h), (tw, th) = source, target
    factor = max(w / tw, tw / w, h / th, th / h)
    aspect, target_aspect = w / h, tw / th
    reasons = []
    if factor > RESIZE_WARN_FACTOR:
        reasons.append(f"{'shrunk' if w * h > tw * th else 'enlarged'} {round(factor, 1):g}×")
    if max(aspect / target_aspect, target_aspect / aspect) > 1 + ASPECT_WARN_TOLERANCE:
        reasons.append(f"aspect ratio {aspect:.2f} stretched to {target_aspect:.2f}")
    if not reasons:
        return None
    return (
        f"{path} is {w}×{h} but the model reads {tw}×{th} ({', '.join(reasons)}); "
        f"the prediction may be wrong: give a picture close to {tw}×{th}"
    )


def image_for(model, path) -> tuple[np.ndarray, str | None]:
    """(the image file as the model's input, a resize warning or None).

    The input is converted to the model's channels, resized to its height x width and scaled to [0, 1].
    """
    from PIL import Image

    path = Path(path)
    height, width, channels = model_image_size(model, path)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(channels)
    if mode is None:
        raise DataError(f"{path}: cannot turn an image into {channels} channels")
    with _user_image(path) as img:
        img.load()
        source = img.size
        img = to_mode(img, mode)
        if img.size != (width, height):
            img = img.resize((width, height), Image.Resampling.BILINEAR)
        array = np.asarray(img, dtype=np.float32) / 255.0
    if len(model.input_shape) == 4 and array.ndim == 2:
        array = array[..., None]
    return array, resize_warning(path, source, (width, height))


def read_image_for(model, path: Path) -> np.ndarray:
    """The image file as the model's input (image_for without the warning)."""
    return image_for(model, path)[0]


def to_mode(img, mode: str):
    """Convert a Pillow image to L/RGB/RGBA without the usual surprises."""
    from PIL import Image

    if img.mode.startswith("I;16") or img.mode == "I":
        # 16-bit grayscale: Pillow's convert("L") clips at 255 instead of scaling.
        arr = np.asarray(img, dtype=np.int64)
        shift = 8 if arr.max(initial=0) > 255 else 0
        img = Image.fromarray((arr >> shift).clip(0, 255).astype(np.uint8))
    elif img.mode in ("P", "PA", "LA") and mode != "L":
        # Palette transparency only survives a conversion through RGBA.
        img = img.convert("RGBA")
    return img if img.mode == mode else img.convert(mode)

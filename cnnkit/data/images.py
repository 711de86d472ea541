"""Reading one image file as a model's input (predict, feature maps, the kernel playground's picture)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnkit.errors import DataError


def read_image_for(model, path: Path) -> np.ndarray:
    """An image file as the model's input: converted to its channels, resized, scaled to [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    want = tuple(int(d) for d in model.input_shape[1:])
    if len(want) != 3 and not (len(want) == 2):
        raise DataError(f"{path}: the model's input {want} is not an image")
    height, width = want[0], want[1]
    channels = want[2] if len(want) == 3 else 1
    mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(channels)
    if mode is None:
        raise DataError(f"{path}: cannot turn an image into {channels} channels")
    try:
        with Image.open(path) as img:
            img = img.convert(mode).resize((width, height), Image.BILINEAR)
            array = np.asarray(img, dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError) as err:
        raise DataError(f"{path}: not a readable image ({err})") from None
    if len(want) == 3 and array.ndim == 2:
        array = array[..., None]
    return array

"""The `image_folder` dataset: one subfolder per class, like keras.utils.image_dataset_from_directory.

Class index = position of the subfolder name in sorted order. Every image is checked before
any training starts, and all unreadable files are reported together: a folder scraped from
the web often has dozens, and fixing them one error at a time is miserable.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from cnnkit.data import limits
from cnnkit.data.images import ImageTooLarge, open_image, to_mode
from cnnkit.data.splits import Splits
from cnnkit.errors import DataError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
COLOR_MODES = {"grayscale": "L", "rgb": "RGB", "rgba": "RGBA"}
CHANNELS_TO_MODE = {1: "grayscale", 3: "rgb", 4: "rgba"}


def class_folders(root: str) -> dict[str, list[str]]:
    """Sorted class name -> sorted image paths under that class folder (recursively)."""
    if not os.path.isdir(root):
        what = "does not exist" if not os.path.exists(root) else "is a file, expected a folder"
        raise DataError(f"{root}: {what}", hint="point data.path at a folder with one subfolder per class")
    # Hidden folders (.ipynb_checkpoints, .git) are tool litter, not classes.
    names = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
    if not names:
        raise DataError(
            f"{root}: no class subfolders",
            hint="put the images of each class in their own subfolder, e.g. "
            f"{os.path.join(root, 'cat')}/, {os.path.join(root, 'dog')}/",
        )
    if len(names) > limits.MAX_CLASSES:
        raise DataError(
            f"{root}: {len(names):,} class subfolders, more than cnnkit's cap of {limits.MAX_CLASSES:,} classes",
            hint="point data.path at the folder whose subfolders are the classes",
        )
    classes = {}
    for name in names:
        files = []
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, name), followlinks=True):
            dirnames.sort()
            files += [os.path.join(dirpath, f) for f in sorted(filenames) if f.lower().endswith(EXTENSIONS)]
        if not files:
            raise DataError(
                f"{os.path.join(root, name)}: class folder has no images ({'/'.join(EXTENSIONS)})",
                hint="add images or remove the folder",
            )
        classes[name] = files
    return classes


def _decode(path: str, size: tuple[int, int], mode: str):
    """(array, None) for a good image, (None, reason) for a bad one."""
    from PIL import Image

    if os.path.getsize(path) == 0:
        return None, "empty file"
    try:
        # verify() checks structure without decoding; load() then decodes the pixels, which is
        # what finds truncated data. verify() leaves the file unusable, hence the reopen.
        # open_image refuses an oversized image from its header, before either.
        with open_image(path) as img:
            img.verify()
        with open_image(path) as img:
            img.load()
            img = to_mode(img, mode)
            if img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            return np.asarray(img, dtype=np.uint8), None
    except ImageTooLarge as err:
        return None, err.reason
    except Image.UnidentifiedImageError:
        # Pillow's own message repeats the path; the error already names it.
        return None, "not an image Pillow can read"
    except (OSError, SyntaxError, ValueError) as err:
        return None, " ".join(str(err).split()) or type(err).__name__


def load_folder(root: str, size: tuple[int, int], mode: str):
    """(x, y, class_names) for one folder, after checking every image in it."""
    from PIL import ImageFile

    classes = class_folders(root)
    jobs = [(path, index) for index, files in enumerate(classes.values()) for path in files]
    pil_mode = COLOR_MODES[mode]
    # A truncated file must count as corrupt even if something else in the process told
    # Pillow to tolerate truncation.
    tolerant, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
    try:
        # Set once here: warning filters are process-global, not per thread. Real problems
        # come back as errors; the warnings are chatter such as "truncated EXIF".
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Pillow releases the GIL while decoding, so threads give a real speed-up.
            with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
                results = list(pool.map(lambda job: _decode(job[0], size, pil_mode), jobs))
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = tolerant
    bad = [f"{path} ({reason})" for (path, _), (_, reason) in zip(jobs, results) if reason]
    if bad:
        raise DataError(
            f"{root}: {len(bad)} unreadable image file{'s' * (len(bad) > 1)}: {', '.join(bad)}",
            hint="delete or replace them, then run again",
        )
    x = np.stack([arr for arr, _ in results])
    if x.ndim == 3:
        x = x[..., np.newaxis]
    y = np.array([index for _, index in jobs], dtype=np.int64)
    return x, y, list(classes)


def load(cfg: dict, ctx) -> Splits:
    root = cfg.get("path")
    if not root:
        raise DataError(
            "data.path: the image_folder dataset needs a folder",
            hint="set data.path to a folder with one subfolder per class",
        )
    size = cfg.get("image_size") or (ctx.input_shape[:2] if ctx.input_shape else None)
    if not size or len(size) != 2:
        raise DataError(
            f"data.image_size: expected [height, width], got {size!r}", hint="set data.image_size, e.g. [64, 64]"
        )
    size = (int(size[0]), int(size[1]))
    mode = cfg.get("color_mode")
    if not mode:
        channels = ctx.input_shape[-1] if ctx.input_shape and len(ctx.input_shape) == 3 else 3
        mode = CHANNELS_TO_MODE.get(channels, "rgb")
    if mode not in COLOR_MODES:
        raise DataError(f"data.color_mode: unknown mode {mode!r}; valid: {', '.join(COLOR_MODES)}")

    x, y, names = load_folder(root, size, mode)
    x_test = y_test = None
    test_root = cfg.get("test_path")
    if test_root:
        x_test, y_test, test_names = load_folder(test_root, size, mode)
        if test_names != names:
            raise DataError(
                f"{test_root}: test classes {test_names} differ from training classes {names} in {root}",
                hint="use the same class subfolder names in both folders",
            )
    return Splits(x, y, None, None, x_test, y_test, class_names=names, source=root)

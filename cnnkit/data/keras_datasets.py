"""mnist, fashion_mnist, cifar10, cifar100: found on disk first, downloaded by Keras last.

Search order: data.path; the data dir (--data-dir / CNNKIT_DATA_DIR); the Keras cache
($KERAS_HOME or ~/.keras, under datasets/); then keras.datasets.<name>.load_data(). Disk
first because the download is the step that fails on offline machines and clusters.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from cnnkit.data.arrays import digit_names
from cnnkit.data.cifar_bin import LAYOUTS as CIFAR_BIN
from cnnkit.data.cifar_bin import load_cifar_bin
from cnnkit.data.idx import has_idx_files, load_idx_folder
from cnnkit.data.npz import npz_splits, read_npz
from cnnkit.data.splits import Splits
from cnnkit.errors import DataError
from cnnkit.text import squeeze

FASHION_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# The fine labels in index order (the order of fine_label_names in the CIFAR-100 meta file).
CIFAR100_NAMES = (
    "apple",
    "aquarium_fish",
    "baby",
    "bear",
    "beaver",
    "bed",
    "bee",
    "beetle",
    "bicycle",
    "bottle",
    "bowl",
    "boy",
    "bridge",
    "bus",
    "butterfly",
    "camel",
    "can",
    "castle",
    "caterpillar",
    "cattle",
    "chair",
    "chimpanzee",
    "clock",
    "cloud",
    "cockroach",
    "couch",
    "crab",
    "crocodile",
    "cup",
    "dinosaur",
    "dolphin",
    "elephant",
    "flatfish",
    "forest",
    "fox",
    "girl",
    "hamster",
    "house",
    "kangaroo",
    "keyboard",
    "lamp",
    "lawn_mower",
    "leopard",
    "lion",
    "lizard",
    "lobster",
    "man",
    "maple_tree",
    "motorcycle",
    "mountain",
    "mouse",
    "mushroom",
    "oak_tree",
    "orange",
    "orchid",
    "otter",
    "palm_tree",
    "pear",
    "pickup_truck",
    "pine_tree",
    "plain",
    "plate",
    "poppy",
    "porcupine",
    "possum",
    "rabbit",
    "raccoon",
    "ray",
    "road",
    "rocket",
    "rose",
    "sea",
    "seal",
    "shark",
    "shrew",
    "skunk",
    "skyscraper",
    "snail",
    "snake",
    "spider",
    "squirrel",
    "streetcar",
    "sunflower",
    "sweet_pepper",
    "table",
    "tank",
    "telephone",
    "television",
    "tiger",
    "tractor",
    "train",
    "trout",
    "tulip",
    "turtle",
    "wardrobe",
    "whale",
    "willow_tree",
    "wolf",
    "woman",
    "worm",
)

_TIMEOUT_S = 10  # offline, a download should fail in seconds, not hang


@dataclass(frozen=True)
class KerasDataset:
    """Where one dataset may lie in a folder, in the order the folder is searched."""

    class_names: tuple[str, ...]
    npz_names: tuple[str, ...]  # .npz with x_train, y_train, x_test, y_test
    idx_dirs: tuple[str, ...] = ()  # folders of IDX files; "" is the folder itself
    keras_dir: str | None = None  # what Keras' own load_data() leaves in its cache
    provide: str = ""  # how to provide it, for the not-found hint


KERAS_DATASETS = {
    "mnist": KerasDataset(
        tuple(digit_names(10)), ("mnist.npz",), ("mnist-idx", ""), provide="mnist.npz (or the 4 MNIST *-ubyte.gz files)"
    ),
    "fashion_mnist": KerasDataset(
        FASHION_NAMES,
        ("fashion_mnist.npz", "fashion-mnist.npz"),
        # "fashion-mnist" is the folder Keras downloads the IDX files into.
        ("fashion_mnist-idx", "fashion-mnist", ""),
        provide="fashion_mnist.npz (or the 4 Fashion-MNIST *-ubyte.gz files)",
    ),
    "cifar10": KerasDataset(
        CIFAR10_NAMES,
        ("cifar10.npz",),
        keras_dir="cifar-10-batches-py-target",
        provide="cifar10.npz or the cifar-10-batches-bin folder",
    ),
    "cifar100": KerasDataset(
        CIFAR100_NAMES,
        ("cifar100.npz",),
        keras_dir="cifar-100-python-target",
        provide="cifar100.npz or the cifar-100-binary folder",
    ),
}


def keras_cache_dir() -> str:
    """Keras' download cache, by Keras' own rule (KERAS_HOME, else ~/.keras, else /tmp/.keras)."""
    home = os.environ.get("KERAS_HOME")
    if not home:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    return os.path.join(home, "datasets")


def _candidates(name: str, folder: str, in_cache: bool) -> list[tuple[str, str, str]]:
    """(shown in messages, kind, path) for every place in `folder` that may hold `name`."""
    spec = KERAS_DATASETS[name]
    out = [(os.path.join(folder, f), "npz", os.path.join(folder, f)) for f in spec.npz_names]
    for sub in spec.idx_dirs:
        path = os.path.join(folder, sub) if sub else folder
        out.append((os.path.join(path, "*-ubyte.gz"), "idx", path))
    if name in CIFAR_BIN:
        path = os.path.join(folder, CIFAR_BIN[name][0])
        out.append((path + os.sep, "bin", path))
    if in_cache and spec.keras_dir:
        path = os.path.join(folder, spec.keras_dir)
        out.append((path + os.sep, "keras", path))
    return out


def _present(kind: str, path: str) -> bool:
    if kind == "npz":
        return os.path.isfile(path)
    if kind == "idx":
        return os.path.isdir(path) and has_idx_files(path)
    if kind == "keras":
        # Keras 3 keeps the archive next to the extracted folder and re-reads from there.
        return os.path.isdir(path) or os.path.isfile(path + "_archive")
    return os.path.isdir(path)


def _keras_load(name: str):
    """keras.datasets.<name>.load_data(): reads Keras' cache, or downloads into it."""
    from cnnkit.backend import keras as _keras

    keras = _keras()  # lazy: importing Keras imports TensorFlow

    load_data = getattr(keras.datasets, name).load_data
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_TIMEOUT_S)
    try:
        return load_data()
    finally:
        socket.setdefaulttimeout(previous)


def _read(name: str, kind: str, path: str) -> dict:
    keys = ("x_train", "y_train", "x_test", "y_test")
    if kind == "npz":
        return read_npz(path, keys)
    if kind == "idx":
        return dict(zip(keys, load_idx_folder(path)))
    if kind == "bin":
        return dict(zip(keys, load_cifar_bin(name, path)))
    try:
        (x_train, y_train), (x_test, y_test) = _keras_load(name)
    except Exception as err:  # Keras raises bare Exception for fetch failures
        raise DataError(
            f"{path}: Keras could not read its cached {name} ({_one_line(err)})",
            hint="delete that folder so Keras downloads it again",
        ) from None
    return dict(zip(keys, (x_train, y_train, x_test, y_test)))


def _one_line(err: Exception) -> str:
    return f"{type(err).__name__}: {squeeze(str(err)) or 'no message'}"


def _splits(name: str, arrays: dict, source: str) -> Splits:
    # input_shape=None: these are always images, so (N, 28, 28) always gains a channel axis.
    return npz_splits(source, arrays, None, list(KERAS_DATASETS[name].class_names))


def load_named(name: str, cfg: dict, ctx) -> Splits:
    path = cfg.get("path")
    if path:
        return _load_explicit(name, path)
    searched = []
    folders = [(ctx.data_dir, False)] if ctx.data_dir else []
    folders.append((keras_cache_dir(), True))
    for folder, in_cache in folders:
        if not os.path.isdir(folder):
            searched.append(f"{folder} (no such folder)")
            continue
        for shown, kind, where in _candidates(name, folder, in_cache):
            searched.append(shown)
            if _present(kind, where):
                return _splits(name, _read(name, kind, where), where)
    try:
        (x_train, y_train), (x_test, y_test) = _keras_load(name)
    except Exception as err:  # offline: URL fetch failure, DNS error, timeout, ...
        no_dir = "" if ctx.data_dir else "no data dir set (--data-dir / CNNKIT_DATA_DIR), "
        raise DataError(
            f"dataset '{name}' not found: searched {no_dir}{', '.join(searched)}; then "
            f"keras.datasets.{name}.load_data() failed ({_one_line(err)})",
            hint=f"put {KERAS_DATASETS[name].provide} in one of those folders, or pass "
            f"--data-dir DIR (or set CNNKIT_DATA_DIR)",
        ) from None
    arrays = dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return _splits(name, arrays, f"keras.datasets.{name}.load_data()")


def _load_explicit(name: str, path: str) -> Splits:
    """data.path names the file (an .npz) or a folder holding one of the known layouts."""
    if not os.path.exists(path):
        raise DataError(
            f"data.path: {path} does not exist",
            hint=f"point it at {KERAS_DATASETS[name].provide}, or remove it to search the data dir and the Keras cache",
        )
    if not os.path.isdir(path):
        return _splits(name, _read(name, "npz", path), path)
    candidates = _candidates(name, path, in_cache=False)
    for _, kind, where in candidates:
        if _present(kind, where):
            return _splits(name, _read(name, kind, where), where)
    raise DataError(
        f"data.path: {path} holds no {name} data; looked for {', '.join(shown for shown, _, _ in candidates)}",
        hint=f"put {KERAS_DATASETS[name].provide} there",
    )


def loader(name: str):
    """The registry entry's loader for one of these datasets."""
    return lambda cfg, ctx: load_named(name, cfg, ctx)

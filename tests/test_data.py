"""cnnkit.data: the dataset registry, every source's errors, and the tf.data pipeline.

Fixtures are generated in tmp dirs at test time; real MNIST/Fashion-MNIST come from
CNNKIT_DATA_DIR (the Makefile points it at ../shared/data) and those tests skip without it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from cnnkit.data import LOADERS, Splits, keras_datasets, load_splits
from cnnkit.data.splits import carve
from cnnkit.errors import DataError
from cnnkit.spec.datasets import DATASETS

DATA_DIR = os.environ.get("CNNKIT_DATA_DIR")


def _need_data(*names: str) -> str:
    if not DATA_DIR:
        pytest.skip("CNNKIT_DATA_DIR not set: point it at ../shared/data (make test does)")
    for name in names:
        if not os.path.exists(os.path.join(DATA_DIR, name)):
            pytest.skip(f"{name} not in CNNKIT_DATA_DIR={DATA_DIR}")
    return DATA_DIR


def _err(cfg: dict, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        load_splits(cfg, **kwargs)
    message = str(info.value)
    assert "\n" not in message  # every DataError is one line
    return message


# --- fixture makers: one per registry entry, so a new dataset without a test fails ---------


def _write_cifar_bin(folder, name: str, per_file: int = 3) -> None:
    """A tiny, well-formed binary CIFAR folder (the real format, fake content)."""
    layout = keras_datasets.CIFAR_BIN[name]
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, f in enumerate(layout[1] + layout[2]):
        labels = (np.arange(per_file) + i) % (10 if name == "cifar10" else 100)
        head = labels[:, None].repeat(layout[3], axis=1)
        pixels = rng.integers(0, 256, (per_file, 3072))
        np.concatenate([head, pixels], axis=1).astype(np.uint8).tofile(folder / f)


def _images(tmp_path):
    from PIL import Image

    root = tmp_path / "imgs"
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    return {"dataset": "image_folder", "path": str(root), "image_size": [8, 8]}, None


def _csv(tmp_path):
    rows = [f"{i % 3}," + ",".join(str((i * 7 + j) % 256) for j in range(16)) for i in range(12)]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    return {"dataset": "csv", "path": str(tmp_path / "d.csv"), "image_shape": [4, 4, 1]}, None


def _npz(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x_train=rng.integers(0, 256, (20, 5, 5), dtype=np.uint8), y_train=np.arange(20) % 4)
    return {"dataset": "npz", "path": str(tmp_path / "d.npz")}, None


def _cifar(name):
    def make(tmp_path):
        _write_cifar_bin(tmp_path / keras_datasets.CIFAR_BIN[name][0], name)
        return {"dataset": name}, str(tmp_path)

    return make


def _keras_npz(name, file):
    def make(tmp_path):
        return {"dataset": name}, _need_data(file)

    return make


FIXTURES = {
    "mnist": _keras_npz("mnist", "mnist.npz"),
    "fashion_mnist": _keras_npz("fashion_mnist", "fashion_mnist.npz"),
    "cifar10": _cifar("cifar10"),
    "cifar100": _cifar("cifar100"),
    "digits": lambda tmp_path: ({"dataset": "digits"}, None),
    "npz": _npz,
    "image_folder": _images,
    "csv": _csv,
}


def test_every_dataset_has_a_fixture():
    assert set(FIXTURES) == set(DATASETS)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_registry_entry_loads_offline(name, tmp_path, monkeypatch):
    assert DATASETS[name].doc and callable(LOADERS[name])
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "no-keras-cache"))
    cfg, data_dir = FIXTURES[name](tmp_path)
    s = load_splits(cfg, data_dir=data_dir, seed=1)
    assert isinstance(s, Splits) and s.source
    for x, y in ((s.x_train, s.y_train), (s.x_val, s.y_val), (s.x_test, s.y_test)):
        assert x is not None and x.dtype == np.uint8 and x.ndim == 4
        assert y.dtype == np.int64 and y.shape == (len(x),)
        assert 0 <= y.min() and y.max() < s.num_classes
        assert x.shape[1:] == s.x_train.shape[1:]
    assert len(s.class_names) == s.num_classes == len(set(s.class_names))


def test_import_does_not_load_tensorflow():
    code = (
        "import sys, cnnkit.data, cnnkit.data.pipeline; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_dataset_lists_valid_names():
    assert _err({"dataset": "mnsit"}) == (
        "data.dataset: unknown dataset 'mnsit'; valid: cifar10, cifar100, csv, digits, "
        "fashion_mnist, image_folder, mnist, npz (hint: did you mean 'mnist'?)"
    )


def test_data_option_picks_the_dataset_kind_from_the_registry(tmp_path):
    # --data VALUE: a dataset name, or a file/folder whose form a dataset kind names (spec/datasets.py).
    from cnnkit.errors import DataError
    from cnnkit.run.evaluate import Target, data_config

    bare = Target(tmp_path / "m.keras", None, {}, None)
    picked = {v: data_config(bare, v)["dataset"] for v in ("mnist", "x.npz", "y.csv", str(tmp_path))}
    assert picked == {"mnist": "mnist", "x.npz": "npz", "y.csv": "csv", str(tmp_path): "image_folder"}
    assert data_config(bare, "x.npz")["path"] == "x.npz" and data_config(bare, "mnist")["path"] is None
    with pytest.raises(DataError, match=r"nor an \.npz/\.csv file or image folder$"):
        data_config(bare, "nosuch")


# --- splits ---------------------------------------------------------------------------------


def _index_splits(n: int, **kw) -> Splits:
    ids = np.arange(n)
    return carve(Splits(ids, ids, None, None, None, None, ["a"], "ids"), **kw)


def test_carve_is_disjoint_complete_and_seeded():
    kw = dict(validation_split=0.25, test_split=0.2, max_samples=None)
    s = _index_splits(100, seed=3, **kw)
    assert (len(s.x_train), len(s.x_val), len(s.x_test)) == (60, 20, 20)
    assert sorted(np.concatenate([s.x_train, s.x_val, s.x_test])) == list(range(100))
    again, other = _index_splits(100, seed=3, **kw), _index_splits(100, seed=4, **kw)
    assert all((a == b).all() for a, b in zip((s.x_train, s.x_test), (again.x_train, again.x_test)))
    assert not (s.x_test == other.x_test).all()
    # The test cut does not move when validation_split or max_samples change.
    s2 = _index_splits(100, seed=3, validation_split=0.1, test_split=0.2, max_samples=10)
    assert (s2.x_test == s.x_test).all()
    assert (len(s2.x_train), len(s2.x_val)) == (10, 1)


def test_carve_keeps_explicit_sets_and_rejects_too_few():
    ids = np.arange(5)
    s = carve(
        Splits(ids, ids, ids[:2], ids[:2], None, None, ["a"], "ids"),
        validation_split=0.5,
        test_split=0.0,
        max_samples=None,
        seed=0,
    )
    assert s.x_train is ids and len(s.x_val) == 2 and s.x_test is None
    with pytest.raises(DataError) as info:
        _index_splits(1, validation_split=0.2, test_split=0.2, max_samples=None, seed=0)
    assert str(info.value) == (
        "ids: 1 training samples are too few to carve test_split=0.2 and validation_split=0.2 "
        "(hint: add samples, lower the split fractions, or provide explicit val/test sets)"
    )


# --- digits ---------------------------------------------------------------------------------


def test_digits_offline_seeded_splits():
    s = load_splits({"dataset": "digits"}, seed=7)
    sizes = (len(s.x_train), len(s.x_val), len(s.x_test))
    assert sum(sizes) == 1797 and sizes == (1150, 288, 359)
    assert s.x_train.dtype == np.uint8 and s.x_train.shape[1:] == (8, 8, 1)
    assert s.x_train.max() == 255 and s.num_classes == 10 and s.class_names[3] == "3"
    same = load_splits({"dataset": "digits"}, seed=7)
    other = load_splits({"dataset": "digits"}, seed=8)
    assert (s.x_test == same.x_test).all() and (s.y_val == same.y_val).all()
    assert not (s.y_test == other.y_test).all()


# --- keras datasets -------------------------------------------------------------------------


@pytest.mark.data
def test_mnist_npz_and_idx_files_are_identical(tmp_path):
    data_dir = _need_data("mnist.npz", "mnist-idx")
    cfg = {"dataset": "mnist", "validation_split": 0}
    from_npz = load_splits(cfg, data_dir=data_dir)
    (tmp_path / "mnist-idx").symlink_to(os.path.join(data_dir, "mnist-idx"))
    from_idx = load_splits(cfg, data_dir=str(tmp_path))
    assert from_npz.source == os.path.join(data_dir, "mnist.npz")
    assert from_idx.source == str(tmp_path / "mnist-idx")
    for a, b in zip(
        (from_npz.x_train, from_npz.y_train, from_npz.x_test, from_npz.y_test),
        (from_idx.x_train, from_idx.y_train, from_idx.x_test, from_idx.y_test),
    ):
        assert a.dtype == b.dtype and a.shape == b.shape and (a == b).all()
    assert from_npz.x_train.shape == (60000, 28, 28, 1) and from_npz.x_test.shape[0] == 10000
    assert np.bincount(from_npz.y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    explicit = load_splits({**cfg, "path": os.path.join(data_dir, "mnist-idx")})
    assert (explicit.y_train == from_npz.y_train).all()


@pytest.mark.data
def test_fashion_mnist_class_names(monkeypatch):
    monkeypatch.setenv("CNNKIT_DATA_DIR", _need_data("fashion_mnist.npz"))
    s = load_splits({"dataset": "fashion_mnist", "max_samples": 100})
    assert s.class_names == [
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
    ]
    assert len(s.x_train) == 100 and len(s.x_val) == 25 and len(s.x_test) == 10000


def test_cifar_binary_folder_and_class_names(tmp_path):
    _write_cifar_bin(tmp_path / "cifar-100-binary", "cifar100")
    s = load_splits({"dataset": "cifar100", "validation_split": 0}, data_dir=str(tmp_path))
    assert s.x_train.shape == (3, 32, 32, 3) and s.x_test.shape == (3, 32, 32, 3)
    assert s.num_classes == 100 and s.class_names[:3] == ["apple", "aquarium_fish", "baby"]
    assert s.class_names[-1] == "worm" and s.y_train.tolist() == [0, 1, 2]  # the fine label byte
    raw = np.fromfile(tmp_path / "cifar-100-binary" / "train.bin", dtype=np.uint8)
    # Planes are R, G, B (channels first); the loader must give channels last.
    assert (s.x_train[0, :, :, 1].ravel() == raw[2 + 1024 : 2 + 2048]).all()
    (tmp_path / "cifar-100-binary" / "test.bin").write_bytes(b"\0" * 100)
    assert _err({"dataset": "cifar100"}, data_dir=str(tmp_path)) == (
        f"{tmp_path}/cifar-100-binary/test.bin: 100 bytes is not a whole number of 3074-byte "
        "CIFAR records (hint: download the binary version again; it is truncated)"
    )


def test_cifar_keras_cache_is_read_through_keras(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "datasets" / "cifar-10-batches-py-target").mkdir(parents=True)
    x = np.zeros((4, 32, 32, 3), np.uint8)
    y = np.array([[1], [2], [3], [9]], np.uint8)  # Keras gives cifar labels as (N, 1)
    monkeypatch.setattr(keras_datasets, "_keras_load", lambda name: ((x, y), (x, y)))
    s = load_splits({"dataset": "cifar10", "validation_split": 0})
    assert s.source == f"{tmp_path}/datasets/cifar-10-batches-py-target"
    assert s.y_train.tolist() == [1, 2, 3, 9] and s.class_names[9] == "truck"


def test_idx_bad_magic_and_incomplete_set(tmp_path):
    import gzip

    folder = tmp_path / "mnist-idx"
    folder.mkdir()
    with gzip.open(folder / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write((0x801).to_bytes(4, "big") + (0).to_bytes(4, "big"))
    assert _err({"dataset": "mnist", "path": str(folder)}) == (
        f"{folder}: incomplete IDX set, missing train-labels-idx1-ubyte.gz, "
        "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz "
        "(hint: put all four *-ubyte.gz files in the same folder)"
    )
    for base in ("train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (folder / base).write_bytes(b"")
    assert _err({"dataset": "mnist", "path": str(folder)}) == (
        f"{folder}/train-images-idx3-ubyte.gz: not an IDX image file (magic number 0x00000801, "
        "expected 0x00000803) (hint: use the original *-ubyte(.gz) files)"
    )


def test_explicit_path_missing(tmp_path):
    assert _err({"dataset": "mnist", "path": str(tmp_path / "nope.npz")}) == (
        f"data.path: {tmp_path}/nope.npz does not exist (hint: point it at mnist.npz (or the 4 "
        "MNIST *-ubyte.gz files), or remove it to search the data dir and the Keras cache)"
    )


@pytest.mark.slow  # imports TensorFlow
def test_offline_and_not_found_lists_every_place(tmp_path, monkeypatch):
    import keras

    data_dir, keras_home = tmp_path / "data", tmp_path / "kh"
    data_dir.mkdir()
    (keras_home / "datasets").mkdir(parents=True)
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    timeouts = []

    def offline_load_data():  # what keras.utils.get_file raises without a network
        timeouts.append(socket.getdefaulttimeout())
        raise Exception(
            "URL fetch failure on https://storage.googleapis.com/tensorflow/"
            "tf-keras-datasets/mnist.npz: None -- [Errno -3] Temporary failure "
            "in name\nresolution"
        )

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline_load_data)
    d, k = data_dir, keras_home / "datasets"
    assert _err({"dataset": "mnist"}, data_dir=str(d)) == (
        f"dataset 'mnist' not found: searched {d}/mnist.npz, {d}/mnist-idx/*-ubyte.gz, "
        f"{d}/*-ubyte.gz, {k}/mnist.npz, {k}/mnist-idx/*-ubyte.gz, {k}/*-ubyte.gz; then "
        "keras.datasets.mnist.load_data() failed (Exception: URL fetch failure on "
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz: None -- "
        "[Errno -3] Temporary failure in name resolution) (hint: put mnist.npz (or the 4 MNIST "
        "*-ubyte.gz files) in one of those folders, or pass --data-dir DIR (or set "
        "CNNKIT_DATA_DIR))"
    )
    assert timeouts == [10] and socket.getdefaulttimeout() is None  # fails fast, then restored

    # No data dir and no KERAS_HOME: Keras' default cache under $HOME is searched.
    monkeypatch.delenv("KERAS_HOME")
    monkeypatch.delenv("CNNKIT_DATA_DIR", raising=False)
    (tmp_path / "home").mkdir()
    assert _err({"dataset": "mnist"}).startswith(
        "dataset 'mnist' not found: searched no data dir set (--data-dir / CNNKIT_DATA_DIR), "
        f"{tmp_path}/home/.keras/datasets (no such folder); then keras.datasets.mnist.load_data() "
    )


# --- npz --------------------------------------------------------------------------------------


def _save(tmp_path, **arrays) -> dict:
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    return {"dataset": "npz", "path": str(path)}


X = np.zeros((4, 3, 3), np.uint8)
Y = np.array([0, 1, 2, 1])


def test_npz_happy_path_with_val_and_test(tmp_path):
    cfg = _save(
        tmp_path,
        x_train=X,
        y_train=Y,
        x_val=X[:2],
        y_val=Y[:2],
        x_test=np.ones((3, 3, 3, 1), np.float32),
        y_test=np.eye(3)[[0, 2, 1]],
    )
    s = load_splits(cfg)
    assert (len(s.x_train), len(s.x_val), len(s.x_test)) == (4, 2, 3)  # nothing carved
    assert s.x_train.shape == (4, 3, 3, 1) and s.source == cfg["path"]
    assert s.x_test.dtype == np.uint8 and (s.x_test == 255).all()  # float [0, 1] -> 0..255
    assert s.y_test.tolist() == [0, 2, 1] and s.class_names == ["0", "1", "2"]


def test_npz_class_names_and_flat_rows_with_input_shape(tmp_path):
    cfg = _save(tmp_path, x_train=np.zeros((4, 9), np.uint8), y_train=Y, class_names=np.array(["cat", "dog", "eel"]))
    s = load_splits({**cfg, "validation_split": 0, "test_split": 0}, input_shape=(3, 3, 1))
    assert s.x_train.shape == (4, 3, 3, 1) and s.class_names == ["cat", "dog", "eel"]


def _npz_error(tmp_path, **arrays) -> str:
    cfg = _save(tmp_path, **arrays)
    return _err(cfg).replace(cfg["path"], "D")


NPZ_ERRORS = [
    (
        dict(x_train=X),
        "D: missing array 'y_train'; found: x_train (hint: save it with "
        "np.savez(path, x_train=x, y_train=y[, x_val=..., y_val=..., x_test=..., y_test=...]))",
    ),
    (
        dict(x_train=X, y_train=Y, x_val=X),
        "D: has 'x_val' but no 'y_val' (hint: save both arrays of the val split, or neither)",
    ),
    (
        dict(x_train=X, y_train=Y[:3]),
        "D: x_train has 4 samples but y_train has 3 (hint: x and y need exactly one label per sample)",
    ),
    (
        dict(x_train=np.full((4, 3, 3), np.nan), y_train=Y),
        "D: x_train: 36 NaN/inf pixel values "
        "in 4 samples (first at sample 0) (hint: drop or repair those samples before saving)",
    ),
    (
        dict(x_train=X, y_train=np.array([0, 0.5, 1, 1])),
        "D: y_train: labels must be integer class indices, got 0.5 at sample 1 (hint: save labels as integers 0..K-1)",
    ),
    (
        dict(x_train=X, y_train=np.array([0, 1, -1, 1])),
        "D: y_train: labels must be class indices "
        "0..K-1, got -1 at sample 2 (hint: shift labels so the first class is 0)",
    ),
    (
        dict(x_train=np.zeros(4), y_train=Y),
        "D: x_train: shape (4,) has rank 1; expected (N, H, W), (N, H, W, C) or (N, steps, features)",
    ),
    (
        dict(x_train=np.zeros((4, 1, 2, 2, 1)), y_train=Y),
        "D: x_train: shape (4, 1, 2, 2, 1) has rank 5; expected (N, H, W), (N, H, W, C) or (N, steps, features)",
    ),
    (
        dict(x_train=np.zeros((4, 784)), y_train=Y),
        "D: x_train: shape (4, 784) holds flat rows "
        "of 784 values, not images, and they do not fold into no input_shape (hint: reshape to "
        "(N, H, W) or (N, H, W, C) before saving)",
    ),
    (
        dict(x_train=X.astype(np.int32) + 300, y_train=Y),
        "D: x_train: pixel values must be in "
        "0..255, got 300..300 (dtype int32) (hint: rescale to 0..255 before saving (e.g. x // 256 "
        "for 16-bit images))",
    ),
    (
        dict(x_train=X - 1.0, y_train=Y),
        "D: x_train: float pixel values must be in [0, 1] or "
        "[0, 255], got -1..-1 (hint: save raw pixels, not standardized ones; cnnkit scales to "
        "[0, 1] itself)",
    ),
    (
        dict(x_train=X, y_train=np.array([[1, 0], [1, 1], [0, 1], [1, 0]])),
        "D: y_train: shape "
        "(4, 2) looks one-hot, but not every row is 0/1 with exactly one 1 (hint: save class "
        "indices of shape (N,) instead)",
    ),
    (
        dict(x_train=X, y_train=Y, x_test=np.zeros((2, 4, 4)), y_test=Y[:2]),
        "D: x_test samples "
        "have shape (4, 4, 1) but x_train samples have shape (3, 3, 1) (hint: every split must "
        "hold samples of the same shape)",
    ),
    (
        dict(x_train=X, y_train=Y, class_names=np.array(["a", "b"])),
        "D: y_train has label 2 but there are only 2 class names (hint: labels must be 0..len(class_names)-1)",
    ),
]


@pytest.mark.parametrize("arrays,expected", NPZ_ERRORS, ids=[e[1][:40] for e in NPZ_ERRORS])
def test_npz_errors(tmp_path, arrays, expected):
    assert _npz_error(tmp_path, **arrays) == expected


def test_npz_file_errors(tmp_path):
    missing = str(tmp_path / "missing.npz")
    assert _err({"dataset": "npz", "path": missing}) == (f"{missing}: file not found (hint: check data.path)")
    text = tmp_path / "text.npz"
    text.write_text("x_train,y_train\n")
    assert _err({"dataset": "npz", "path": str(text)}).startswith(
        f"{text}: not an .npz file (not a zip archive) (hint: save it with np.savez("
    )
    np.save(tmp_path / "one.npy", X)
    assert _err({"dataset": "npz", "path": str(tmp_path / "one.npy")}).startswith(
        f"{tmp_path}/one.npy: is a single-array .npy file, expected an .npz archive with x_train and y_train (hint: "
    )
    objects = _save(tmp_path, x_train=np.array([X[0], X[0][:2]], dtype=object), y_train=Y[:2])
    assert _err(objects) == (
        f"{objects['path']}: array 'x_train' has dtype=object, which cannot be loaded safely (it "
        "would need pickle) (hint: save plain numeric arrays, e.g. np.asarray(x, dtype=np.uint8))"
    )
    assert _err({"dataset": "npz"}).startswith("data.path: the npz dataset needs a path")


# --- image_folder ----------------------------------------------------------------------------


def _mixed_folder(tmp_path):
    """Every accepted format and mode, an ignored .txt, and three broken files."""
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "pics"
    a, b = root / "apple", root / "banana"
    a.mkdir(parents=True)
    b.mkdir()
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(a / "rgb.jpg")
    Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(a / "gray.png")
    Image.fromarray(rng.integers(0, 256, (9, 7, 4), dtype=np.uint8)).save(a / "rgba.PNG")
    Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).convert("P").save(b / "pal.bmp")
    Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).convert("P").save(b / "anim.gif")
    (b / "notes.txt").write_text("ignored: not an image extension")
    big = tmp_path / "big.jpg"
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(big, quality=95)
    (a / "truncated.jpg").write_bytes(big.read_bytes()[:2000])
    (b / "empty.jpg").write_bytes(b"")
    (b / "text.png").write_text("this is not a png\n")
    return root, [a / "truncated.jpg", b / "empty.jpg", b / "text.png"]


def test_image_folder_prescan_names_every_bad_file_then_loads(tmp_path):
    root, bad = _mixed_folder(tmp_path)
    cfg = {"dataset": "image_folder", "path": str(root), "image_size": [6, 5], "validation_split": 0, "test_split": 0}
    message = _err(cfg)
    prefix = f"{root}: 3 unreadable image files: {bad[0]} ("
    assert message.startswith(prefix)
    assert message.endswith(
        f"), {bad[1]} (empty file), {bad[2]} (not an image Pillow can read) "
        "(hint: delete or replace them, then run again)"
    )
    assert "truncated" in message[len(prefix) :]
    for path in bad:
        path.unlink()
    for mode, channels in (("grayscale", 1), ("rgb", 3), ("rgba", 4)):
        s = load_splits({**cfg, "color_mode": mode})
        assert s.x_train.shape == (5, 6, 5, channels) and s.x_train.dtype == np.uint8
        assert s.y_train.tolist() == [0, 0, 0, 1, 1] and s.class_names == ["apple", "banana"]
    # image_size and color_mode default from the model's input shape.
    s = load_splits({**cfg, "image_size": None}, input_shape=(4, 4, 1))
    assert s.x_train.shape == (5, 4, 4, 1)


def test_image_folder_structure_errors(tmp_path):
    from PIL import Image

    root = tmp_path / "r"
    root.mkdir()
    Image.new("RGB", (4, 4)).save(root / "loose.png")
    cfg = {"dataset": "image_folder", "path": str(root), "image_size": [4, 4]}
    assert _err(cfg) == (
        f"{root}: no class subfolders (hint: put the images of each class in their own "
        f"subfolder, e.g. {root}/cat/, {root}/dog/)"
    )
    (root / "a").mkdir()
    (root / "b").mkdir()
    Image.new("RGB", (4, 4)).save(root / "a" / "1.png")
    (root / "b" / "readme.txt").write_text("no images here")
    assert _err(cfg) == (
        f"{root}/b: class folder has no images (.jpg/.jpeg/.png/.bmp/.gif) (hint: add images or remove the folder)"
    )
    Image.new("RGB", (4, 4)).save(root / "b" / "2.png")
    test = tmp_path / "t"
    (test / "a").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(test / "a" / "3.png")
    assert _err({**cfg, "test_path": str(test)}) == (
        f"{test}: test classes ['a'] differ from training classes ['a', 'b'] in {root} "
        "(hint: use the same class subfolder names in both folders)"
    )


# --- csv --------------------------------------------------------------------------------------


def _csv_file(tmp_path, text: str, name: str = "d.csv", bom: bool = False) -> str:
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return str(path)


PIXELS = "\n".join(f"{i % 2}," + ",".join(str(10 * i + j) for j in range(4)) for i in range(6))


@pytest.mark.parametrize("header,bom", [(False, False), (True, False), (True, True)])
def test_csv_happy_path(tmp_path, header, bom):
    text = ("label,p0,p1,p2,p3\n" if header else "") + PIXELS + "\n"
    cfg = {
        "dataset": "csv",
        "path": _csv_file(tmp_path, text, bom=bom),
        "image_shape": [2, 2],
        "validation_split": 0,
        "test_split": 0,
    }
    s = load_splits(cfg)
    assert s.x_train.shape == (6, 2, 2, 1) and s.x_train.dtype == np.uint8
    assert s.x_train[1].ravel().tolist() == [10, 11, 12, 13]
    assert s.y_train.tolist() == [0, 1, 0, 1, 0, 1] and s.class_names == ["0", "1"]


def test_csv_label_column_by_name_and_square_default(tmp_path):
    text = "p0,p1,p2,p3,digit\n1,2,3,4,7\n5,6,7,8,3\n"
    cfg = {
        "dataset": "csv",
        "path": _csv_file(tmp_path, text),
        "label_column": "digit",
        "validation_split": 0,
        "test_split": 0,
    }
    s = load_splits(cfg)
    assert s.x_train.shape == (2, 2, 2, 1) and s.y_train.tolist() == [7, 3]
    assert s.num_classes == 8 and s.x_train[1].ravel().tolist() == [5, 6, 7, 8]


CSV_ERRORS = [
    (
        "label,a,b,c,d\n1,2,3,4,5\n\n0,2,x3,4,5\n",
        {},
        "D: row 4, column 3: expected a number, got 'x3' (hint: fix or delete that row)",
    ),
    (
        "1,2,3,4,5\n0,2,3,4\n",
        {},
        "D: row 2 is short: 4 columns, expected 5 like the first row (hint: every row needs one "
        "label and the same number of pixels)",
    ),
    (
        "1,2,3,4,5\n0,2,3,4,5,6\n",
        {},
        "D: row 2 is long: 6 columns, expected 5 like the first row (hint: every row needs one "
        "label and the same number of pixels)",
    ),
    (
        "h,p\n1,2,3,4,5\n",
        {"header": True},
        "D: header row 1 has 2 columns but the data has 5 (hint: fix the header, or set header: false)",
    ),
    (
        "label,a,b,c,d\n1,2,3,4,5\n",
        {"image_shape": [3, 3]},
        "D: row 2 has 4 pixel values but image_shape [3, 3] needs 9 (hint: set data.image_shape to "
        "the shape the pixels were saved in)",
    ),
    (
        "1,2,3,4,5,6\n",
        {},
        "D: row 1 has 5 pixel values, which is not a square image, and no "
        "image_shape is set (hint: set data.image_shape, e.g. [28, 28, 1])",
    ),
    (
        "1,2,3,4,5\n2.5,2,3,4,5\n",
        {},
        "D: row 2, column 1: expected a finite integer class label, got 2.5 (hint: fix or delete that row)",
    ),
    (
        "1,2,3,4,5\n\n2,2,nan,4,5\n",
        {},
        "D: row 3, column 3: expected a finite pixel value, got nan (hint: fix or delete that row)",
    ),
    (
        "1,2,3,4,5\n-1,2,3,4,5\n",
        {},
        "D: row 2, column 1: expected a class index 0..K-1, got -1 (hint: shift labels so the first class is 0)",
    ),
    (
        "",
        {},
        "D: empty file, expected rows of label, pixel0, ..., pixelN (hint: check that the file was written completely)",
    ),
    ("label,a,b,c,d\n", {}, "D: a header row but no data rows (hint: add rows of pixels)"),
    (
        "1,2,3,4,5\n",
        {"label_column": "label"},
        "D: label_column 'label' is a column name but the "
        "file has no header row (hint: use a column index, e.g. label_column: 0)",
    ),
]


@pytest.mark.parametrize("text,options,expected", CSV_ERRORS, ids=[e[2][:40] for e in CSV_ERRORS])
def test_csv_errors(tmp_path, text, options, expected):
    path = _csv_file(tmp_path, text, bom=True)
    assert _err({"dataset": "csv", "path": path, **options}).replace(path, "D") == expected


# --- pipeline ---------------------------------------------------------------------------------


def _batches(ds):
    return [(bx.numpy(), by.numpy()) for bx, by in ds]


@pytest.mark.slow  # imports TensorFlow
def test_pipeline_dtypes_scaling_and_labels():
    from cnnkit.data.pipeline import to_tf_dataset

    x = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1) * 25
    y = np.arange(10) % 3
    sparse = _batches(to_tf_dataset(x, y, batch_size=4, num_classes=3, one_hot=False, shuffle=False, seed=0))
    assert [len(b[0]) for b in sparse] == [4, 4, 2]
    bx, by = sparse[0]
    assert bx.dtype == np.float32 and bx.shape == (4, 1, 1, 1) and by.dtype == np.int32
    assert np.allclose(bx.ravel(), [0, 25 / 255, 50 / 255, 75 / 255]) and by.tolist() == [0, 1, 2, 0]
    assert np.isclose(sparse[-1][0].max(), 225 / 255)
    onehot = _batches(
        to_tf_dataset(x, y, batch_size=4, num_classes=3, one_hot=True, shuffle=False, seed=0, drop_remainder=True)
    )
    assert len(onehot) == 2 and onehot[0][1].dtype == np.float32
    assert onehot[0][1].tolist() == np.eye(3)[[0, 1, 2, 0]].tolist()


@pytest.mark.slow  # imports TensorFlow
def test_pipeline_seeded_shuffle():
    from cnnkit.data.pipeline import to_tf_dataset

    x = np.arange(50, dtype=np.uint8).reshape(50, 1, 1, 1)
    y = np.arange(50)

    def orders(seed):
        ds = to_tf_dataset(x, y, batch_size=8, num_classes=50, one_hot=False, shuffle=True, seed=seed)
        return [np.concatenate([b[1] for b in _batches(ds)]).tolist() for _ in range(2)]

    first, again, other = orders(1), orders(1), orders(2)
    assert first == again  # same seed: same order, epoch after epoch
    assert first[0] != first[1]  # reshuffled each epoch
    assert first[0] != other[0] and sorted(first[0]) == list(range(50))
    # Pixels stay with their labels through the shuffle.
    ds = to_tf_dataset(x, y, batch_size=8, num_classes=50, one_hot=False, shuffle=True, seed=1)
    for bx, by in _batches(ds):
        assert np.allclose(bx.ravel() * 255, by)


@pytest.mark.slow  # imports TensorFlow and iterates a full MNIST-sized epoch
def test_pipeline_epoch_batches_a_whole_mnist_epoch():
    from cnnkit.data.pipeline import to_tf_dataset

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (48000, 28, 28, 1), dtype=np.uint8)
    ds = to_tf_dataset(x, rng.integers(0, 10, 48000), batch_size=64, num_classes=10, one_hot=True, shuffle=True, seed=0)
    batches = list(ds)
    assert len(batches) == 750
    # uint8 travels until the batch is formed: float32 batches of the right shape come out (the epoch's speed is
    # measured by bench/, never asserted here).
    assert batches[0][0].dtype.name == "float32" and tuple(batches[0][0].shape) == (64, 28, 28, 1)

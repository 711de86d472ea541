"""Hostile data files: each is refused with one `Error:` line and exit 2 by every command that reads it, before
anything is allocated from what the file declares, and the user's file is left exactly as it was.

The cases: a decompression-bomb PNG (predict, plot kernels, plot feature-maps, an image_folder for train); a csv
with a non-UTF-8 byte, a cell over the csv module's field limit, or a label of 1e30 / 1e12; an .npz member cut
shorter than its header says, and an .npz that unpacks to gigabytes. Also: every path a user names is checked
before TensorFlow is imported, and `predict` warns when it has to resize a picture too much.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from clitools import cli, refused

from cnnkit.data import limits, load_splits
from cnnkit.data.images import resize_warning
from cnnkit.errors import DataError

REPO = Path(__file__).resolve().parents[1]
CAP = f"{limits.MAX_IMAGE_PIXELS:,}"
BOMB_REASON = (
    f"image has 900,000,000 pixels, more than cnnkit's cap of {CAP} (refused unread: it could be a decompression bomb)"
)
BOMB_HINT = "(hint: shrink the image first, e.g. to the model's input size)"
LABEL_HINT = "(hint: labels are integers in [0, classes), and cnnkit caps classes at 10,000)"


def fingerprint(folder: Path) -> dict:
    """Every file under `folder` with its content hash and modification time: equal before and after = untouched."""
    return {
        p: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# ------------------------------------------------------------------------------------------------- fixtures
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_bomb_png(path: Path, side: int = 30000) -> Path:
    """A valid side x side 1-bit PNG of zeros: ~100 KB on disk, 900 MB once decoded to 8-bit grey."""
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    return write_bomb_png(tmp_path_factory.mktemp("bomb") / "bomb.png")


@pytest.fixture
def fake_run(tmp_path) -> Path:
    """A run folder whose model.keras is empty: a command that touches the model (and TensorFlow) fails on it,
    so a test that gets the data error instead shows the data was checked first."""
    run = tmp_path / "runs" / "run1"
    run.mkdir(parents=True)
    shutil.copy(REPO / "configs" / "digits.yaml", run / "spec.yaml")
    (run / "model.keras").write_bytes(b"")
    return run


def spec_for(tmp_path: Path, data: str, input_shape=(8, 8, 1)) -> Path:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        textwrap.dedent(f"""\
            input_shape: {list(input_shape)}
            layers: [Flatten, {{Dense: {{units: 2, activation: softmax}}}}]
            data: {data}
            """)
    )
    return spec


def write_csv(path: Path, body: bytes) -> Path:
    path.write_bytes(body)
    return path


def _csv_rows(n: int = 6, label=None) -> list[bytes]:
    rows = [f"{i % 2}," + ",".join(str((i * 7 + j) % 256) for j in range(64)) for i in range(n)]
    if label is not None:
        rows[3] = f"{label}," + rows[3].split(",", 1)[1]
    return [r.encode() for r in rows]


def hostile_csvs(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, the exact one-line error `cnnkit` prints for it, without the `Error: ` prefix)."""
    folder.mkdir(exist_ok=True)
    cases = {}
    header = ("étiquette," + ",".join(f"p{j}" for j in range(64))).encode("latin-1")  # a French Excel export
    latin1 = write_csv(folder / "latin1.csv", b"\n".join([header, *_csv_rows()]) + b"\n")
    cases["non_utf8"] = (
        latin1,
        f"{latin1}: line 1, byte 1: 0xe9 is not UTF-8 text "
        "(hint: save the file as UTF-8; plain numbers are ASCII, which is UTF-8)",
    )
    rows = _csv_rows()
    rows[2] = b"1," + b"7" * 200_000 + b"," + rows[2].split(b",", 2)[2]
    huge = write_csv(folder / "huge_cell.csv", b"\n".join(rows) + b"\n")
    cases["huge_cell"] = (
        huge,
        f"{huge}: line 3: a cell longer than 131,072 characters (the csv module's field limit) "
        "(hint: a label or pixel is a short number: check that this is a csv of pixel rows)",
    )
    for name, label, shown in (("label_1e30", "1e30", "1e+30"), ("label_1e12", "1e12", "1e+12")):
        path = write_csv(folder / f"{name}.csv", b"\n".join(_csv_rows(label=label)) + b"\n")
        cases[name] = (path, f"{path}: row 4, column 1: expected a class index 0..9999, got {shown} {LABEL_HINT}")
    return cases


def _rezip(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _npy(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array)
    return buffer.getvalue()


def _npy_header(shape, dtype) -> bytes:
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def hostile_npzs(folder: Path) -> dict[str, tuple[Path, str]]:
    folder.mkdir(exist_ok=True)
    x = np.arange(100 * 64, dtype=np.uint8).reshape(100, 8, 8)
    y = np.arange(100) % 2
    cases = {}
    whole = _npy(x)
    cut = _rezip(folder / "cut.npz", {"x_train.npy": whole[: len(whole) - 3200], "y_train.npy": _npy(y)})
    cases["cut_short"] = (
        cut,
        f"{cut}: array 'x_train' is cut short: its header declares shape (100, 8, 8) uint8 (6,400 bytes) "
        "but the file holds 3,200 (hint: write the file again)",
    )
    # 1e12 bytes declared by a 100-byte header: a real .npz of this would be gigabytes of zeros once unpacked.
    forged = _rezip(
        folder / "terabyte.npz",
        {"x_train.npy": _npy_header((1_000_000, 1000, 1000), np.uint8) + b"\0" * 64, "y_train.npy": _npy(y)},
    )
    cases["unpacks_to_gigabytes"] = (
        forged,
        f"{forged}: its arrays unpack to 931.3 GiB (largest: 'x_train', shape (1000000, 1000, 1000) uint8), "
        "more than cnnkit's cap of 4.0 GiB for one .npz (hint: save fewer samples, or pixels as uint8)",
    )
    floats = folder / "label_1e30.npz"
    np.savez(floats, x_train=x, y_train=np.where(np.arange(100) == 5, 1e30, 1.0))
    cases["label_1e30"] = (
        floats,
        f"{floats}: y_train: labels must be class indices 0..9999, got 1e+30 at sample 5 {LABEL_HINT}",
    )
    ints = folder / "label_1e12.npz"
    np.savez(ints, x_train=x, y_train=np.where(np.arange(100) == 7, 10**12, 1))
    cases["label_1e12"] = (
        ints,
        f"{ints}: y_train: labels must be class indices 0..9999, got 1000000000000 at sample 7 {LABEL_HINT}",
    )
    return cases


CSV_CASES = ["non_utf8", "huge_cell", "label_1e30", "label_1e12"]
NPZ_CASES = ["cut_short", "unpacks_to_gigabytes", "label_1e30", "label_1e12"]


# ------------------------------------------------------------------------------------------- images: bombs
def test_bomb_png_is_small_on_disk_and_huge_declared(bomb):
    from PIL import Image

    assert bomb.stat().st_size < 200_000
    with pytest.raises(Image.DecompressionBombError):  # Pillow itself refuses it in open()
        Image.open(bomb)


def test_predict_refuses_a_bomb_before_the_model(bomb, fake_run):
    before = fingerprint(bomb.parent)
    assert refused("predict", fake_run, bomb) == f"Error: {bomb}: {BOMB_REASON} {BOMB_HINT}\n"
    assert fingerprint(bomb.parent) == before


def test_plot_kernels_refuses_a_bomb(bomb, tmp_path):
    before = fingerprint(bomb.parent)
    out = tmp_path / "k.png"
    assert refused("plot", "kernels", bomb, "--out", out) == f"Error: {bomb}: {BOMB_REASON} {BOMB_HINT}\n"
    assert fingerprint(bomb.parent) == before and not out.exists()


def test_plot_feature_maps_refuses_a_bomb_before_the_model(bomb, fake_run):
    assert refused("plot", "feature-maps", fake_run, "--image", bomb) == f"Error: {bomb}: {BOMB_REASON} {BOMB_HINT}\n"


def test_train_on_an_image_folder_refuses_a_bomb(bomb, tmp_path):
    root = tmp_path / "folder"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        shutil.copy(REPO / "docs" / "img" / "digit8.png", root / name / "ok.png")
    shutil.copy(bomb, root / "b" / "bomb.png")
    before = fingerprint(root)
    spec = spec_for(tmp_path, f"{{dataset: image_folder, path: {root}}}")
    assert refused("train", spec, "--out", tmp_path / "runs") == (
        f"Error: {root}: 1 unreadable image file: {root / 'b' / 'bomb.png'} ({BOMB_REASON}) "
        "(hint: delete or replace them, then run again)\n"
    )
    assert fingerprint(root) == before


def test_the_cap_is_cnnkits_own_below_pillows(tmp_path):
    """Between cnnkit's cap and Pillow's own refusal: cnnkit still refuses, from the header, with the exact size."""
    from cnnkit.data.images import check_image

    side = 8001  # 64,016,001 pixels: just over the cap, under Pillow's 89 MP warning
    assert side * side > limits.MAX_IMAGE_PIXELS
    path = write_bomb_png(tmp_path / "big.png", side)
    with pytest.raises(DataError) as info:
        check_image(path)
    assert str(info.value) == (
        f"{path}: image has 64,016,001 pixels, more than cnnkit's cap of {CAP} "
        f"(refused unread: it could be a decompression bomb) {BOMB_HINT}"
    )


# ------------------------------------------------------------------------------------------------------ csv
@pytest.mark.parametrize("case", CSV_CASES)
def test_train_refuses_hostile_csv(case, tmp_path):
    path, message = hostile_csvs(tmp_path / "data")[case]
    before = fingerprint(path.parent)
    spec = spec_for(tmp_path, f"{{dataset: csv, path: {path}}}")
    assert refused("train", spec, "--out", tmp_path / "runs") == f"Error: {message}\n"
    assert fingerprint(path.parent) == before


@pytest.mark.parametrize("case", CSV_CASES)
def test_load_splits_refuses_hostile_csv_as_one_line(case, tmp_path):
    path, message = hostile_csvs(tmp_path / "data")[case]
    with pytest.raises(DataError) as info:
        load_splits({"dataset": "csv", "path": str(path)}, input_shape=(8, 8, 1))
    assert str(info.value) == message


def test_a_good_csv_with_a_bom_still_loads(tmp_path):
    path = write_csv(tmp_path / "ok.csv", b"\xef\xbb\xbf" + b"\n".join(_csv_rows()) + b"\n")
    splits = load_splits({"dataset": "csv", "path": str(path), "test_split": 0, "validation_split": 0})
    assert splits.x_train.shape == (6, 8, 8, 1) and splits.class_names == ["0", "1"]


# ------------------------------------------------------------------------------------------------------ npz
@pytest.mark.parametrize("case", NPZ_CASES)
def test_train_refuses_hostile_npz(case, tmp_path):
    path, message = hostile_npzs(tmp_path / "data")[case]
    before = fingerprint(path.parent)
    spec = spec_for(tmp_path, f"{{dataset: npz, path: {path}}}")
    assert refused("train", spec, "--out", tmp_path / "runs") == f"Error: {message}\n"
    assert fingerprint(path.parent) == before


def test_a_real_npz_bomb_is_refused_before_unpacking(tmp_path, monkeypatch):
    """Deflated zeros: tiny on disk, really unpacking past the cap (lowered here so the file stays small)."""
    monkeypatch.setattr(limits, "MAX_UNPACKED_BYTES", 8 * 1024**2)
    x = _npy(np.zeros((160, 256, 256), np.uint8))  # 10 MiB of zeros
    path = _rezip(tmp_path / "zeros.npz", {"x_train.npy": x, "y_train.npy": _npy(np.zeros(160))}, zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 100_000
    spec = spec_for(tmp_path, f"{{dataset: npz, path: {path}}}")
    assert refused("train", spec, "--out", tmp_path / "runs") == (
        f"Error: {path}: its arrays unpack to 10.0 MiB (largest: 'x_train', shape (160, 256, 256) uint8), "
        "more than cnnkit's cap of 8.0 MiB for one .npz (hint: save fewer samples, or pixels as uint8)\n"
    )


def test_predict_refuses_hostile_npz_before_the_model(tmp_path, fake_run):
    cases = hostile_npzs(tmp_path / "data")
    for case in ("cut_short", "unpacks_to_gigabytes"):
        path, message = cases[case]
        # predict reads x_train when the file has no x_test/x/images.
        assert refused("predict", fake_run, path) == f"Error: {message}\n"


def test_a_gzipped_idx_declaring_a_terabyte_is_refused_before_unpacking(tmp_path):
    """The MNIST IDX reader obeys the same unpacked-size cap: the header is read, the data never is."""
    import gzip

    folder = tmp_path / "mnist-idx"
    folder.mkdir()
    heads = {
        "train-images-idx3-ubyte": (0x803, (1_000_000, 1000, 1000)),
        "train-labels-idx1-ubyte": (0x801, (10,)),
        "t10k-images-idx3-ubyte": (0x803, (10, 28, 28)),
        "t10k-labels-idx1-ubyte": (0x801, (10,)),
    }
    for name, (magic, dims) in heads.items():
        with gzip.open(folder / f"{name}.gz", "wb") as f:
            f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + b"\0" * 64)
    before = fingerprint(folder)
    spec = spec_for(tmp_path, f"{{dataset: mnist, path: {folder}}}", input_shape=(28, 28, 1))
    assert refused("train", spec, "--out", tmp_path / "runs") == (
        f"Error: {folder / 'train-images-idx3-ubyte.gz'}: IDX header says [1000000, 1000, 1000] = "
        f"1,000,000,000,000 bytes of data, more than cnnkit's cap of {limits.MAX_UNPACKED_BYTES:,} for one file "
        "(hint: use the original *-ubyte(.gz) files)\n"
    )
    assert fingerprint(folder) == before


# ---------------------------------------------------------------------------------- paths before TensorFlow
def test_user_paths_are_checked_before_tensorflow(fake_run, tmp_path):
    """A missing image or data file fails fast: TensorFlow is never imported (a fresh interpreter tells)."""
    missing_png, missing_npz, missing_csv = (str(tmp_path / f"missing.{ext}") for ext in ("png", "npz", "csv"))
    commands = [
        ["predict", str(fake_run), missing_png],
        ["predict", str(fake_run), missing_npz],
        ["evaluate", str(fake_run), "--data", missing_npz],
        ["evaluate", str(fake_run), "--data", missing_csv],
        ["plot", "feature-maps", str(fake_run), "--image", missing_png],
        ["plot", "kernels", missing_png],
    ]
    script = textwrap.dedent(f"""\
        import sys
        from typer.testing import CliRunner
        from cnnkit.cli import app

        for args in {commands!r}:
            result = CliRunner().invoke(app, args)
            print(result.exit_code, result.stderr.strip())
        print("tensorflow imported:", "tensorflow" in sys.modules)
        """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"2 Error: {tmp_path / 'missing.png'}: file not found",
        f"2 Error: {tmp_path / 'missing.npz'}: file not found",
        f"2 Error: {tmp_path / 'missing.npz'}: file not found (hint: check the --data path)",
        f"2 Error: {tmp_path / 'missing.csv'}: file not found (hint: check the --data path)",
        f"2 Error: {tmp_path / 'missing.png'}: file not found",
        f"2 Error: cannot load image {tmp_path / 'missing.png'}: the path does not exist",
        "tensorflow imported: False",
    ]


# -------------------------------------------------------------------------------------- predict: resizing
@pytest.mark.parametrize(
    "source, target, expected",
    [
        ((8, 8), (8, 8), None),
        ((16, 16), (8, 8), None),  # exactly 2x: fine
        ((28, 28), (32, 32), None),
        (
            (112, 112),
            (8, 8),
            "x.png is 112×112 but the model reads 8×8 (shrunk 14×); "
            "the prediction may be wrong: give a picture close to 8×8",
        ),
        (
            (10, 10),
            (28, 28),
            "x.png is 10×10 but the model reads 28×28 (enlarged 2.8×); "
            "the prediction may be wrong: give a picture close to 28×28",
        ),
        (
            (42, 28),
            (28, 28),
            "x.png is 42×28 but the model reads 28×28 (aspect ratio 1.50 stretched to 1.00); "
            "the prediction may be wrong: give a picture close to 28×28",
        ),
        (
            (640, 480),
            (32, 32),
            "x.png is 640×480 but the model reads 32×32 (shrunk 20×, aspect ratio 1.33 stretched to 1.00); "
            "the prediction may be wrong: give a picture close to 32×32",
        ),
    ],
)
def test_resize_warning(source, target, expected):
    assert resize_warning("x.png", source, target) == expected


def test_readme_predict_image_is_a_digits_test_image_of_a_7():
    """docs/img/digit8.png is, pixel for pixel, a held-out 7 of both digits runs the README trains (seeds 1, 0)."""
    from PIL import Image

    with Image.open(REPO / "docs" / "img" / "digit8.png") as img:
        assert img.size == (8, 8) and img.mode == "L"
        pixels = np.asarray(img)
    data = {"dataset": "digits", "validation_split": 0.15, "test_split": 0.2}
    for seed in (0, 1):
        splits = load_splits(data, seed=seed)
        same = (splits.x_test[..., 0] == pixels).all(axis=(1, 2))
        assert same.any() and set(splits.y_test[same]) == {7}, seed


def _readme_commands() -> list[str]:
    import re

    readme = (REPO / "README.md").read_text()
    return [
        line[2:].split("  #")[0].strip()
        for block in re.findall(r"```console\n(.*?)```", readme, flags=re.S)
        for line in block.splitlines()
        if line.startswith("$ cnnkit ")
    ]


@pytest.mark.slow
def test_readme_predict_example_answers_7(tmp_path, monkeypatch, bomb):
    """The README's predict line, after the README's last train line before it (the digits demo, its own seed),
    prints 7 first, with no resize warning; the old 112x112 picture gets the warning."""
    commands = _readme_commands()
    at = next(i for i, c in enumerate(commands) if c.startswith("cnnkit predict "))
    train = [c for c in commands[:at] if c.startswith("cnnkit train ")][-1]
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    shutil.copytree(REPO / "docs", tmp_path / "docs")
    monkeypatch.chdir(tmp_path)
    cli(*shlex.split(train)[1:], "--no-pictures")
    result = cli(*shlex.split(commands[at])[1:])
    assert result.stdout.startswith("docs/img/digit8.png: 7  (7 "), result.stdout
    assert result.stderr == ""

    result = cli("predict", "runs/latest", "docs/img/digit.png", "--json")
    assert result.stderr == (
        "Warning: docs/img/digit.png is 112×112 but the model reads 8×8 (shrunk 14×); "
        "the prediction may be wrong: give a picture close to 8×8\n"
    )
    import json

    assert json.loads(result.stdout)[0]["warning"] == result.stderr[len("Warning: ") : -1]

    # evaluate --data on hostile files: the same one line as train gives, with a real model loaded.
    for path, message in [*hostile_csvs(tmp_path / "csv").values(), *hostile_npzs(tmp_path / "npz").values()]:
        assert refused("evaluate", "runs/latest", "--data", path) == f"Error: {message}\n"
    root = tmp_path / "folder"
    (root / "7").mkdir(parents=True)
    shutil.copy(bomb, root / "7" / "bomb.png")
    assert refused("evaluate", "runs/latest", "--data", root) == (
        f"Error: {root}: 1 unreadable image file: {root / '7' / 'bomb.png'} ({BOMB_REASON}) "
        "(hint: delete or replace them, then run again)\n"
    )
    # And predict with the real model loaded: the same line as before any model.
    assert refused("predict", "runs/latest", bomb) == f"Error: {bomb}: {BOMB_REASON} {BOMB_HINT}\n"

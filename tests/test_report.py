"""report.html: self-contained (embedded pictures, no script, no network), escaped, accessible basics; and, in a
real headless Chromium (skipped with a reason when none is installed; .ci/run installs Debian's `chromium`):
every image decodes, the console stays clean, nothing is fetched, the page fits 1280 and 390 px, and
screenshots at both widths are not blank. Trained runs: the notes' MNIST net (2 epochs) and a 3-channel net."""

from __future__ import annotations

import json
import os
from html.parser import HTMLParser
from pathlib import Path

import chromium
import numpy as np
import pytest
from clitools import cli
from PIL import Image

from cnnkit.viz import plots
from cnnkit.viz.report import PICTURES, write_report

DATA_DIR = os.environ.get("CNNKIT_DATA_DIR")
BROWSER = chromium.find()
needs_browser = pytest.mark.skipif(
    BROWSER is None, reason="no Chromium on PATH (install Debian's `chromium`, as .ci/run does)"
)
HOSTILE = '<img src=x onerror="alert(1)">'

SPEC = """name: tiny <report>
input_shape: [8, 8, 1]
layers:
  - Conv2D: {filters: 4, kernel_size: 3, activation: relu}
  - Flatten
  - Dense: {units: 3, activation: softmax}
"""


class Page(HTMLParser):
    """The tags a report must and must not have."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def all(self, tag: str) -> list[dict]:
        return [attrs for name, attrs in self.tags if name == tag]


def fake_run(folder: Path, *, pictures: bool = True) -> Path:
    """A run folder as `cnnkit train` leaves it, written without TensorFlow (pictures from plots.py)."""
    run = folder / "tiny-20260101-000000"
    (run / "plots").mkdir(parents=True)
    (run / "spec.yaml").write_text(SPEC)
    names = ["cat", "dog", HOSTILE]
    info = {
        "cnnkit": "0.1.0",
        "tensorflow": "2.21.0",
        "keras": "3.15.1",
        "python": "3.11.7",
        "device": {"requested": "auto", "gpus": [], "used": "cpu"},
        "strategy": "none",
        "seed": 0,
        "command": ["/x/bin/cnnkit", "train", "my spec.yaml", "--epochs", "2"],
        "data_source": "digits.csv.gz",
        "class_names": names,
        "samples": {"train": 100, "val": 20, "test": 30},
        "started": "2026-01-01T00:00:00+0000",
        "ended": "2026-01-01T00:01:05+0000",
        "status": "completed",
        "epochs_run": 2,
    }
    (run / "run.json").write_text(json.dumps(info))
    history = {"loss": [1.0, 0.5], "accuracy": [0.5, 0.8], "val_loss": [1.1, 0.7], "val_accuracy": [0.4, 0.7]}
    (run / "history.json").write_text(json.dumps(history))
    metrics = {
        "train": {"accuracy": 0.8, "loss": 0.5},
        "val": {"accuracy": 0.7, "loss": 0.7},
        "test": {"accuracy": 0.6},
    }
    (run / "metrics.json").write_text(json.dumps(metrics))
    cm = [[8, 1, 1], [2, 7, 1], [0, 3, 7]]
    per_class = [{"class": n, "precision": 0.8, "recall": 0.8, "f1": 0.8, "support": 10} for n in names]
    evaluation = {
        "samples": 30,
        "accuracy": 0.7333,
        "class_names": names,
        "confusion_matrix": cm,
        "per_class": per_class,
    }
    (run / "eval.json").write_text(json.dumps(evaluation))
    if pictures:
        plots.plot_curves(history, run / "plots" / "curves.png")
        plots.plot_confusion(np.array(cm), names, run / "plots" / "confusion.png")
        plots.plot_curves(history, run / "plots" / "extra_picture.png")  # any other PNG is shown too
    return run


def assert_self_contained(report: Path, pictures: int) -> Page:
    html = report.read_text(encoding="utf-8")
    page = Page(html)
    images = page.all("img")
    assert len(images) == pictures
    for image in images:
        assert image["src"].startswith("data:image/png;base64,"), image["src"][:40]
        assert len(image["alt"]) > 20  # says what the picture is and how to read it
        assert int(image["width"]) > 0 and int(image["height"]) > 0
    assert not page.all("script") and "<script" not in html  # no JavaScript at all
    assert "http://" not in html and "https://" not in html  # nothing to fetch
    csp = [m for m in page.all("meta") if m.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]["content"] and "img-src data:" in csp[0]["content"]
    assert page.all("html")[0]["lang"] == "en" and page.all("meta")[1]["name"] == "viewport"
    assert len(page.all("h1")) == 1 and len(page.all("h2")) >= 5
    assert all(th.get("scope") in ("col", "row") for th in page.all("th"))
    assert len(page.all("caption")) == len(page.all("table")) >= 2
    return page


# ----------------------------------------------------------------------------------------- without a browser
def test_report_embeds_every_picture_in_order_and_escapes_user_text(tmp_path):
    run = fake_run(tmp_path)
    report = write_report(run)
    assert report == run / "report.html"
    assert_self_contained(report, pictures=3)
    html = report.read_text()
    # The user's text is text: a class name cannot inject markup.
    assert HOSTILE not in html and "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html
    assert "tiny &lt;report&gt;" in html and "<report>" not in html
    # Known pictures in reading order with their sentence, then any other PNG by name.
    ids = [attrs["id"] for tag, attrs in Page(html).tags if tag == "figure"]
    assert ids == ["pic-curves", "pic-confusion", "pic-extra-picture"]
    for _file, title, how in PICTURES[:2]:
        assert f"<h3>{title}</h3>" in html and how.replace("'", "&#39;") in html
    # Header facts, summary and spec.
    for text in (
        "Wall time</dt>",
        "1 min 5 s",
        "cnnkit 0.1.0, TensorFlow 2.21.0, Keras 3.15.1, Python 3.11.7",
        f"cnnkit train {run / 'spec.yaml'}",
        "cnnkit train &#39;my spec.yaml&#39; --epochs 2",
        "Conv2D",
        "6×6×4",
        "475 parameters",  # conv 3·3·1·4+4 = 40, dense 6·6·4·3+3 = 435
        "filters: 4",
    ):
        assert text in html, text


def test_report_without_pictures_says_how_to_draw_them(tmp_path):
    run = fake_run(tmp_path, pictures=False)
    html = write_report(run).read_text()
    assert_self_contained(run / "report.html", pictures=0)
    assert "trained with <code>--no-pictures</code>" in html


@pytest.mark.slow  # imports TensorFlow (or starts a browser): not for make test-fast
def test_cnnkit_report_cli(tmp_path, monkeypatch):
    run = fake_run(tmp_path)
    opened = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or True)
    result = cli("report", run, "--open")
    assert result.output.strip() == f"wrote {run / 'report.html'}"
    assert opened == [(run / "report.html").resolve().as_uri()]
    monkeypatch.setattr("webbrowser.open", lambda url: False)
    result = cli("report", run, "--open", ok=False)
    assert result.exit_code == 2
    assert result.output.strip().endswith(
        f"Error: no web browser to open {run / 'report.html'} with (hint: open the file by hand)"
    )
    result = cli("report", tmp_path / "nowhere", ok=False)
    assert (result.exit_code, result.output.strip()) == (
        2,
        f"Error: run folder {tmp_path / 'nowhere'} does not exist (hint: pass a folder made by `cnnkit train`)",
    )


# ------------------------------------------------------------------------------------------- in a real browser
def assert_renders_in_chromium(report: Path, shots: Path) -> None:
    pictures = len(list((report.parent / "plots").glob("*.png")))
    for width in (1280, 390):
        seen = chromium.inspect(BROWSER, report, width=width)
        assert len(seen["images"]) == pictures
        for image in seen["images"]:
            assert image["complete"] and image["naturalWidth"] > 0, image  # every picture decoded
        assert seen["console_errors"] == []
        fetched = [u for u in seen["requests"] if not u.startswith(("data:", report.as_uri()))]
        assert fetched == [] and seen["failed"] == []
        assert seen["scrollWidth"] <= seen["innerWidth"] == width  # no sideways scrolling, even on a phone
        assert seen["headings"][1:4] == ["Run", "Metrics", "Per class"]
        shot = chromium.screenshot(BROWSER, report, shots / f"report-{width}.png", width=width)
        with Image.open(shot) as img:
            assert img.size[0] == width
            grey = np.asarray(img.convert("L"), dtype=np.float64)
        assert grey.std() > 20, f"the {width} px screenshot looks blank (std {grey.std():.1f})"
        assert (grey < 128).mean() > 0.01  # there is dark text on the page


@needs_browser
@pytest.mark.slow  # imports TensorFlow (or starts a browser): not for make test-fast
def test_report_in_chromium(tmp_path):
    run = fake_run(tmp_path)
    assert_renders_in_chromium(write_report(run), tmp_path)


@pytest.mark.slow
@pytest.mark.data
def test_mnist_two_epochs_leaves_a_report_that_renders(tmp_path):
    if not DATA_DIR or not (Path(DATA_DIR) / "mnist.npz").exists():
        pytest.skip("CNNKIT_DATA_DIR with mnist.npz not set: point it at ../shared/data (make test does)")
    root = Path(__file__).resolve().parents[1]
    cli(
        "train",
        root / "configs" / "mnist.yaml",
        "--epochs",
        2,
        "--set",
        "data.max_samples=2000",
        "--data-dir",
        DATA_DIR,
        "--out",
        tmp_path / "runs",
    )
    run = (tmp_path / "runs" / "latest").resolve()
    page = assert_self_contained(run / "report.html", pictures=7)
    # Written just before run.json says completed: the page says so too (it said "running after ? epoch(s)").
    assert "completed after 2 epoch(s)" in (run / "report.html").read_text()
    assert [f["id"] for f in page.all("figure")][:4] == [
        "pic-curves",
        "pic-confusion",
        "pic-misclassified",
        "pic-gradcam-misclassified",
    ]
    if BROWSER is None:
        pytest.skip("report.html written and checked; no Chromium on PATH to render it")
    assert_renders_in_chromium(run / "report.html", tmp_path)


@pytest.mark.slow
def test_three_channel_run_report_renders(rgb_digits_run, tmp_path):
    """Real digits tinted into RGB (each class its own colour cast), 3 epochs: conftest's rgb_digits_run, shared
    with test_train.py."""
    run = rgb_digits_run
    with Image.open(run / "plots" / "gradcam_misclassified.png") as img:
        pixels = np.asarray(img.convert("RGB"), dtype=np.int16)
    assert (np.abs(pixels[..., 0] - pixels[..., 2]) > 40).mean() > 0.02  # heat colours and colour inputs
    assert_self_contained(run / "report.html", pictures=7)
    if BROWSER is None:
        pytest.skip("report.html written and checked; no Chromium on PATH to render it")
    assert_renders_in_chromium(run / "report.html", tmp_path)

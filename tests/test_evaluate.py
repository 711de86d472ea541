"""`cnnkit evaluate`, `cnnkit predict` and `cnnkit plot ...` on one trained digits run, through the CLI.

One small run is trained once per session (conftest's digits_run, which test_train.py checks too) and copied for
this file; every test reads the copy, and the ones that write (eval.json, plots/) write different files, so the
order of the tests does not matter.
"""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from clitools import assert_picture, cli, refused
from PIL import Image

from cnnkit.viz.kernels import KERNELS

# Every test here reads one digits run trained by the module fixture.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
TEST_SIZE = 359  # digits: 1,797 images, test_split 0.2


@pytest.fixture(scope="module")
def run(digits_run, tmp_path_factory) -> Path:
    """This file's copy of conftest's digits_run (configs/digits.yaml, 3 epochs), without its pictures: every plot
    test here must write the file it checks."""
    import tensorflow as tf

    # Each CliRunner call loads the model afresh; TF then warns about retracing into a handler bound to an
    # earlier, closed capture stream. The warning is noise here.
    tf.get_logger().setLevel("ERROR")
    run = digits_run.copy(tmp_path_factory.mktemp("evaluate") / "runs")
    shutil.rmtree(run / "plots")
    return run


@pytest.fixture(scope="module")
def digit_png(run) -> Path:
    """Test image #0 of the run, as an 8x8 grayscale PNG (what a user would hand to predict)."""
    from cnnkit.data import load_splits
    from cnnkit.spec.parse import load_spec

    spec = load_spec(run / "spec.yaml")
    splits = load_splits(spec.data, seed=spec.train["seed"])
    path = run.parent / "digit.png"
    Image.fromarray(splits.x_test[0, :, :, 0], "L").save(path)
    return path


@pytest.fixture(scope="module")
def evaluation(run) -> dict:
    return json.loads(cli("evaluate", run, "--json").stdout)


# ------------------------------------------------------------------------------------------------ evaluate
def test_evaluate_json_and_eval_json(run, evaluation):
    assert {
        "model",
        "data",
        "samples",
        "metrics",
        "accuracy",
        "top_5_accuracy",
        "class_names",
        "confusion_matrix",
        "per_class",
    } <= set(evaluation)
    assert evaluation["model"] == str(run / "model.keras") and evaluation["samples"] == TEST_SIZE
    cm = np.array(evaluation["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == TEST_SIZE
    assert evaluation["accuracy"] == pytest.approx(np.trace(cm) / TEST_SIZE)
    assert evaluation["metrics"]["accuracy"] == pytest.approx(evaluation["accuracy"], abs=1e-6)
    # The same number the run recorded for its test split at the end of training.
    recorded = json.loads((run / "metrics.json").read_text())["test"]
    assert evaluation["metrics"]["loss"] == pytest.approx(recorded["loss"], rel=1e-4)
    assert evaluation["accuracy"] <= evaluation["top_5_accuracy"] <= 1.0
    per_class = evaluation["per_class"]
    assert [row["class"] for row in per_class] == [str(i) for i in range(10)]
    assert [row["support"] for row in per_class] == cm.sum(axis=1).tolist()
    assert all(0 <= row[k] <= 1 for row in per_class for k in ("precision", "recall", "f1"))
    assert json.loads((run / "eval.json").read_text()) == evaluation


def test_evaluate_text_has_confusion_matrix_and_per_class_table(run):
    text = cli("evaluate", run).stdout
    assert f"{TEST_SIZE} test samples" in text and "accuracy 0." in text and "top-5" in text
    assert "Confusion matrix (rows: true class, columns: predicted)" in text and "true \\ pred" in text
    assert "Per-class scores" in text and "precision" in text and "support" in text


def test_evaluate_top_k_and_the_parent_folder(run, evaluation):
    result = json.loads(cli("evaluate", run.parent, "--json", "--top-k", "2").stdout)  # the parent: via `latest`
    assert "top_5_accuracy" not in result
    assert evaluation["accuracy"] <= result["top_2_accuracy"] <= evaluation["top_5_accuracy"]


def test_evaluate_bare_model_file_needs_data(run, tmp_path, evaluation):
    bare = tmp_path / "digits.keras"
    shutil.copy(run / "model.keras", bare)
    assert refused("evaluate", bare) == (
        f"Error: {bare} is a bare model file: say which data to use with --data (a dataset name such as mnist, "
        "or an .npz file)\n"
    )
    result = json.loads(cli("evaluate", bare, "--data", "digits", "--json").stdout)
    # The same test images (the test cut depends only on seed and test_split), so the same confusion matrix.
    assert result["samples"] == TEST_SIZE and result["confusion_matrix"] == evaluation["confusion_matrix"]
    assert not (tmp_path / "eval.json").exists()  # a bare file has no run folder to write into
    assert refused("evaluate", bare, "--data", "nosuch") == (
        "Error: --data 'nosuch' is neither a dataset name (digits, mnist, fashion_mnist, cifar10, cifar100, npz, "
        "image_folder, csv) nor an .npz/.csv file or image folder\n"
    )


def _keras_with_extra_member(run: Path, path: Path) -> Path:
    with zipfile.ZipFile(run / "model.keras") as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        dst.writestr("extra.py", "print('hi')")
    return path


@pytest.mark.parametrize("command", ["evaluate", "predict"])
@pytest.mark.parametrize("case", ["h5", "missing_run", "missing_keras", "not_a_run", "extra_member"])
def test_refused_model_files(case, command, run, tmp_path, digit_png):
    if case == "h5":
        target = tmp_path / "model.h5"
        target.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
        expected = f"Error: {target}: expected a run folder or a .keras model file\n"
    elif case == "missing_run":
        target = tmp_path / "no-such-run"
        expected = f"Error: run folder {target} does not exist (hint: pass a folder made by `cnnkit train`)\n"
    elif case == "missing_keras":
        target = tmp_path / "gone.keras"
        expected = f"Error: {target}: expected a .keras file, found no such file\n"
    elif case == "not_a_run":
        target = tmp_path
        expected = (
            f"Error: {target} is not a cnnkit run folder (no spec.yaml) (hint: pass a folder made by `cnnkit train`)\n"
        )
    else:
        target = _keras_with_extra_member(run, tmp_path / "extra.keras")
        expected = (
            f"Error: {target}: expected only the zip members config.json, metadata.json, model.weights.h5, "
            "found the extra member 'extra.py'\n"
        )
    args = [command, target] + (
        [digit_png] if command == "predict" else ["--data", "digits"] * (case == "extra_member")
    )
    assert refused(*args) == expected


# ------------------------------------------------------------------------------------------------- predict
def test_predict_an_image(run, digit_png):
    text = cli("predict", run, digit_png).stdout
    assert text.startswith(f"{digit_png}: ") and text.count("\n") == 1 and text.count("%") == 3  # --top 3

    rows = json.loads(cli("predict", run, digit_png, "--json", "--top", "2").stdout)
    assert len(rows) == 1 and rows[0]["input"] == str(digit_png)
    top = rows[0]["top"]
    assert len(top) == 2 and rows[0]["class"] == top[0]["class"] in [str(i) for i in range(10)]
    assert 1 >= top[0]["probability"] >= top[1]["probability"] >= 0


def test_predict_agrees_with_evaluate_on_test_images(run, tmp_path, digit_png):
    """An .npz of test images: one row per image, and the PNG of image #0 gets the same answer as the array."""
    from cnnkit.data import load_splits
    from cnnkit.spec.parse import load_spec

    spec = load_spec(run / "spec.yaml")
    x = load_splits(spec.data, seed=spec.train["seed"]).x_test[:5]
    npz = tmp_path / "five.npz"
    np.savez(npz, x_test=x[..., 0])  # (N, H, W): the channel axis is optional
    rows = json.loads(cli("predict", run, npz, digit_png, "--json", "--top", "1").stdout)
    assert [r["input"] for r in rows] == [f"five.npz[{i}]" for i in range(5)] + [str(digit_png)]
    assert rows[0]["top"][0]["probability"] == pytest.approx(rows[5]["top"][0]["probability"], abs=1e-5)
    assert rows[0]["class"] == rows[5]["class"]


def test_predict_refuses_bad_inputs(run, tmp_path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"GIF89a but not really")
    assert refused("predict", run, corrupt) == (
        f"Error: {corrupt}: not a readable image (cannot identify image file '{corrupt}')\n"
    )
    missing = tmp_path / "missing.png"
    assert refused("predict", run, missing) == f"Error: {missing}: file not found\n"
    npz = tmp_path / "labels.npz"
    np.savez(npz, y=np.arange(3))
    assert refused("predict", run, npz) == (
        f"Error: {npz}: no image array found; expected one of x_test, x, images, x_train (found: y)\n"
    )


# --------------------------------------------------------------------------------------------------- plots
def test_plot_curves_and_confusion(run):
    assert cli("plot", "curves", run).stdout == f"wrote {run / 'plots' / 'curves.png'}\n"
    assert_picture(run / "plots" / "curves.png")
    assert cli("plot", "confusion", run).stdout == (
        f"wrote {run / 'plots' / 'confusion.png'}\nwrote {run / 'plots' / 'misclassified.png'}\n"
    )
    assert_picture(run / "plots" / "confusion.png")
    assert_picture(run / "plots" / "misclassified.png")


def test_plot_filters_default_and_layer(run, tmp_path):
    cli("plot", "filters", run, "--out", tmp_path / "first.png")
    cli("plot", "filters", run, "--layer", "3", "--out", tmp_path / "third.png")  # the 64-filter conv
    assert_picture(tmp_path / "first.png")
    assert_picture(tmp_path / "third.png")
    with Image.open(tmp_path / "first.png") as a, Image.open(tmp_path / "third.png") as b:
        assert np.asarray(a).shape != np.asarray(b).shape or not np.array_equal(np.asarray(a), np.asarray(b))


def test_plot_feature_maps_index_and_image(run, tmp_path, digit_png):
    cli("plot", "feature-maps", run, "--index", "3", "--out", tmp_path / "index3.png")
    cli("plot", "feature-maps", run, "--image", digit_png, "--out", tmp_path / "image.png")
    rgb = tmp_path / "rgb.png"  # a larger colour image is converted to the model's 8x8 grey input
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(rgb)
    cli("plot", "feature-maps", run, "--image", rgb, "--out", tmp_path / "rgb_maps.png")
    for name in ("index3.png", "image.png", "rgb_maps.png"):
        assert_picture(tmp_path / name)


def test_plot_architecture_and_kernels(tmp_path, digit_png):
    cli("plot", "architecture", REPO / "configs" / "mnist.yaml", "--out", tmp_path / "arch.png")
    assert_picture(tmp_path / "arch.png")
    out = cli(
        "plot", "kernels", digit_png, "--kernel", "sobel_x", "--kernel", "sharpen", "--out", tmp_path / "kernels.png"
    ).stdout
    assert out == f"wrote {tmp_path / 'kernels.png'}\n"
    assert_picture(tmp_path / "kernels.png")


@pytest.fixture(scope="module")
def dense_only_model(tmp_path_factory) -> Path:
    """A model whose input is a flat vector: no image can be fed to it, and it has no conv layer."""
    import keras

    path = tmp_path_factory.mktemp("dense") / "dense.keras"
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, activation="softmax")])
    model.save(path)
    return path


def test_plot_refusals(run, tmp_path, digit_png, dense_only_model):
    assert refused("plot", "filters", run, "--layer", "99") == (
        "Error: layer index 99 is out of range: the model has 9 layers (0..8)\n"
    )
    # Keras numbers auto-named layers per process (flatten, flatten_1, ...): the name depends on earlier tests.
    assert re.fullmatch(
        r"Error: layer 5 \(flatten(_\d+)?\) has no convolution kernel; conv layers: 0, 1, 3\n",
        refused("plot", "filters", run, "--layer", "5"),
    )
    assert refused("plot", "feature-maps", run, "--index", "99999") == (
        f"Error: test image #99999 does not exist: the test split has {TEST_SIZE} images (0..{TEST_SIZE - 1})\n"
    )
    assert refused("plot", "feature-maps", dense_only_model, "--image", digit_png) == (
        f"Error: {digit_png}: the model's input (64,) is not an image\n"
    )
    assert re.fullmatch(
        r"Error: model 'sequential(_\d+)?' has no convolution layer to show filters of\n",
        refused("plot", "filters", dense_only_model),
    )
    missing = tmp_path / "no-such-run"
    for command in ("curves", "confusion", "filters", "feature-maps"):
        assert refused("plot", command, missing) == (
            f"Error: run folder {missing} does not exist (hint: pass a folder made by `cnnkit train`)\n"
        )
    assert refused("plot", "kernels", digit_png, "--kernel", "nope", "--out", tmp_path / "k.png") == (
        f"Error: unknown kernel 'nope': expected one of {', '.join(sorted(KERNELS))}\n"
    )
    assert not (tmp_path / "k.png").exists()


def test_metrics_from_one_pass_equal_keras_evaluate(run):
    """evaluate computes loss/metrics from its single predict pass; they must equal model.evaluate."""
    from cnnkit.backend import tensorflow
    from cnnkit.run.evaluate import evaluate, load_test_split, resolve_target
    from cnnkit.run.modelfile import load_model

    tf = tensorflow()
    result = evaluate(run)
    target = resolve_target(run)
    model = load_model(target.model_path)
    x, y, _ = load_test_split(target, None, None, model)
    ds = (
        tf.data.Dataset.from_tensor_slices((x, tf.keras.utils.to_categorical(y, 10)))
        .batch(64)
        .map(lambda b, t: (tf.cast(b, tf.float32) / 255.0, t))
    )
    reference = model.evaluate(ds, verbose=0, return_dict=True)
    assert result.metrics.keys() == reference.keys()
    for key, value in reference.items():
        assert abs(result.metrics[key] - value) < 1e-5, key


def test_metrics_from_one_pass_ignore_the_models_earlier_state(run):
    """At the end of `train` the model's metric objects still hold the last validation pass; the test metrics from
    the one predict pass must not add onto them (they did: test accuracy 0.904 beside an argmax accuracy of 0.919)."""
    from cnnkit.run.evaluate import evaluate_arrays, load_test_split, resolve_target
    from cnnkit.run.modelfile import load_model

    target = resolve_target(run)
    model = load_model(target.model_path)
    x, y, _ = load_test_split(target, None, None, model)
    wrong = (y + 1) % 10  # a pass whose every prediction counts as wrong, left in the metric objects
    evaluate_arrays(model, x, wrong, None)
    result = evaluate_arrays(model, x, y, None)
    assert result.metrics["accuracy"] == pytest.approx(result.accuracy, abs=1e-6)


# ------------------------------------------------------------------------------------------------ test-time flips
def test_flipped_views_flip_width_and_height_and_keep_the_models_layout():
    from cnnkit.data.feed import Feed
    from cnnkit.errors import DataError
    from cnnkit.run.evaluate import FLIP_AXES, flipped_views
    from cnnkit.spec import options

    assert tuple(FLIP_AXES) == options.TEST_TIME_FLIPS  # the evaluator knows every mode the spec accepts
    x = np.arange(2 * 3 * 4 * 2, dtype=np.uint8).reshape(2, 3, 4, 2)  # (N, H, W, C)
    channels_last = Feed(False, False, options.SPARSE)
    assert flipped_views(x, None, channels_last) == []
    (h,) = flipped_views(x, "horizontal", channels_last)
    np.testing.assert_array_equal(h, x[:, :, ::-1, :])
    (v,) = flipped_views(x, "vertical", channels_last)
    np.testing.assert_array_equal(v, x[:, ::-1, :, :])
    both = flipped_views(x, "horizontal_and_vertical", channels_last)
    np.testing.assert_array_equal(np.stack(both), np.stack([x[:, :, ::-1], x[:, ::-1], x[:, ::-1, ::-1]]))
    (h_first,) = flipped_views(x, "horizontal", Feed(False, True, options.SPARSE))  # a (C, H, W) model
    np.testing.assert_array_equal(h_first, x[:, :, ::-1, :].transpose(0, 3, 1, 2))
    with pytest.raises(DataError, match="test-time flips need a model that takes images"):
        flipped_views(x[..., :1], "horizontal", Feed(True, False, options.SPARSE))  # a Conv1D model reading rows


def test_evaluate_with_test_time_flip_averages_the_views(run, evaluation):
    from cnnkit.run.evaluate import load_test_split, predict_probabilities, resolve_target
    from cnnkit.run.modelfile import load_model

    flipped = json.loads(cli("evaluate", run, "--json", "--test-time-flip", "horizontal").stdout)
    assert flipped["test_time_flip"] == "horizontal"
    assert flipped["single_view_accuracy"] == pytest.approx(evaluation["accuracy"])
    assert "test_time_flip" not in evaluation  # the run's spec has none: one view
    target = resolve_target(run)
    model = load_model(target.model_path)
    x, y, _ = load_test_split(target, None, None, model)
    mean = (predict_probabilities(model, x) + predict_probabilities(model, x[:, :, ::-1])) / 2
    assert flipped["accuracy"] == pytest.approx(float((mean.argmax(axis=1) == y).mean()))
    assert flipped["accuracy"] != evaluation["accuracy"]  # digits are not mirror-symmetric: the views disagree
    text = cli("evaluate", run, "--test-time-flip", "horizontal").stdout
    assert f"the images alone: accuracy {evaluation['accuracy']:.4f}" in text
    none = json.loads(cli("evaluate", run, "--json", "--test-time-flip", "none").stdout)
    assert none["accuracy"] == evaluation["accuracy"] and "test_time_flip" not in none


def test_evaluate_refuses_an_unknown_test_time_flip(run):
    assert refused("evaluate", run, "--test-time-flip", "diagonal").strip() == (
        "Error: --test-time-flip must be one of horizontal, vertical, horizontal_and_vertical or none. "
        "Received: 'diagonal'."
    )

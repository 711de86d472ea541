"""Residual blocks: parsing and its one-line errors, the summary through a block (shapes, params, MACs, receptive
field) without TensorFlow, exactness against Keras (fixed and random nests), model files, and a tiny run that
evaluates, predicts and draws its pictures."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from clitools import cli
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from cnnkit.errors import ModelFileError, SpecError
from cnnkit.spec.parse import load_spec_text
from cnnkit.spec.summary import summarize

RESNET = """\
name: tiny resnet
input_shape: [8, 8, 1]
layers:
  - Conv2D: {filters: 4, kernel_size: 3, padding: same}
  - Residual:
      layers:
        - Conv2D: {filters: 4, kernel_size: 3, padding: same, activation: relu}
        - BatchNormalization
        - Residual: {layers: [Conv2D: {filters: 4, kernel_size: 3, padding: same}]}
  - Residual:
      shortcut: projection
      layers:
        - Conv2D: {filters: 8, kernel_size: 3, strides: 2, padding: same}
        - Conv2D: {filters: 8, kernel_size: 3, padding: same}
  - GlobalAveragePooling2D
  - Dense: {units: 10, activation: softmax}
data: {dataset: digits, max_samples: 200}
train: {optimizer: adam, epochs: 1, batch_size: 32}
"""


def _spec(layers: str, input_shape="[8, 8, 4]"):
    return load_spec_text(f"input_shape: {input_shape}\nlayers:\n{layers}", "spec.yaml")


def _error(layers: str, input_shape="[8, 8, 4]") -> str:
    with pytest.raises(SpecError) as info:
        _spec(layers, input_shape)
    return str(info.value)


# --- parsing and errors --------------------------------------------------------------------------


def test_nested_blocks_parse_with_their_labels():
    spec = load_spec_text(RESNET, "resnet.yaml")
    block = spec.layers[1]
    assert block.type == "Residual" and block.shortcut == "identity"
    assert [layer.type for layer in block.layers] == ["Conv2D", "BatchNormalization", "Residual"]
    assert block.layers[2].layers[0].label == "layers[1].Residual.layers[2].Residual.layers[0] Conv2D"
    assert spec.layers[2].shortcut == "projection"


@pytest.mark.parametrize(
    "layers, message",
    [
        (
            "  - Residual: {layers: [Conv2D: {filters: 4, kernel_size: 3}]}\n",
            "spec.yaml:3: layers[0] Residual: shortcut identity adds the block's input 8×8×4 to its output 6×6×4; "
            "the shapes differ (hint: use shortcut: projection (a 1×1 convolution), or keep the shape (padding: same, "
            "filters = input channels, strides 1))",
        ),
        (
            "  - Residual:\n      layers:\n        - Conv2D: {filters: 4, kernel_size: 3, filtres: 2}\n",
            "spec.yaml:5: layers[0].Residual.layers[0].Conv2D.filtres: unknown argument 'filtres' for Conv2D "
            "(hint: did you mean 'filters'?)",
        ),
        (
            "  - Residual: {layers: [Conv2D: {filters: 8, kernel_size: 3}], shortcut: projection}\n",
            "spec.yaml:3: layers[0] Residual: shortcut projection (1×1 conv, stride 1×1) turns the block's input "
            "8×8×4 into 8×8×8, but the block's layers output 6×6×8 (hint: use padding: same inside the block so "
            "that only strides change the size)",
        ),
        (
            "  - Residual: {layers: [Flatten], shortcut: projection}\n",
            "spec.yaml:3: layers[0] Residual: shortcut projection needs input and output maps of the same rank "
            "(2 to 4 axes, channels_last); the block's input is 8×8×4, its output 256 (hint: keep Flatten, Dense "
            "and global pooling outside the Residual block)",
        ),
        (
            "  - Residual: {layers: [UpSampling2D, MaxPooling2D], shortcut: projection}\n",
            None,  # upsampling then pooling gives the input shape back: identity, accepted
        ),
        (
            "  - Residual: {layers: [UpSampling2D], shortcut: projection}\n",
            "spec.yaml:3: layers[0] Residual: shortcut projection cannot follow upsampling, reshaping or transposed "
            "convolutions: the block's input is 8×8×4, its output 16×16×4 (hint: keep the shape inside the block, "
            "or move those layers outside it)",
        ),
        (
            "  - Residual: {layers: [Conv1D: {filters: 4, kernel_size: 3}]}\n",
            "spec.yaml:3: layers[0].Residual.layers[0] Conv1D expects input of rank 2 (steps, channels) but receives "
            "8×8×4 (rank 3) as the block's input",
        ),
        ("  - Residual: {shortcut: identity}\n", "spec.yaml:3: layers[0].Residual: Residual needs `layers`"),
        ("  - Residual: {layers: []}\n", "spec.yaml:3: layers[0].Residual.layers: must be a non-empty list"),
        (
            "  - Residual: {layers: [Flatten], shortcut: add}\n",
            "spec.yaml:3: layers[0].Residual.shortcut: ",
        ),
        (
            "  - Residual: {layers: [Flatten], short: identity}\n",
            "spec.yaml:3: layers[0].Residual.short: unknown key 'short' in Residual arguments (hint: did you mean "
            "'shortcut'?)",
        ),
        ("  - Residual: [Conv2D]\n", "spec.yaml:3: layers[0].Residual: arguments must be a mapping"),
    ],
)
def test_block_errors_are_one_line_and_pinned(layers, message):
    if message is None:
        assert _spec(layers).layers[0].type == "Residual"
        return
    text = _error(layers)
    assert "\n" not in text
    assert text.startswith(message), text


def test_unknown_layer_suggests_the_block():
    assert "did you mean 'Residual'?" in _error("  - Residul: {layers: [Flatten]}\n")


def test_cli_error_is_exit_2_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("input_shape: [8, 8, 4]\nlayers:\n  - Residual: {layers: [Conv2D: {filters: 4, kernel_size: 3}]}\n")
    result = cli("summary", path, ok=False)
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: {path}:3: layers[0] Residual: shortcut identity adds the block's input 8×8×4 to its output 6×6×4; "
        "the shapes differ (hint: use shortcut: projection (a 1×1 convolution), or keep the shape (padding: same, "
        "filters = input channels, strides 1))"
    ]


# --- summary without TensorFlow ------------------------------------------------------------------


def test_summary_through_blocks():
    summary = summarize(load_spec_text(RESNET, "resnet.yaml"))
    rows = summary.layers
    assert [r.type for r in rows] == ["Conv2D", "Residual", "Residual", "GlobalAveragePooling2D", "Dense"]
    first, second = rows[1], rows[2]
    # identity block: 3×3 conv (148) + BN (8 trainable, 8 moving) + nested 3×3 conv (148)
    assert (first.output_shape, first.params, first.trainable_params) == ([8, 8, 4], 312, 304)
    assert [c.type for c in first.children] == ["Conv2D", "BatchNormalization", "Residual"]
    assert first.children[2].children[0].params == 148
    # receptive field: 3 (stem), +2, +2 through the block; the block's RF is its main path's
    assert [c.receptive_field for c in first.children] == [5, 5, 7] and first.receptive_field == 7
    # projection block: 3×3/2 conv 4→8 (296) + 3×3 conv 8→8 (584) + 1×1/2 projection 4→8 (40)
    assert (second.output_shape, second.params) == ([4, 4, 8], 296 + 584 + 40)
    assert second.macs == 16 * 8 * 36 + 16 * 8 * 72 + 16 * 8 * 4
    assert (second.receptive_field, second.jump) == (7 + 2 + 2 * 2, 2)
    assert "projection shortcut: 1×1 conv 4→8, stride 2×2 (40 params)" in second.arithmetic
    assert summary.total_params == 40 + 312 + 920 + 90
    data = summary.to_dict()
    assert data["layers"][1]["children"][2]["children"][0]["output_shape"] == [8, 8, 4]
    # activations: every output, those inside blocks included
    inner = 3 * 256 + 256 + 2 * 128
    assert summary.activation_bytes == 4 * (64 + 256 + 256 + 128 + 8 + 10 + inner)


def test_frozen_block_moves_every_inner_param_to_non_trainable():
    spec = _spec(
        "  - Residual:\n      trainable: false\n      layers:\n"
        "        - Conv2D: {filters: 4, kernel_size: 3, padding: same}\n"
        "        - Residual: {layers: [BatchNormalization]}\n"
    )
    row = summarize(spec).layers[0]
    assert (row.trainable_params, row.non_trainable_params) == (0, 148 + 16)
    assert row.children[1].children[0].trainable_params == 0


def test_summary_of_a_residual_spec_never_imports_tensorflow(tmp_path):
    path = tmp_path / "resnet.yaml"
    path.write_text(RESNET)
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom cnnkit.cli import app\n"
        f"r = CliRunner().invoke(app, ['summary', {str(path)!r}])\nassert r.exit_code == 0, r.output\n"
        "assert '1.2.0' in r.output, r.output\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_architecture_picture_names_the_block(tmp_path):
    from cnnkit.viz import architecture

    summary = summarize(load_spec_text(RESNET, "resnet.yaml")).to_dict()
    assert architecture.plot_architecture(summary, tmp_path / "arch.png").stat().st_size > 1000
    texts = [t.text for t in architecture.layout(summary).texts]
    assert any("[Conv2D+BatchNorm+Residual]" in t for t in texts), texts
    assert any("projection shortcut" in t for t in texts), texts


# --- Keras ---------------------------------------------------------------------------------------


def _keras_rows(spec):
    from cnnkit.run.build import build_model

    model = build_model(spec)
    return model, [
        (
            [int(d) for d in layer.output.shape[1:]],
            int(layer.count_params()),
            sum(math.prod(w.shape) for w in layer.trainable_weights),
        )
        for layer in model.layers
    ]


def _ours(spec):
    return [(r.output_shape, r.params, r.trainable_params) for r in summarize(spec).layers]


def test_summary_equals_keras_and_the_block_adds_its_input():
    spec = load_spec_text(RESNET, "resnet.yaml")
    model, rows = _keras_rows(spec)
    assert rows == _ours(spec)
    block = model.layers[1]
    assert type(block).__name__ == "Residual" and block.shortcut is None
    assert model.layers[2].shortcut is not None  # the projection
    x = np.random.default_rng(0).random((2, 8, 8, 4), dtype=np.float32)
    inner = x
    for layer in block.inner:
        inner = layer(inner, training=False)
    np.testing.assert_allclose(block(x, training=False).numpy(), inner.numpy() + x, rtol=1e-5, atol=1e-5)


@st.composite
def residual_nests(draw, depth=0):
    """A Residual entry over 8×8×4 maps: inner layers that keep or change the shape, nested blocks."""
    layers = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["conv", "conv", "bn", "act", "pool", "nest"] if depth < 2 else ["conv", "bn"]))
        if kind == "conv":
            args = {"filters": draw(st.sampled_from([4, 6])), "kernel_size": draw(st.sampled_from([1, 3]))}
            args["padding"] = "valid" if draw(st.integers(0, 7)) == 0 else "same"  # valid: mostly refused
            if draw(st.integers(0, 3)) == 0:
                args["strides"] = 2
            if draw(st.booleans()):
                args["use_bias"] = False
            layers.append({draw(st.sampled_from(["Conv2D", "SeparableConv2D"])): args})
        elif kind == "bn":
            layers.append("BatchNormalization" if draw(st.booleans()) else {"BatchNormalization": {"center": False}})
        elif kind == "act":
            layers.append({"Activation": {"activation": "relu"}})
        elif kind == "pool":
            layers.append({"MaxPooling2D": {"pool_size": 2, "padding": "same"}})
        else:
            layers.append(draw(residual_nests(depth + 1)))
    block = {"layers": layers, "shortcut": draw(st.sampled_from(["identity", "projection", "projection"]))}
    if draw(st.integers(0, 4)) == 0:
        block["trainable"] = False
    return {"Residual": block}


@pytest.mark.slow  # imports TensorFlow (or starts a browser): not for make test-fast
def test_random_residual_nests_match_keras():
    """cnnkit accepts -> Keras builds the same shapes, params and trainable split, and runs it; cnnkit refuses ->
    the one-line error names the block and both shapes. Most drawn nests must be accepted."""
    accepted, refused = [], []

    @settings(
        max_examples=30,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(first=residual_nests(), second=residual_nests())
    def check(first, second):
        from cnnkit.backend import keras

        text = yaml.safe_dump({"input_shape": [8, 8, 4], "layers": [first, second, "Flatten"]}, sort_keys=False)
        note(text)
        try:
            spec = load_spec_text(text, "random.yaml")
        except SpecError as error:
            assert "Residual" in str(error) and "×" in str(error) and "\n" not in str(error), str(error)
            refused.append(text)
            return
        keras().backend.clear_session()
        model, rows = _keras_rows(spec)
        ours = summarize(spec)
        assert rows == _ours(spec)
        assert [r.non_trainable_params for r in ours.layers] == [
            sum(math.prod(w.shape) for w in layer.non_trainable_weights) for layer in model.layers
        ]
        out = model(np.ones((1, 8, 8, 4), "float32"), training=False)
        assert list(out.shape[1:]) == ours.layers[-1].output_shape
        accepted.append(text)

    check()
    assert len(accepted) >= 10 and refused, (len(accepted), len(refused))


# --- model files ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from cnnkit.run.build import build_model

    spec = load_spec_text(RESNET, "resnet.yaml")
    model = build_model(spec)
    path = tmp_path_factory.mktemp("saved") / "resnet.keras"
    model.save(path)
    x = np.random.default_rng(1).random((3, 8, 8, 1), dtype=np.float32)
    return path, model, x


def test_model_file_round_trips_through_the_inspector(saved):
    from cnnkit.run import modelfile

    path, model, x = saved
    config = modelfile.inspect_keras_file(path)
    block = config["config"]["layers"][2]
    assert (block["module"], block["class_name"], block["registered_name"]) == (
        "cnnkit.run.blocks",
        "Residual",
        "cnnkit>Residual",
    )
    loaded = modelfile.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def _tampered(src: Path, dst: Path, edit) -> Path:
    with zipfile.ZipFile(src) as zin:
        contents = {name: zin.read(name) for name in zin.namelist()}
    config = json.loads(contents["config.json"])
    edit(config["config"]["layers"][2])
    contents["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(dst, "w") as zout:
        for name, data in contents.items():
            zout.writestr(name, data)
    return dst


@pytest.mark.parametrize(
    "edit, tail",
    [
        (
            lambda b: b["config"]["block"]["layers"].append({"Lambda": {"function": "eval"}}),
            "$.config.layers[2].config.block: expected a block a cnnkit spec could hold, found block: "
            "layers[0].Residual.layers[3]: unknown layer type 'Lambda'",
        ),
        (
            lambda b: b.__setitem__("registered_name", "evil>Residual"),
            "$.config.layers[2].registered_name: expected 'cnnkit>Residual', found 'evil>Residual'",
        ),
        (
            lambda b: b.__setitem__("module", "cnnkit.run.train"),
            "$.config.layers[2]: expected a keras.layers class that cnnkit builds "
            "(cnnkit.spec.layers.KERAS_CLASSES) or a cnnkit block (Residual, Stack, Backbone), found 'cnnkit.run.train.Residual'",
        ),
        (
            lambda b: b["config"]["block"].__setitem__("shortcut", "os.system"),
            "$.config.layers[2].config.block: expected a block a cnnkit spec could hold, found block: "
            "layers[0].Residual.shortcut: ",
        ),
        (
            lambda b: b["config"].__setitem__("block", "x"),
            "$.config.layers[2].config.block: expected the block as a spec writes it",
        ),
    ],
)
def test_tampered_block_is_refused_before_keras(saved, tmp_path, monkeypatch, edit, tail):
    import keras

    from cnnkit.run import modelfile

    monkeypatch.setattr(keras.saving, "load_model", lambda *a, **k: pytest.fail("Keras was reached"))
    path = _tampered(saved[0], tmp_path / "t.keras", edit)
    with pytest.raises(ModelFileError) as info:
        modelfile.load_model(path)
    assert str(info.value).startswith(f"{path}: config.json: {tail}"), str(info.value)


# --- a run: train, evaluate, predict, pictures -----------------------------------------------------


@pytest.mark.slow
def test_residual_run_trains_evaluates_predicts_and_draws(tmp_path):
    spec = tmp_path / "resnet.yaml"
    spec.write_text(RESNET)
    cli("train", spec, "--out", tmp_path / "runs")
    run = (tmp_path / "runs" / "latest").resolve()
    for name in ("architecture.png", "feature_maps.png", "filters.png", "confusion.png"):
        assert (run / "plots" / name).stat().st_size > 1000, name
    result = cli("evaluate", run, "--json")
    assert "accuracy" in json.loads(result.output)
    image = Path(__file__).resolve().parent.parent / "docs" / "img" / "digit8.png"
    if image.exists():
        from PIL import Image

        small = tmp_path / "digit.png"
        Image.open(image).convert("L").resize((8, 8)).save(small)
        answer = cli("predict", run, small).output
        assert answer.startswith(f"{small}: ") and answer.count("%") == 3, answer
    from cnnkit.run.modelfile import load_model
    from cnnkit.viz.probe import feature_maps

    model = load_model(run / "model.keras")
    names = [name for name, _ in feature_maps(model, np.zeros((8, 8, 1), "float32"))]
    # the stem conv and both blocks' outputs (the nested block sits inside the first one)
    assert len(names) == 3 and names[0] == model.layers[0].name, names
    assert names[1:] == [model.layers[1].name, model.layers[2].name], names


def test_json_schema_takes_nested_blocks_and_refuses_typos():
    import jsonschema

    from cnnkit.spec.schema import spec_schema

    schema, doc = spec_schema(), yaml.safe_load(RESNET)
    jsonschema.validate(doc, schema)
    doc["layers"][1]["Residual"]["layers"][2]["Residual"]["shortcutt"] = "identity"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)


# --- FromRun -------------------------------------------------------------------------------------

SOURCE = """\
name: source
input_shape: [8, 8, 1]
layers:
  - Conv2D: {filters: 4, kernel_size: 3, padding: same, activation: relu, name: stem}
  - BatchNormalization
  - Residual: {layers: [Conv2D: {filters: 4, kernel_size: 3, padding: same}], name: res}
  - MaxPooling2D: {pool_size: 2, name: pool}
  - Flatten
  - Dense: {units: 10, activation: softmax}
data: {dataset: digits}
"""


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """A run folder as `cnnkit train` leaves it, as far as FromRun reads it: spec.yaml and model.keras."""
    from cnnkit.run.build import build_model

    folder = tmp_path_factory.mktemp("runs") / "source-1"
    folder.mkdir()
    (folder / "spec.yaml").write_text(SOURCE)
    model = build_model(load_spec_text(SOURCE, "source.yaml"))
    rng = np.random.default_rng(3)
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
    model.save(folder / "model.keras")
    return folder, model


def _transfer(run, until="pool", extra=""):
    return (
        f"name: transfer\ninput_shape: [8, 8, 1]\nlayers:\n  - FromRun: {{run: {run}, until: {until}{extra}}}\n"
        "  - Flatten\n  - Dense: {units: 3, activation: softmax}\n"
    )


def test_from_run_summary_reads_the_runs_spec_without_tensorflow(source_run, tmp_path):
    folder, _ = source_run
    spec = load_spec_text(_transfer(folder), "t.yaml")
    row = summarize(spec).layers[0]
    assert (row.type, row.output_shape) == ("FromRun", [4, 4, 4])
    assert [c.type for c in row.children] == ["Conv2D", "BatchNormalization", "Residual", "MaxPooling2D"]
    # frozen by default: 40 + 16 + 148 params, all non-trainable; the receptive field runs through the run's layers
    assert (row.params, row.trainable_params) == (40 + 16 + 148, 0)
    assert row.receptive_field == 6 and row.jump == 2
    assert yaml.safe_load(spec.resolved_yaml())["layers"][0]["FromRun"]["run"] == str(folder.resolve())
    path = tmp_path / "t.yaml"
    path.write_text(_transfer(folder, until=2))
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom cnnkit.cli import app\n"
        f"r = CliRunner().invoke(app, ['summary', {str(path)!r}])\nassert r.exit_code == 0, r.output\n"
        "assert 'FromRun' in r.output and '0.2.0' in r.output, r.output\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_from_run_errors(source_run, tmp_path):
    folder, _ = source_run

    def error(text):
        with pytest.raises(SpecError) as info:
            load_spec_text(text, "t.yaml")
        return str(info.value)

    assert error(_transfer(tmp_path / "nope")) == (
        f"t.yaml:4: layers[0].FromRun.run: expected a cnnkit run folder (with spec.yaml and model.keras), found no "
        f"such folder: {tmp_path / 'nope'} (hint: pass a folder made by `cnnkit train`, e.g. runs/latest)"
    )
    assert error(_transfer(folder, until=9)) == (
        f"t.yaml:4: layers[0].FromRun.until: run {folder} has layers 0..5. Received: until=9."
    )
    assert error(_transfer(folder, until="stemm")) == (
        f"t.yaml:4: layers[0].FromRun.until: run {folder} has no layer named 'stemm' (hint: its named layers: "
        "stem, res, pool)"
    )
    assert error(_transfer(folder).replace("[8, 8, 1]", "[8, 8, 3]")) == (
        f"t.yaml:4: layers[0] FromRun: run {folder} takes input 8×8×1 but receives 8×8×3 (hint: set input_shape: "
        "[8, 8, 1] (or resize the data to it))"
    )
    assert error(_transfer(folder, extra=", trianable: true")).startswith(
        "t.yaml:4: layers[0].FromRun.trianable: unknown key 'trianable' in FromRun arguments (hint: did you mean "
    )


def test_from_run_carries_the_runs_weights_and_saves_without_the_run(source_run, tmp_path):
    import shutil

    from cnnkit.run import modelfile
    from cnnkit.run.build import build_model

    folder, source = source_run
    spec = load_spec_text(_transfer(folder, extra=", trainable: true"), "t.yaml")
    model = build_model(spec)
    stack = model.layers[0]
    assert type(stack).__name__ == "Stack" and len(stack.inner) == 4
    for mine, theirs in zip(stack.inner, source.layers):
        for a, b in zip(mine.get_weights(), theirs.get_weights()):
            np.testing.assert_array_equal(a, b)
    assert _ours(spec) == _keras_rows(spec)[1]  # trainable: true -> the BN's moving stats stay non-trainable only
    x = np.random.default_rng(0).random((2, 8, 8, 1), dtype=np.float32)
    y = model.predict(x, verbose=0)
    copy = tmp_path / "run-copy"
    shutil.copytree(folder, copy)
    moved = build_model(load_spec_text(_transfer(copy), "t.yaml"))
    moved.save(tmp_path / "t.keras")
    shutil.rmtree(copy)  # the saved model holds the layers and weights, not a reference to the run
    loaded = modelfile.load_model(tmp_path / "t.keras")
    assert type(loaded.layers[0]).__name__ == "Stack" and not loaded.layers[0].trainable
    np.testing.assert_allclose(
        loaded.layers[0](x, training=False).numpy(), stack(x, training=False).numpy(), rtol=1e-5, atol=1e-5
    )
    assert y.shape == (2, 3)


@pytest.mark.slow
def test_from_run_trains_frozen_and_its_batchnorm_statistics_do_not_move(tmp_path):
    from cnnkit.run.modelfile import load_model

    source_spec = tmp_path / "source.yaml"
    source_spec.write_text(SOURCE + "train: {epochs: 1, batch_size: 32}\n")
    cli("train", source_spec, "--no-pictures", "--out", tmp_path / "a")
    source = (tmp_path / "a" / "latest").resolve()
    spec = tmp_path / "transfer.yaml"
    spec.write_text(
        _transfer(source).replace("units: 3", "units: 10")
        + "data: {dataset: digits}\ntrain: {epochs: 1, batch_size: 32}\n"
    )
    cli("train", spec, "--no-pictures", "--out", tmp_path / "b")
    run = (tmp_path / "b" / "latest").resolve()
    before = load_model(source / "model.keras").layers[:4]
    after = load_model(run / "model.keras")
    stack, head = after.layers[0], after.layers[-1]
    assert not stack.trainable and head.trainable
    for mine, theirs in zip(stack.inner, before):
        for a, b in zip(mine.get_weights(), theirs.get_weights()):
            np.testing.assert_array_equal(a, b)  # kernels and BN moving mean/variance alike
    assert json.loads((run / "metrics.json").read_text())["test"]["accuracy"] > 0.1


# --- train.fine_tune -----------------------------------------------------------------------------


def test_fine_tune_settings_and_errors(source_run):
    folder, _ = source_run
    base = _transfer(folder) + "train:\n  epochs: 3\n"
    spec = load_spec_text(base + "  fine_tune: {unfreeze_at_epoch: 2, learning_rate: 1e-4, layers: last_2}\n", "t.yaml")
    assert spec.train["fine_tune"] == {"unfreeze_at_epoch": 2, "learning_rate": 1e-4, "last": 2}

    def error(text):
        with pytest.raises(SpecError) as info:
            load_spec_text(text, "t.yaml")
        return str(info.value)

    assert error(base + "  fine_tune: {unfreeze_at_epoch: 4}\n") == (
        "t.yaml:9: train.fine_tune.unfreeze_at_epoch: must be an epoch from 2 to train.epochs (3). Received: "
        "unfreeze_at_epoch=4. (hint: epoch 1 trains the new layers on top of the frozen ones first)"
    )
    assert error(base + "  fine_tune: {unfreeze_at_epoch: 2, layers: last_9}\n") == (
        "t.yaml:9: train.fine_tune.layers: the frozen parts hold 4 layers. Received: layers=last_9. (hint: use all)"
    )
    assert error(base + "  fine_tune: {unfreeze_at_epoch: 2, layers: some}\n") == (
        "t.yaml:9: train.fine_tune.layers: must be all or last_K (e.g. last_2). Received: layers='some'."
    )
    plain = "input_shape: [8, 8, 1]\nlayers: [Flatten]\ntrain: {epochs: 3, fine_tune: {unfreeze_at_epoch: 2}}\n"
    assert error(plain) == (
        "t.yaml:3: train.fine_tune: nothing to unfreeze: no layer of the spec is frozen (hint: FromRun is frozen by "
        "default; freeze others with trainable: false)"
    )


@pytest.mark.slow  # imports TensorFlow (or starts a browser): not for make test-fast
def test_unfreeze_keeps_batchnorm_frozen_and_retraces(source_run):
    from cnnkit.run.build import build_model
    from cnnkit.run.finetune import unfreeze

    folder, _ = source_run
    spec = load_spec_text(_transfer(folder) + "train: {epochs: 2, fine_tune: {unfreeze_at_epoch: 2}}\n", "t.yaml")
    model = build_model(spec)
    model.compile("adam", "categorical_crossentropy")
    x = np.random.default_rng(0).random((8, 8, 8, 1), dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[np.arange(8) % 3]
    model.fit(x, y, epochs=1, verbose=0)
    frozen = len(model.trainable_weights)
    names = unfreeze(__import__("keras"), model, spec, spec.train["fine_tune"])
    stack = model.layers[0]
    assert names == [layer.name for layer in stack.inner]
    assert [layer.trainable for layer in stack.inner] == [True, False, True, True]  # the BatchNormalization stays
    assert len(model.trainable_weights) == frozen + 2 + 2  # stem conv, the Residual's conv (kernel + bias each)
    bn = stack.inner[1].get_weights()
    stem = stack.inner[0].get_weights()[0].copy()
    model.fit(x, y, epochs=1, verbose=0)
    for a, b in zip(stack.inner[1].get_weights(), bn):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(stack.inner[0].get_weights()[0], stem)  # the unfrozen conv now learns


@pytest.mark.slow
def test_fine_tune_run_unfreezes_the_last_layers_at_its_epoch(tmp_path):
    from cnnkit.run.modelfile import load_model

    source_spec = tmp_path / "source.yaml"
    source_spec.write_text(SOURCE + "train: {epochs: 1, batch_size: 32}\n")
    cli("train", source_spec, "--no-pictures", "--out", tmp_path / "a")
    source = (tmp_path / "a" / "latest").resolve()
    spec = tmp_path / "transfer.yaml"
    spec.write_text(
        _transfer(source).replace("units: 3", "units: 10")
        + "data: {dataset: digits}\ntrain:\n  epochs: 2\n  batch_size: 32\n"
        + "  fine_tune: {unfreeze_at_epoch: 2, learning_rate: 1e-3, layers: last_2}\n"
    )
    cli("train", spec, "--no-pictures", "--out", tmp_path / "b")
    run = (tmp_path / "b" / "latest").resolve()
    before = load_model(source / "model.keras").layers[:4]
    stack = load_model(run / "model.keras").layers[0]
    unchanged = [
        np.array_equal(a, b) for m, t in zip(stack.inner, before) for a, b in zip(m.get_weights(), t.get_weights())
    ]
    # stem conv (2 arrays) and BatchNormalization (4) as they were; the Residual's conv (2) trained in epoch 2
    assert unchanged == [True, True, True, True, True, True, False, False]
    history = json.loads((run / "history.json").read_text())
    assert history["learning_rate"][1] == pytest.approx(1e-3)


# --- Backbone ------------------------------------------------------------------------------------

BACKBONE = """\
name: mobilenet
input_shape: [32, 32, 3]
layers:
  - Backbone: {{name: MobileNetV2, weights: {weights}, pooling: avg}}
  - Dense: {{units: 10, activation: softmax}}
"""


def test_backbone_errors_are_one_line():
    def error(text):
        with pytest.raises(SpecError) as info:
            load_spec_text(text, "b.yaml")
        return str(info.value)

    assert error(BACKBONE.format(weights="null").replace("MobileNetV2", "MobileNetV9")).startswith(
        "b.yaml:4: layers[0].Backbone.name: unknown backbone 'MobileNetV9'; valid: MobileNetV2, ResNet50, "
    )
    assert error(BACKBONE.format(weights="imagenet").replace("[32, 32, 3]", "[32, 32, 1]")) == (
        "b.yaml:4: layers[0] Backbone: imagenet weights need 3 colour channels; receives 32×32×1 "
        "(hint: use data.color_mode: rgb)"
    )
    assert error(BACKBONE.format(weights="null").replace("[32, 32, 3]", "[28, 28, 3]")) == (
        "b.yaml:4: layers[0] Backbone: keras.applications.MobileNetV2 needs images of at least 32×32; receives "
        "28×28×3 (hint: add - Resizing: {height: 32, width: 32} before it)"
    )
    assert error(BACKBONE.format(weights="nowhere.h5")) == (
        "b.yaml:4: layers[0].Backbone.weights: must be imagenet, null or a weights file (.h5). Received: "
        "weights='nowhere.h5', which is no file"
    )


@pytest.mark.slow  # imports TensorFlow (or starts a browser): not for make test-fast
def test_backbone_summary_equals_keras_and_round_trips(tmp_path):
    from cnnkit.run import modelfile

    spec = load_spec_text(BACKBONE.format(weights="null"), "b.yaml")
    rows = summarize(spec).layers
    assert rows[0].type == "Backbone" and "measured with TensorFlow" in rows[0].arithmetic
    model, keras_rows = _keras_rows(spec)
    assert keras_rows == _ours(spec)
    assert rows[0].trainable_params == 0 and rows[0].output_shape == [1280]
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    # preprocessing inside the model: MobileNetV2 takes [-1, 1], cnnkit feeds [0, 1]
    net = model.layers[0].net
    np.testing.assert_allclose(
        model.layers[0](x).numpy(), net(x * 2.0 - 1.0, training=False).numpy(), rtol=1e-4, atol=1e-5
    )
    model.save(tmp_path / "b.keras")
    config = modelfile.inspect_keras_file(tmp_path / "b.keras")
    assert config["config"]["layers"][1]["config"]["block"] == {
        "name": "MobileNetV2",
        "pooling": "avg",
        "weights": None,
    }
    loaded = modelfile.load_model(tmp_path / "b.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-4, atol=1e-5)


IMAGENET_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"


def _in_subprocess(code: str, keras_home: Path) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "KERAS_HOME": str(keras_home)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.slow  # imports TensorFlow (or starts a browser): not for make test-fast
def test_imagenet_weights_come_from_the_keras_cache(tmp_path):
    """KERAS_HOME points at a folder holding the file Keras would download (a fresh model's weights, saved by the
    test under the expected name): the backbone starts from exactly those weights, with no network."""
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    keras.utils.set_random_seed(7)
    fresh = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    (tmp_path / "models").mkdir()
    with h5py.File(tmp_path / "models" / IMAGENET_FILE, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, fresh)
    np.save(tmp_path / "first.npy", fresh.get_weights()[0])
    spec = tmp_path / "b.yaml"
    spec.write_text(BACKBONE.format(weights="imagenet"))
    code = (
        "import numpy as np\nfrom cnnkit.spec.parse import load_spec\nfrom cnnkit.run.build import build_model\n"
        f"m = build_model(load_spec({str(spec)!r}))\n"
        f"assert np.array_equal(m.layers[0].net.get_weights()[0], np.load({str(tmp_path / 'first.npy')!r}))\n"
        "print('same weights')\n"
    )
    result = _in_subprocess(code, tmp_path)
    assert result.returncode == 0 and "same weights" in result.stdout, result.stderr[-2000:]


def _tiny_cifar(tmp_path: Path) -> str:
    """64 + 16 random CIFAR-shaped images as an .npz; the `data:` line that reads it."""
    rng = np.random.default_rng(0)
    data = tmp_path / "tiny_cifar.npz"
    np.savez(
        data,
        x_train=rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8),
        y_train=rng.integers(0, 10, 64),
        x_test=rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8),
        y_test=np.arange(16) % 10,
    )
    return f"data: {{dataset: npz, path: {data}}}\n"


@pytest.mark.slow  # imports TensorFlow (or starts a browser): not for make test-fast
def test_imagenet_weights_offline_and_uncached_name_the_file_and_folder(tmp_path):
    spec = tmp_path / "b.yaml"
    spec.write_text(BACKBONE.format(weights="imagenet") + _tiny_cifar(tmp_path))
    code = (
        "import urllib.error\nimport keras.src.utils.file_utils as fu\n"
        "def offline(*a, **k):\n    raise urllib.error.URLError('network unreachable')\n"
        "fu.urlretrieve = offline\n"
        "from typer.testing import CliRunner\nfrom cnnkit.cli import app\n"
        f"r = CliRunner().invoke(app, ['train', {str(spec)!r}, '--out', {str(tmp_path / 'runs')!r}])\n"
        "print(r.exit_code)\nprint(r.output)\n"
    )
    result = _in_subprocess(code, tmp_path / "home")
    assert result.stdout.splitlines()[0] == "2", result.stdout + result.stderr[-2000:]
    assert (
        f"Error: Backbone MobileNetV2: imagenet weights are not in Keras' cache and cannot be downloaded here: "
        f"place {IMAGENET_FILE} in {tmp_path / 'home' / 'models'} (from https://"
    ) in result.stdout, result.stdout


@pytest.mark.slow
def test_mobilenet_backbone_trains_one_epoch_on_cifar_shaped_data(tmp_path):
    spec = tmp_path / "mobilenet.yaml"
    spec.write_text(BACKBONE.format(weights="null") + _tiny_cifar(tmp_path) + "train: {epochs: 1, batch_size: 16}\n")
    cli("train", spec, "--no-pictures", "--out", tmp_path / "runs")
    run = (tmp_path / "runs" / "latest").resolve()
    history = json.loads((run / "history.json").read_text())
    assert len(history["loss"]) == 1 and np.isfinite(history["loss"][0])
    from cnnkit.run.modelfile import load_model

    assert type(load_model(run / "model.keras").layers[0]).__name__ == "Backbone"

"""Hostile and careless spec files, each with its exact `Error:` line and exit code 2.

Every case goes through the real CLI (`cnnkit validate`, or `summary` for `--set`), run in a
temporary folder so the file name in the message is just the name. The messages are what a CNN
learner reads: file:line, the field path, what was expected, what came in, and a hint.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from cnnkit.cli import app
from cnnkit.spec.parse import load_spec

runner = CliRunner()

VALID_TAIL = "layers:\n  - Flatten\n  - Dense: {units: 10}\n"

# An alias ("billion laughs") bomb: 9 levels of 9 references, 9**9 strings once expanded.
BOMB = "".join(
    [f"a: &a [{', '.join(['lol'] * 9)}]\n"]
    + [f"{cur}: &{cur} [{', '.join([f'*{prev}'] * 9)}]\n" for prev, cur in zip("abcdefgh", "bcdefghi")]
)

POOL_COLLAPSE = """\
input_shape: [28, 28, 1]
layers:
  - Conv2D: {filters: 8, kernel_size: 3}
  - MaxPooling2D
  - Conv2D: {filters: 8, kernel_size: 3}
  - MaxPooling2D
  - Conv2D: {filters: 8, kernel_size: 4}
  - Dropout: {rate: 0.25}
  - MaxPooling2D: {pool_size: 3}
"""

CONV = "input_shape: [28, 28, 1]\nlayers:\n  - Conv2D: {filters: 8, kernel_size: 3, %s}\n"

# name -> (file content, exact stderr line without "Error: " and the trailing newline)
CASES = {
    "bomb": (BOMB, "bomb.yaml:1: document expands to more than 20000 values (YAML alias bomb?); refusing it"),
    "deep": (
        "input_shape: " + "[" * 1000 + "]" * 1000 + "\n",
        "deep.yaml:1: nesting deeper than 50 levels; refusing to parse",
    ),
    "duplicate_top": (
        "input_shape: [28, 28, 1]\n" + VALID_TAIL + "input_shape: [8, 8, 1]\n",
        "duplicate_top.yaml:5: duplicate key 'input_shape' (first defined on line 1) "
        "(hint: YAML would silently keep only the last one; remove one of them)",
    ),
    "duplicate_arg": (
        "input_shape: [28, 28, 1]\nlayers:\n  - Conv2D:\n      filters: 32\n      kernel_size: 3\n      filters: 16\n",
        "duplicate_arg.yaml:6: layers[0].Conv2D: duplicate key 'filters' (first defined on line 4) "
        "(hint: YAML would silently keep only the last one; remove one of them)",
    ),
    "python_tag": (
        "input_shape: !!python/object/apply:os.system ['echo pwned']\nlayers: [Flatten]\n",
        "python_tag.yaml:1: YAML tag !!python/object/apply:os.system is not allowed in a spec "
        "(hint: specs hold plain values only)",
    ),
    "empty": ("", "empty.yaml: file is empty; expected a mapping with `input_shape` and `layers`"),
    "comments": (
        "# a spec, some day\n   # not yet\n\n",
        "comments.yaml: file holds only comments; expected a mapping with `input_shape` and `layers`",
    ),
    "kernel_too_big": (
        "input_shape: [3, 3, 1]\nlayers:\n  - Conv2D: {filters: 8, kernel_size: 5}\n",
        "kernel_too_big.yaml:3: layers[0] Conv2D: input 3×3, kernel 5, stride 1, valid → "
        "⌊(3−5)/1⌋+1 = -1 (hint: the output would have no pixels left; use padding: same, "
        "a smaller kernel/stride, or fewer pooling layers)",
    ),
    "pool_collapse": (
        POOL_COLLAPSE,
        "pool_collapse.yaml:9: layers[6] MaxPooling2D: input 2×2, pool 3, stride 3, valid → "
        "⌊(2−3)/3⌋+1 = 0 (hint: the output would have no pixels left; use padding: same, "
        "a smaller pool/stride, or fewer pooling layers)",
    ),
    "nan": (
        "input_shape: [4]\nlayers:\n  - Dropout: {rate: .nan}\n",
        "nan.yaml:3: layers[0].Dropout.rate: must be a finite number >= 0 and < 1. Received: rate=nan.",
    ),
    "inf": (
        "input_shape: [4]\nlayers:\n  - Dense: {units: .inf}\n",
        "inf.yaml:3: layers[0].Dense.units: must be a positive integer. Received: units=inf.",
    ),
    "list_root": (
        "- Conv2D\n- Flatten\n",
        "list_root.yaml:1: the top level must be a mapping (name, input_shape, layers, ...). Received: a list",
    ),
    "syntax": (
        "input_shape: [28, 28, 1\nlayers:\n  - Flatten\n",
        "syntax.yaml:2: YAML syntax error, column 7: expected ',' or ']', but got ':' (while parsing a "
        "flow sequence that starts on line 1, column 14) (hint: is a [ or { left open, or a comma missing?)",
    ),
    "tab": (
        "input_shape: [28, 28, 1]\nlayers:\n\t- Flatten\n",
        "tab.yaml:3: YAML syntax error, column 1: found character '\\t' that cannot start any token "
        "(hint: indent with spaces; YAML does not allow tabs there)",
    ),
    "missing_colon": (
        "input_shape: [28, 28, 1]\nlayers\n  - Flatten\n",
        "missing_colon.yaml:4: YAML syntax error, column 1: could not find expected ':' (while "
        "scanning a simple key that starts on line 2, column 1)",
    ),
    "unknown_layer": (
        "input_shape: [28, 28, 1]\nlayers:\n  - conv2d: {filters: 8, kernel_size: 3}\n  - Flaten\n",
        "unknown_layer.yaml:4: layers[1]: unknown layer type 'Flaten' (hint: did you mean 'Flatten'?)",
    ),
    "misspelled_arg": (
        "input_shape: [28, 28, 1]\nlayers:\n  - Conv2D: {filtres: 32, kernel_size: 3}\n",
        "misspelled_arg.yaml:3: layers[0].Conv2D.filtres: unknown argument 'filtres' for Conv2D "
        "(hint: did you mean 'filters'?)",
    ),
    "wrong_type": (
        "input_shape: [28, 28, 1]\nlayers:\n  - Conv2D: {filters: thirty-two, kernel_size: 3}\n",
        "wrong_type.yaml:3: layers[0].Conv2D.filters: must be a positive integer. Received: filters='thirty-two'.",
    ),
    "kernel_list": (
        "input_shape: [28, 28, 1]\nlayers:\n  - Conv2D: {filters: 8, kernel_size: [3, 3, 3]}\n",
        "kernel_list.yaml:3: layers[0].Conv2D.kernel_size: must be an integer or a list of 2 integers, "
        "each positive. Received: kernel_size=[3, 3, 3].",
    ),
    "zero_filters": (
        "input_shape: [28, 28, 1]\nlayers:\n  - Conv2D: {filters: 0, kernel_size: 3}\n",
        "zero_filters.yaml:3: layers[0].Conv2D.filters: must be a positive integer. Received: filters=0.",
    ),
    "bad_padding": (
        CONV % "padding: full",
        "bad_padding.yaml:3: layers[0].Conv2D.padding: must be one of: valid, same, causal. Received: padding='full'.",
    ),
    "bad_activation": (
        CONV % "activation: rleu",
        "bad_activation.yaml:3: layers[0].Conv2D.activation: must be one of: linear, relu, relu6, "
        "leaky_relu, elu, selu, celu, gelu, silu, swish, mish, sigmoid, hard_sigmoid, log_sigmoid, "
        "tanh, hard_tanh, softmax, log_softmax, softplus, softsign, exponential, hard_silu, "
        "hard_swish. Received: activation='rleu'. (hint: did you mean 'relu' or 'relu6'?)",
    ),
    "bad_initializer": (
        CONV % "kernel_initializer: he_uniorm",
        "bad_initializer.yaml:3: layers[0].Conv2D.kernel_initializer: must be one of: "
        "glorot_uniform, glorot_normal, he_uniform, he_normal, lecun_uniform, lecun_normal, zeros, "
        "ones, random_uniform, random_normal, truncated_normal, orthogonal, variance_scaling. "
        "Received: kernel_initializer='he_uniorm'. (hint: did you mean 'he_uniform' or "
        "'he_normal' or 'lecun_uniform'?)",
    ),
    "bad_data_format": (
        CONV % "data_format: channels_middle",
        "bad_data_format.yaml:3: layers[0].Conv2D.data_format: must be one of: channels_last, "
        "channels_first. Received: data_format='channels_middle'. (hint: did you mean "
        "'channels_last' or 'channels_first'?)",
    ),
    "strides_and_dilation": (
        CONV % "strides: 2, dilation_rate: 2",
        "strides_and_dilation.yaml:3: layers[0].Conv2D.strides: strides > 1 cannot be combined "
        "with dilation_rate > 1 (Keras refuses it). Received: strides=[2, 2], "
        "dilation_rate=[2, 2]. (hint: set one of them to 1)",
    ),
    "causal_conv2d": (
        CONV % "padding: causal",
        "causal_conv2d.yaml:3: layers[0].Conv2D.padding: padding 'causal' is only valid for Conv1D, "
        "not Conv2D (hint: use padding: same or valid)",
    ),
    "conv_after_flatten": (
        "input_shape: [28, 28, 1]\nlayers:\n  - Flatten\n  - Conv2D: {filters: 8, kernel_size: 3}\n",
        "conv_after_flatten.yaml:4: layers[1] Conv2D expects input of rank 3 (height, width, "
        "channels) but receives 784 (rank 1) from Flatten (layers[0]) (hint: a Conv2D cannot "
        "follow a flattening layer; move Flatten/Dense after the conv blocks)",
    ),
    "conv2d_on_vectors": (
        "input_shape: [784]\nlayers:\n  - Conv2D: {filters: 8, kernel_size: 3}\n",
        "conv2d_on_vectors.yaml:3: layers[0] Conv2D expects input of rank 3 (height, width, "
        "channels) but receives 784 (rank 1) as input_shape (hint: set input_shape to (height, "
        "width, channels))",
    ),
    "missing_input_shape": (
        VALID_TAIL,
        "missing_input_shape.yaml:1: missing `input_shape`; expected e.g. input_shape: "
        "[28, 28, 1] (height, width, channels)",
    ),
    "empty_layers": (
        "input_shape: [28, 28, 1]\nlayers: []\n",
        "empty_layers.yaml:2: layers: must be a non-empty list of layers. Received: layers=[].",
    ),
    "unknown_top_key": (
        "input_shape: [28, 28, 1]\n" + VALID_TAIL + "optimiser: adam\n",
        "unknown_top_key.yaml:5: optimiser: unknown key 'optimiser' in the spec (hint: `optimizer` "
        "belongs under `train:`, e.g. train: {optimizer: ...})",
    ),
    "typo_top_key": (
        "input_shape: [28, 28, 1]\nlayer:\n  - Flatten\n",
        "typo_top_key.yaml:2: layer: unknown key 'layer' in the spec (hint: did you mean 'layers'?)",
    ),
    # Found by the fuzz and exactness tests; pinned so they stay fixed.
    "control_character": (
        "input_shape: [8]\x07\n" + VALID_TAIL,
        "control_character.yaml:1: character U+0007 at column 17 is not allowed in YAML "
        "(hint: remove it; save the file as plain UTF-8 text)",
    ),
    "wrong_explicit_tag": (
        "input_shape: [8]\nlayers:\n  - Dense: {units: !!int ten}\n",
        "wrong_explicit_tag.yaml:3: cannot read 'ten' as !!int (hint: drop the tag; a spec needs no YAML tags)",
    ),
    "escape_out_of_range": (
        'input_shape: [8]\nlayers:\n  - Dense: {"\\U1e400000": 3}\n',
        "escape_out_of_range.yaml:3: YAML syntax error: an escape such as \\U... names no "
        "Unicode character (hint: escapes go up to \\U0010FFFF)",
    ),
    "key_with_line_break": (
        'input_shape: [8]\nlayers:\n  - Dense: {units: 2, "unit\\ns": 3}\n',
        "key_with_line_break.yaml:3: layers[0].Dense.unit\\ns: unknown argument 'unit\\ns' for "
        "Dense (hint: did you mean 'units'?)",
    ),
    "zoom_pair_out_of_range": (
        "input_shape: [8, 8, 3]\nlayers:\n  - RandomZoom: {height_factor: [-5, 0]}\n",
        "zoom_pair_out_of_range.yaml:3: layers[0].RandomZoom.height_factor: must be a [low, "
        "high] pair, each a finite number > -1 and <= 1. Received: height_factor=[-5, 0].",
    ),
    "relu_negative_max": (
        "input_shape: [8]\nlayers:\n  - ReLU: {max_value: -1}\n",
        "relu_negative_max.yaml:3: layers[0].ReLU.max_value: must be a finite number >= 0. Received: max_value=-1.",
    ),
    "noise_over_one": (
        "input_shape: [8]\nlayers:\n  - GaussianNoise: {stddev: 2}\n",
        "noise_over_one.yaml:3: layers[0].GaussianNoise.stddev: must be a finite number >= 0 and "
        "<= 1. Received: stddev=2.",
    ),
    "average_pool_needs_size": (
        "input_shape: [8, 8, 3]\nlayers:\n  - AveragePooling2D\n",
        "average_pool_needs_size.yaml:3: layers[0].AveragePooling2D: AveragePooling2D needs "
        "`pool_size`; required: pool_size",
    ),
    "orthogonal_bias": (
        "input_shape: [8]\nlayers:\n  - Dense: {units: 4, bias_initializer: orthogonal}\n",
        "orthogonal_bias.yaml:3: layers[0].Dense.bias_initializer: orthogonal needs a weight matrix, "
        "but bias_initializer initializes a vector. Received: bias_initializer='orthogonal'. "
        "(hint: use zeros, ones or random_normal)",
    ),
    "batch_axis": (
        "input_shape: [8]\nlayers:\n  - BatchNormalization: {axis: 0}\n",
        "batch_axis.yaml:3: layers[0] BatchNormalization: axis 0 is the batch axis; statistics must be "
        "taken per feature, not across samples (hint: use -1 (channels_last) or 1 (channels_first))",
    ),
    "cropping1d_data_format": (
        "input_shape: [8, 8]\nlayers:\n  - Cropping1D: {cropping: 1, data_format: channels_last}\n",
        "cropping1d_data_format.yaml:3: layers[0].Cropping1D.data_format: unknown argument "
        "'data_format' for Cropping1D (hint: Cropping1D takes: cropping, name, trainable)",
    ),
}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def validate(*names: str):
    # Speed is the benchmarks' business (bench/); here only the answer counts. The bomb and the 1,000-deep
    # nesting are refused by counting (aliases, depth), before anything is expanded.
    return runner.invoke(app, ["validate", *names]), None


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_file_gets_exact_error(case, workdir):
    content, expected = CASES[case]
    (workdir / f"{case}.yaml").write_text(content, encoding="utf-8")
    result, _ = validate(f"{case}.yaml")
    assert result.stderr == f"Error: {expected}\n"
    assert result.stdout == ""
    assert result.exit_code == 2


def test_50_mb_file_is_refused_by_size(workdir):
    path = workdir / "huge.yaml"
    head = "input_shape: [28, 28, 1]\n" + VALID_TAIL
    path.write_text(head + "#" + "x" * (50_000_000 - len(head) - 2) + "\n", encoding="ascii")
    assert path.stat().st_size == 50_000_000
    result, _ = validate("huge.yaml")
    assert result.stderr == (
        "Error: huge.yaml: file is 50.0 MB; spec files are limited to 1 MB "
        "(hint: a spec names layers and settings; data goes in data.path)\n"
    )
    assert result.exit_code == 2


def test_non_utf8_file(workdir):
    (workdir / "latin1.yaml").write_bytes("name: café\ninput_shape: [4]\nlayers: [Flatten]\n".encode("latin-1"))
    result, _ = validate("latin1.yaml")
    assert (
        result.stderr
        == "Error: latin1.yaml:1: not valid UTF-8 (byte 0xe9 at offset 9) (hint: save the file as UTF-8)\n"
    )
    assert result.exit_code == 2


def test_utf8_bom_is_accepted(workdir):
    (workdir / "bom.yaml").write_bytes(("\ufeffname: café\ninput_shape: [28, 28, 1]\n" + VALID_TAIL).encode("utf-8"))
    result, _ = validate("bom.yaml")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "ok  bom.yaml\n", "")
    spec = load_spec(workdir / "bom.yaml")
    assert spec.name == "café" and spec.input_shape == (28, 28, 1)


def test_learning_rate_1e_minus_3_is_a_float(workdir):
    (workdir / "lr.yaml").write_text(
        "input_shape: [4]\nlayers: [{Dense: {units: 2}}]\ntrain:\n  optimizer: {name: adam, learning_rate: 1e-3}\n",
        encoding="utf-8",
    )
    result, _ = validate("lr.yaml")
    assert (result.exit_code, result.stderr) == (0, "")
    learning_rate = load_spec(workdir / "lr.yaml").train["optimizer"]["args"]["learning_rate"]
    assert learning_rate == 0.001 and type(learning_rate) is float


def test_many_files_one_error_line_each(workdir):
    for case in ("nan", "inf", "empty"):
        (workdir / f"{case}.yaml").write_text(CASES[case][0], encoding="utf-8")
    (workdir / "good.yaml").write_text("input_shape: [28, 28, 1]\n" + VALID_TAIL, encoding="utf-8")
    result, _ = validate("nan.yaml", "good.yaml", "inf.yaml", "empty.yaml")
    assert result.exit_code == 2
    assert result.stdout == "ok  good.yaml\n"
    assert result.stderr == "".join(f"Error: {CASES[c][1]}\n" for c in ("nan", "inf", "empty"))


@pytest.mark.parametrize(
    "override, expected",
    [
        ("train.epochs=3\n4", "--set expects one line; this one has a line break. Received: 'train.epochs=3\\n4'"),
        ("epochs", "--set expects KEY=VALUE (e.g. train.epochs=3). Received: 'epochs'"),
        (
            "²=[",
            "--set ²=[: ²: unknown key '²' in the spec (hint: valid keys: name, description, input_shape, layers, "
            "data, train)",
        ),
        (
            "layers.0.Conv2D.filtres=3",
            "--set layers.0.Conv2D.filtres=3: layers[0].Conv2D.filtres: unknown argument "
            "'filtres' for Conv2D (hint: did you mean 'filters'?)",
        ),
        (
            "layers.0.Conv2D.filters=0",
            "--set layers.0.Conv2D.filters=0: layers[0].Conv2D.filters: must be a positive "
            "integer. Received: filters=0.",
        ),
    ],
)
def test_bad_set_override(override, expected, workdir):
    (workdir / "mnist.yaml").write_text(CONV % "activation: relu" + "  - Flatten\n", encoding="utf-8")
    result = runner.invoke(app, ["summary", "mnist.yaml", "--set", override])
    assert result.stderr == f"Error: {expected}\n"
    assert result.exit_code == 2


# --- no TensorFlow on the light paths -------------------------------------------------------------

_NO_TF = textwrap.dedent("""
    import sys
    from cnnkit.cli import app
    for args in ARGS:
        try:
            app(args, prog_name="cnnkit")
        except SystemExit:
            pass
        if "tensorflow" in sys.modules or "keras" in sys.modules:
            sys.exit(f"TensorFlow imported by: cnnkit {' '.join(args)}")
""")


def test_light_commands_and_every_error_path_never_import_tensorflow(tmp_path):
    for case, (content, _) in CASES.items():
        (tmp_path / f"{case}.yaml").write_text(content, encoding="utf-8")
    (tmp_path / "good.yaml").write_text("input_shape: [28, 28, 1]\n" + VALID_TAIL, encoding="utf-8")
    arg_lists = [
        ["--help"],
        ["validate", "--help"],
        ["summary", "--help"],
        ["validate", "good.yaml"],
        ["summary", "good.yaml"],
        ["summary", "good.yaml", "--json"],
        ["schema"],
        ["layers"],
        ["validate", "missing.yaml"],
        ["summary", "good.yaml", "--set", "layers.0.Dense.units=0"],
        *(["validate", f"{case}.yaml"] for case in sorted(CASES)),
        *(["summary", f"{case}.yaml"] for case in sorted(CASES)),
    ]
    proc = subprocess.run(
        [sys.executable, "-c", f"ARGS = {arg_lists!r}\n" + _NO_TF],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.count("Error: ") == 2 * len(CASES) + 2  # every hostile file failed, via both commands

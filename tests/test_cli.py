"""The command line as users meet it: help texts, version, summary output, schema, layers."""

import json
import subprocess
import sys

import jsonschema
import pytest
import yaml
from typer.main import get_command
from typer.testing import CliRunner

from cnnkit import __version__
from cnnkit.cli import app

runner = CliRunner()


def _all_commands():
    root = get_command(app)
    for name, command in root.commands.items():
        if hasattr(command, "commands"):
            for sub in command.commands:
                yield [name, sub]
        else:
            yield [name]


@pytest.mark.parametrize("words", list(_all_commands()), ids=" ".join)
def test_every_command_has_purpose_and_example(words):
    result = runner.invoke(app, [*words, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example: cnnkit " + " ".join(words) in result.output


def test_top_level_help_and_version():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "Example: cnnkit summary" in result.output
    result = runner.invoke(app, ["--version"])
    assert result.output == f"cnnkit {__version__}\n"


def test_summary_notes_mnist_table():
    result = runner.invoke(app, ["summary", "configs/mnist.yaml"])
    assert result.exit_code == 0, result.output
    for expected in ("26×26×32", "18,496", "102,464", "Total params: 121,930", "⌊(28−3)/1⌋+1 = 26"):
        assert expected in result.output


def test_summary_json_shape():
    result = runner.invoke(app, ["summary", "configs/mnist.yaml", "--json"])
    data = json.loads(result.output)
    assert data["total_params"] == 121930 and data["non_trainable_params"] == 0
    first = data["layers"][0]
    assert {
        k: first[k] for k in ("index", "type", "output_shape", "params", "trainable_params", "macs", "receptive_field")
    } == {
        "index": 0,
        "type": "Conv2D",
        "output_shape": [26, 26, 32],
        "params": 320,
        "trainable_params": 320,
        "macs": 194688,
        "receptive_field": 3,
    }


def test_summary_set_override():
    result = runner.invoke(app, ["summary", "configs/mnist.yaml", "--json", "--set", "layers.0.Conv2D.filters=16"])
    assert json.loads(result.output)["layers"][0]["output_shape"] == [26, 26, 16]


@pytest.mark.slow  # imports TensorFlow and builds the model
def test_summary_with_keras_agrees():
    result = runner.invoke(app, ["summary", "configs/mnist.yaml", "--keras"])
    assert result.exit_code == 0, result.output
    assert "Keras agrees" in result.output


def test_schema_accepts_every_config_and_rejects_typos(tmp_path):
    result = runner.invoke(app, ["schema"])
    schema = json.loads(result.output)
    from pathlib import Path

    # The schema is checked against its meta-schema once (jsonschema.validate would redo it for every file).
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    for path in sorted(Path("configs").glob("*.yaml")):
        validator.validate(yaml.safe_load(path.read_text()))
    bad = yaml.safe_load(Path("configs/mnist.yaml").read_text())
    bad["layers"][0] = {"Conv2D": {"filtres": 3, "kernel_size": 3}}
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(bad)
    misplaced = yaml.safe_load(Path("configs/mnist.yaml").read_text())
    misplaced["data"]["header"] = "maybe"  # a csv key of the wrong type
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(misplaced)


def test_layers_lists_every_registered_layer():
    from cnnkit.spec.layers import LAYERS

    result = runner.invoke(app, ["layers"], terminal_width=200)
    assert result.exit_code == 0
    for name in LAYERS:
        assert name in result.output


def test_validate_many_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("input_shape: [28, 28, 1]\nlayers:\n  - Conv2D: {filters: 0, kernel_size: 3}\n")
    result = runner.invoke(app, ["validate", "configs/mnist.yaml", str(bad)])
    assert result.exit_code == 2
    assert "ok  configs/mnist.yaml" in result.stdout
    assert result.stderr == (
        f"Error: {bad}:3: layers[0].Conv2D.filters: must be a positive integer. Received: filters=0.\n"
    )


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["summary", "configs/mnist.yaml"],
        ["validate", "configs/lenet5.yaml"],
        ["schema"],
        ["layers"],
        ["datasets"],
        ["plot", "architecture", "configs/mnist.yaml", "--out", "{tmp}/a.png"],
    ],
)
def test_light_commands_never_import_tensorflow(args, tmp_path):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    # The command must succeed (exit 0) and leave TensorFlow and Keras unimported: a command that exits 2 before
    # reaching the code that might import them proves nothing.
    code = (
        "import sys\nfrom cnnkit.cli import app\ntry:\n    app(%r)\nexcept SystemExit as exit:\n    code = exit.code\n"
        "else:\n    code = 0\n"
        "assert code in (0, None), f'exit code {code}'\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n"
        "assert 'keras' not in sys.modules, 'keras imported'\n" % (args,)
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow  # builds and times a Keras model
def test_time_reports_every_layer():
    result = runner.invoke(app, ["time", "configs/mnist.yaml", "--iterations", "2", "--batch-size", "8", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert sorted(r["index"] for r in data["layers"]) == list(range(7))
    assert abs(sum(r["share"] for r in data["layers"]) - 1) < 1e-6
    assert all(r["forward_ms"] > 0 for r in data["layers"])

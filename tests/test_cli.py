"""The command line as users meet it: help texts, version, summary output, schema, layers."""

import json
import re
import subprocess
import sys
from pathlib import Path

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
    # The whole training step, and the images/s it gives: batch / step seconds.
    assert data["step_ms"] > 0
    assert data["images_per_s"] == pytest.approx(8 * 1000 / data["step_ms"])
    assert data["layers_ms"] == pytest.approx(data["forward_ms"] + data["backward_ms"])
    assert data["overhead_ms"] == pytest.approx(data["step_ms"] - data["layers_ms"])
    assert data["overhead_share"] == pytest.approx(data["overhead_ms"] / data["step_ms"])


@pytest.mark.slow  # builds, compiles and times a Keras model
def test_time_prints_the_whole_step_next_to_the_layers_sum():
    result = runner.invoke(app, ["time", "configs/mnist.yaml", "--iterations", "2", "--batch-size", "8"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    layers = [ln for ln in lines if ln.startswith("sum of layers  ")]
    step = [ln for ln in lines if ln.startswith("whole step     ")]
    overhead = [ln for ln in lines if ln.startswith("overhead       ")]
    assert len(layers) == len(step) == len(overhead) == 1, result.output
    layers_ms = float(re.match(r"sum of layers  (-?[\d.]+) ms  \(forward \+ backward", layers[0]).group(1))
    m = re.match(r"whole step     ([\d.]+) ms  \(([\d,]+) images/s; the compiled model's train_on_batch\)$", step[0])
    assert m, step[0]
    step_ms, images_per_s = float(m.group(1)), int(m.group(2).replace(",", ""))
    assert step_ms > 0
    assert abs(images_per_s - 8 * 1000 / step_ms) <= 1 + 8 * 1000 / step_ms * 1e-3  # both sides are rounded
    m = re.match(r"overhead       (-?[\d.]+) ms  \((-?[\d.]+)% of the whole step: ", overhead[0])
    assert m, overhead[0]
    assert float(m.group(1)) == pytest.approx(step_ms - layers_ms, abs=0.002)


# ---------------------------------------------------------------------------------- help a person reads
def _help(words, width=80):
    """`cnnkit WORDS --help` in a terminal `width` columns wide (click reads COLUMNS)."""
    result = CliRunner().invoke(
        app, [*words, "--help"], prog_name="cnnkit", env={"COLUMNS": str(width)}, terminal_width=width
    )
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("words", [[], ["plot"], *_all_commands()], ids=lambda w: " ".join(w) or "cnnkit")
def test_help_uses_placeholders_a_person_reads(words):
    text = _help(words)
    # Typer's defaults read like Python: {spec_file}, <list[str]>, <int range>, [x>=1].
    for pythonic in ("{", "}", "<path>", "<str>", "<int", "list[", "x>=", "spec_file", "target", "cnnkit.viz"):
        assert pythonic not in text, (pythonic, text)
    assert all(len(line) <= 80 for line in text.splitlines()), text


def test_help_names_the_placeholders():
    assert "Usage: cnnkit evaluate [OPTIONS] RUN\n" in _help(["evaluate"])
    train = _help(["train"])
    assert "Usage: cnnkit train [OPTIONS] [SPEC]\n" in train
    assert "--set KEY=VALUE" in train and "--epochs N" in train and "[at least 1]" in train
    assert "Usage: cnnkit predict [OPTIONS] RUN FILE...\n" in _help(["predict"])
    assert "Usage: cnnkit validate [OPTIONS] SPEC...\n" in _help(["validate"])


@pytest.mark.parametrize("words", [[], ["plot"]], ids=["cnnkit", "plot"])
def test_command_lists_are_whole_sentences_at_80_columns(words):
    listing = _help(words).split("Commands:\n")[1].splitlines()
    assert len(listing) >= 6
    for line in listing:
        assert not line.endswith("...") and line.endswith("."), line  # click cuts long ones with "..."
        assert len(line) <= 80


def test_evaluate_without_a_run_names_the_argument_RUN():
    result = runner.invoke(app, ["evaluate"])
    assert result.exit_code == 2
    assert "Missing argument 'RUN'." in result.output


def test_plot_kernels_list_names_every_kernel():
    from cnnkit.viz.kernels import DESCRIPTIONS

    result = runner.invoke(app, ["plot", "kernels", "--list"])  # no IMAGE needed to ask for the list
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines] == list(DESCRIPTIONS)
    assert lines[1] == "sobel_x           horizontal gradient: lights up vertical edges"
    assert "--list shows them all" in _help(["plot", "kernels"])


@pytest.mark.parametrize(
    "args, wrote",
    [
        (["plot", "architecture", "{root}/configs/mnist.yaml"], "plots/mnist-architecture.png"),
        (["plot", "kernels", "{root}/docs/img/digit.png", "--kernel", "sobel_x"], "plots/digit-kernels.png"),
    ],
)
def test_spec_and_kernel_pictures_go_to_a_plots_folder(args, wrote, tmp_path, monkeypatch):
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, [a.replace("{root}", str(root)) for a in args])
    assert result.exit_code == 0, result.output
    assert result.output == f"wrote {wrote}\n"  # says where the file went
    assert (tmp_path / wrote).is_file() and [p.name for p in tmp_path.iterdir()] == ["plots"]
    assert "plots/" in (root / ".gitignore").read_text().splitlines()


# ------------------------------------------------------------------------ wrong paths fail before TensorFlow
def _fake_run(folder: Path) -> Path:
    """A run folder as far as path checks go: spec.yaml and a model.keras that is never opened."""
    root = Path(__file__).resolve().parents[1]
    folder.mkdir()
    (folder / "spec.yaml").write_text((root / "configs" / "digits.yaml").read_text())
    (folder / "model.keras").write_bytes(b"")
    return folder


@pytest.mark.parametrize(
    "args, message",
    [
        (["evaluate", "{tmp}/nope"], "Error: run folder {tmp}/nope does not exist"),
        (["evaluate", "{tmp}/nope.keras"], "Error: {tmp}/nope.keras: expected a .keras file, found no such file"),
        (
            ["evaluate", "{run}", "--data", "{tmp}/nope.npz"],
            "Error: {tmp}/nope.npz: file not found (hint: check the --data path)",
        ),
        (
            ["plot", "confusion", "{run}", "--data", "{tmp}/nope.csv"],
            "Error: {tmp}/nope.csv: file not found (hint: check the --data path)",
        ),
        (["plot", "curves", "{tmp}/nope"], "Error: run folder {tmp}/nope does not exist"),
        (["plot", "filters", "{tmp}/nope"], "Error: run folder {tmp}/nope does not exist"),
        (["plot", "feature-maps", "{run}", "--image", "{tmp}/nope.png"], "Error: {tmp}/nope.png: file not found"),
        (
            ["plot", "feature-maps", "{run}", "--data", "{tmp}/no.npz"],
            "Error: {tmp}/no.npz: file not found (hint: check the --data path)",
        ),
        (["train", "--resume", "{tmp}/nope"], "Error: run folder {tmp}/nope does not exist"),
        (["train", "{tmp}/nope.yaml"], "Error: {tmp}/nope.yaml: file not found"),
        (["time", "{tmp}/nope.yaml"], "Error: {tmp}/nope.yaml: file not found"),
        (["predict", "{tmp}/nope", "x.png"], "Error: run folder {tmp}/nope does not exist"),
    ],
    ids=lambda v: " ".join(v[:3]) if isinstance(v, list) else None,
)
def test_a_wrong_path_fails_before_tensorflow_is_imported(args, message, tmp_path):
    """Importing TensorFlow takes seconds: a typo in a path must answer at once (checked by what was imported,
    not by the clock, which a busy machine makes meaningless)."""
    run = _fake_run(tmp_path / "run")
    args = [a.format(tmp=tmp_path, run=run) for a in args]
    code = (
        "import sys\nfrom cnnkit.cli import app\ntry:\n    app(%r)\nexcept SystemExit as e:\n    code = e.code\n"
        "print(code, sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n" % (args,)
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout == "2 []\n", proc.stderr
    assert proc.stderr.startswith(message.format(tmp=tmp_path)), proc.stderr


# ------------------------------------------------------------------------------- terminal layout at 80 columns
def _render(renderable, width=80) -> list[str]:
    from rich.console import Console

    console = Console(width=width, record=True, file=open("/dev/null", "w"), color_system=None)
    console.print(renderable)
    return console.export_text().splitlines()


def test_epoch_lines_keep_their_columns_past_epoch_9():
    from cnnkit.run.progress import epoch_line

    logs = {"accuracy": 0.5, "loss": 1.25, "val_accuracy": 0.5, "val_loss": 1.5}
    lines = [epoch_line(epoch, 12, 2.0, logs) for epoch in (1, 9, 10, 12)]
    assert lines[0] == "epoch  1/12    2.0s  loss 1.2500 val 1.5000  accuracy 0.5000 val 0.5000"
    assert lines[2] == "epoch 10/12    2.0s  loss 1.2500 val 1.5000  accuracy 0.5000 val 0.5000"
    assert len({line.index("loss") for line in lines}) == 1 and len({len(line) for line in lines}) == 1
    assert all(len(line) <= 80 for line in lines)


def test_epoch_lines_list_loss_first_whatever_order_keras_hands_them():
    """Keras 3 logs `accuracy` before `loss`, tf-keras (multi_worker) the other way round: the lines must agree."""
    from cnnkit.run.progress import fmt_logs

    keras3 = {"accuracy": 0.9, "loss": 0.3, "val_accuracy": 0.8, "val_loss": 0.4, "learning_rate": 0.01}
    tf_keras = {"loss": 0.3, "accuracy": 0.9, "val_loss": 0.4, "val_accuracy": 0.8}
    assert (
        fmt_logs(keras3) == fmt_logs(tf_keras) == "loss 0.3000  accuracy 0.9000  val_loss 0.4000  val_accuracy 0.8000"
    )


def test_history_table_explains_the_star():
    from cnnkit.run.progress import history_table

    history = {"accuracy": [0.5, 0.7, 0.8], "loss": [1.0, 0.6, 0.5], "val_accuracy": [0.6, 0.7, 0.6]}
    history["val_loss"] = [0.9, 0.7, 0.8]
    lines = _render(history_table(history))
    assert lines[0].strip() == "Training history"
    assert lines[2].split() == ["┃", "epoch", "┃", "loss", "┃", "val_loss", "┃", "accuracy", "┃", "val_accuracy", "┃"]
    assert "2 *" in lines[5] and lines[-1].strip() == "* best epoch: lowest val_loss"
    assert all(len(line) <= 80 for line in lines)
    assert "best epoch" not in "\n".join(_render(history_table({"loss": [1.0, 0.5]})))  # no val_loss, no star


def test_evaluate_header_and_a_two_class_table_fit_80_columns():
    from cnnkit.viz.tables import confusion_table, evaluation_header

    data = "/work/main/.venv/lib/python3.11/site-packages/sklearn/datasets/data/digits.csv.gz"  # as seen
    from types import SimpleNamespace

    header = _render(evaluation_header(SimpleNamespace(model="runs/latest/model.keras", data=data, samples=1359)))
    assert header == [
        "model  runs/latest/model.keras",
        "data   …" + data[-(80 - 8) :],
        "       1,359 test samples",
    ]
    assert all(len(line) <= 80 for line in header)
    table = _render(confusion_table([[40, 2], [3, 55]], ["cat", "dog"]))
    assert table[0] == "Confusion matrix (rows: true class, columns: predicted)"  # one line, not wrapped
    assert table[2].split() == ["┃", "true", "\\", "pred", "┃", "cat", "┃", "dog", "┃"]

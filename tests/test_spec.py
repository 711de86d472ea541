"""The `data:` and `train:` vocabulary, defaults and --set overrides (layer errors: test_hostile_yaml.py)."""

import pytest
from typer.testing import CliRunner

from cnnkit.cli import app
from cnnkit.errors import SpecError
from cnnkit.spec.defaults import DATA_DEFAULTS, TRAIN_DEFAULTS
from cnnkit.spec.parse import load_spec, load_spec_text

HEAD = "input_shape: [8, 8, 1]\nlayers: [Flatten, {Dense: {units: 10, activation: softmax}}]\n"


def error_of(text: str) -> str:
    with pytest.raises(SpecError) as info:
        load_spec_text(HEAD + text, "net.yaml")
    return str(info.value)


def test_defaults_fill_everything_not_given():
    spec = load_spec_text(HEAD, "net.yaml")
    assert spec.data == DATA_DEFAULTS
    assert spec.train["epochs"] == TRAIN_DEFAULTS["epochs"]
    assert spec.train["optimizer"] == {"name": "adam", "args": {}}
    assert spec.train["loss"] == {"name": "categorical_crossentropy", "args": {}}
    assert spec.name == "net"


def test_named_options_with_arguments():
    spec = load_spec_text(
        HEAD + "train:\n  optimizer: {name: AdamW, learning_rate: 1e-3, weight_decay: 0.0001}\n"
        "  loss: {name: categorical_crossentropy, label_smoothing: 0.1}\n"
        "  metrics: [accuracy, {name: top_k_categorical_accuracy, k: 3}]\n",
        "net.yaml",
    )
    assert spec.train["optimizer"] == {"name": "adamw", "args": {"learning_rate": 0.001, "weight_decay": 0.0001}}
    assert spec.train["metrics"][1] == {"name": "top_k_categorical_accuracy", "args": {"k": 3}}


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "train: {optimizer: adma}\n",
            "net.yaml:3: train.optimizer: unknown optimizer 'adma'; valid: adam, adamw, sgd, rmsprop, adagrad, adadelta, "
            "adamax, nadam, lion, ftrl (hint: did you mean 'adamax' or 'adam' or 'nadam'?)",
        ),
        (
            "train: {optimizer: {name: sgd, momentun: 0.9}}\n",
            "net.yaml:3: train.optimizer.momentun: unknown argument 'momentun' for optimizer sgd (hint: did you mean "
            "'momentum' or 'ema_momentum'?)",
        ),
        (
            "train: {optimizer: {name: adam, learning_rate: -1}}\n",
            "net.yaml:3: train.optimizer.learning_rate: must be a positive number. Received: learning_rate=-1.",
        ),
        (
            "train: {loss: sparse_categorical_crossentropy, metrics: [categorical_accuracy]}\n",
            "net.yaml:3: train.metrics[0]: metric categorical_accuracy does not fit loss sparse_categorical_crossentropy "
            "(sparse labels) (hint: use accuracy, which Keras matches to the loss)",
        ),
        ("train: {epochs: 0}\n", "net.yaml:3: train.epochs: must be a positive integer. Received: epochs=0."),
        (
            "train: {batchsize: 32}\n",
            "net.yaml:3: train.batchsize: unknown key 'batchsize' in train settings "
            "(hint: did you mean 'batch_size' or 'validation_batch_size'?)",
        ),
        (
            "data: {dataset: mnsit}\n",
            "net.yaml:3: data.dataset: must be one of: digits, mnist, fashion_mnist, cifar10, cifar100, npz, image_folder, "
            "csv. Received: dataset='mnsit'. (hint: did you mean 'mnist'?)",
        ),
        ("data: {dataset: npz}\n", "net.yaml:3: data: dataset 'npz' needs `path` (the file or folder to read)"),
        (
            "data: {validation_split: 1.5}\n",
            "net.yaml:3: data.validation_split: must be a finite number >= 0 and < 1. Received: validation_split=1.5.",
        ),
        (
            "data: {dataset: image_folder, path: pics, label_column: 2}\n",
            "net.yaml:3: data.label_column: dataset image_folder does not read `label_column` (hint: `label_column` "
            "is read by dataset csv; image_folder reads: validation_split, test_split, classes, max_samples, path, "
            "test_path, image_size, color_mode)",
        ),
        (
            "data: {dataset: digits, path: digits.npz}\n",
            "net.yaml:3: data.path: dataset digits does not read `path` (hint: `path` is read by datasets mnist, "
            "fashion_mnist, cifar10, cifar100, npz, image_folder and csv; digits reads: validation_split, "
            "test_split, classes, max_samples)",
        ),
        (
            "data: {dataset: csv, path: x.csv, lable_column: 2}\n",
            "net.yaml:3: data.lable_column: unknown key 'lable_column' in data settings (hint: did you mean "
            "'label_column'?)",
        ),
        (
            "data: {dataset: csv, path: x.csv, header: maybe}\n",
            "net.yaml:3: data.header: must be true or false. Received: header='maybe'.",
        ),
        (
            "data: {dataset: image_folder, path: pics, image_size: [8, 8, 1]}\n",
            "net.yaml:3: data.image_size: must be [height, width]. Received: image_size=[8, 8, 1].",
        ),
        (
            "data: {classes: [3]}\n",
            "net.yaml:3: data.classes: must be a list of at least 2 distinct class ids. Received: classes=[3].",
        ),
        (
            "train:\n  lr_schedule: {name: cosine_decay}\n  reduce_lr_on_plateau: {patience: 2}\n",
            "net.yaml:5: train.reduce_lr_on_plateau: cannot be combined with lr_schedule: a schedule already sets the "
            "learning rate at every step (hint: keep one of lr_schedule and reduce_lr_on_plateau)",
        ),
        (
            "train: {distribution: {strategy: horovod}}\n",
            "net.yaml:3: train.distribution.strategy: must be one of: auto, none, mirrored, multi_worker. "
            "Received: strategy='horovod'.",
        ),
        (
            "train: {test_time_flip: diagonal}\n",
            "net.yaml:3: train.test_time_flip: must be one of: horizontal, vertical, horizontal_and_vertical. "
            "Received: test_time_flip='diagonal'.",
        ),
    ],
)
def test_training_vocabulary_errors(text, message):
    assert error_of(text) == message


def test_test_time_flip_is_for_images_only():
    spec = load_spec_text(HEAD + "train: {test_time_flip: horizontal}\n", "net.yaml")
    assert spec.train["test_time_flip"] == "horizontal" and TRAIN_DEFAULTS["test_time_flip"] is None
    with pytest.raises(SpecError) as info:
        load_spec_text(
            "input_shape: [16, 1]\nlayers: [Flatten, {Dense: {units: 2, activation: softmax}}]\n"
            "train: {test_time_flip: vertical}\n",
            "seq.yaml",
        )
    assert str(info.value) == (
        "seq.yaml:3: train.test_time_flip: flips images, so input_shape must be (height, width, channels). "
        "Received: input_shape=[16, 1]. (hint: remove test_time_flip, or give the spec a 3-D image input)"
    )


def test_set_overrides_nested_values_and_creates_sections(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text(HEAD)
    spec = load_spec(
        path, ["train.epochs=3", "layers.1.Dense.units=10", "data.dataset=mnist", "train.optimizer.name=sgd"]
    )
    assert spec.train["epochs"] == 3 and spec.data["dataset"] == "mnist"
    assert spec.train["optimizer"]["name"] == "sgd"
    assert "epochs: 3" in spec.resolved_yaml()


def test_set_errors_are_one_line(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text(HEAD)
    result = CliRunner().invoke(app, ["summary", str(path), "--set", "train.epochs"])
    assert result.exit_code == 2
    assert result.stderr == "Error: --set expects KEY=VALUE (e.g. train.epochs=3). Received: 'train.epochs'\n"
    result = CliRunner().invoke(app, ["summary", str(path), "--set", "train.epochs=zero"])
    assert (
        result.stderr
        == "Error: --set train.epochs=zero: train.epochs: must be a positive integer. Received: epochs='zero'.\n"
    )


def test_dataset_keys_are_checked_without_tensorflow():
    # A misplaced data key is a spec error found at parse time, before any loader (or TensorFlow) is imported.
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from cnnkit.errors import SpecError\n"
        "from cnnkit.spec.parse import load_spec_text\n"
        f"text = {HEAD!r} + 'data: {{dataset: image_folder, path: p, label_column: 0}}'\n"
        "try:\n    load_spec_text(text)\nexcept SpecError as e:\n    print(e.message)\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'sklearn', 'PIL', 'cnnkit.data') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [
        "<string>:3: data.label_column: dataset image_folder does not read `label_column`",
        "[]",
    ]


def test_every_dataset_key_has_one_type_and_a_default():
    from cnnkit.spec.datasets import COMMON_KEYS, DATASETS

    types: dict = dict(COMMON_KEYS)
    for kind in DATASETS.values():
        for key, argtype in kind.keys.items():
            assert types.setdefault(key, argtype) == argtype, key
    assert set(types) | {"dataset"} == set(DATA_DEFAULTS)


def test_datasets_command_lists_kinds_keys_and_defaults():
    result = CliRunner().invoke(app, ["datasets"])
    assert result.exit_code == 0, result.output
    from cnnkit.spec.datasets import DATASETS

    keys: dict[str, str] = {}  # dataset -> its keys cell, joined over wrapped lines
    current = ""
    for line in result.stdout.splitlines():
        if line.startswith("│"):
            name, _, cell = (c.strip() for c in line.split("│")[1:4])
            current = name or current
            keys[current] = f"{keys.get(current, '')} {cell}".strip()
    assert list(keys) == list(DATASETS)
    assert keys["csv"] == "path, test_path: null, header: auto, label_column: 0, image_shape: null"
    assert keys["digits"] == "(none)" and keys["mnist"] == "path: null"
    assert "validation_split: 0.2, test_split: 0.2, classes: null, max_samples: null" in result.stdout

"""Every file in configs/ is a valid, documented spec whose numbers Keras agrees with."""

from pathlib import Path

import pytest

from cnnkit.spec.parse import load_spec
from cnnkit.spec.summary import summarize

CONFIGS = sorted(Path("configs").glob("*.yaml"))


def test_there_are_configs():
    names = {p.stem for p in CONFIGS}
    assert {"mnist", "digits", "notes_binary", "notes_deep", "notes_conv1d", "lenet5", "color", "vgg_cifar10"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_is_valid_and_commented(path):
    text = path.read_text()
    assert text.startswith("#"), "each config starts with a comment saying what it is"
    assert "Expect" in text.split("\nname:")[0] or "summary" in text.split("\nname:")[0]
    spec = load_spec(path)
    assert summarize(spec).total_params > 0


def test_notes_mnist_numbers():
    rows = summarize(load_spec("configs/mnist.yaml")).layers
    assert [(r.type, tuple(r.output_shape), r.params) for r in rows] == [
        ("Conv2D", (26, 26, 32), 320),
        ("MaxPooling2D", (13, 13, 32), 0),
        ("Conv2D", (11, 11, 64), 18496),
        ("MaxPooling2D", (5, 5, 64), 0),
        ("Flatten", (1600,), 0),
        ("Dense", (64,), 102464),
        ("Dense", (10,), 650),
    ]
    assert sum(r.params for r in rows) == 121930


def test_dataset_names_match_registry():
    # The spec side (names, keys) and the data side (loaders) of the dataset registry name the same datasets.
    from cnnkit.data import LOADERS
    from cnnkit.spec.datasets import DATASETS

    assert list(DATASETS) == list(LOADERS)


def test_mnist_cosine_is_the_notes_recipe_with_only_its_learning_rate_changed():
    """configs/mnist_cosine.yaml claims one change to the notes' recipe: a cosine decay from 0.002."""
    notes, cosine = load_spec("configs/mnist.yaml"), load_spec("configs/mnist_cosine.yaml")
    assert [(x.type, x.full) for x in cosine.layers] == [(x.type, x.full) for x in notes.layers]
    assert cosine.data == notes.data
    changed = {k for k in notes.train.keys() | cosine.train.keys() if notes.train.get(k) != cosine.train.get(k)}
    assert changed == {"optimizer", "lr_schedule"}
    assert cosine.train["optimizer"] == {**notes.train["optimizer"], "args": {"learning_rate": 0.002}}
    assert cosine.train["lr_schedule"]["name"] == "cosine_decay" and notes.train["lr_schedule"] is None

"""cnnkit/run/timing.py: the whole training step runs for every loss, on labels in the format that loss wants."""

import pytest

from cnnkit.spec import options
from cnnkit.spec.parse import load_spec_text


@pytest.mark.slow  # imports TensorFlow and compiles a model per loss
@pytest.mark.parametrize("loss", sorted(options.LOSSES))
def test_whole_step_runs_for_every_loss(loss):
    from cnnkit.backend import tensorflow
    from cnnkit.run.timing import _whole_step_ms

    # One sigmoid unit for the binary losses, a softmax over 3 classes for the others (parse checks the pairing).
    binary = options.LOSSES[loss].labels == options.BINARY
    head = "{units: 1, activation: sigmoid}" if binary else "{units: 3, activation: softmax}"
    spec = load_spec_text(
        f"name: tiny\ninput_shape: [4, 4, 1]\nlayers:\n  - Flatten\n  - Dense: {head}\n"
        f"train: {{optimizer: adam, loss: {loss}, metrics: [accuracy]}}\n"
    )
    assert _whole_step_ms(tensorflow(), spec, 4, 1) > 0

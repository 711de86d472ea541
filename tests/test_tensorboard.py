"""Every run writes TensorBoard event files under RUN/tensorboard/ without the `tensorboard` package: per-epoch
scalars (read back here and compared with history.json), the graph, and weight histograms only when asked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from clitools import TINY, train, write_spec

from cnnkit.run.tensorboard import histogram

# clitools' TINY net (one conv, one dense layer: 4 weight tensors), 2 epochs on 300 samples.
SPEC = TINY.replace("{dataset: digits}", "{dataset: digits, max_samples: 300}").replace("epochs: 3", "epochs: 2")


def read_events(folder: Path) -> list:
    """Every Event of every event file in `folder`, parsed with TensorFlow's own proto (no tensorboard)."""
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    events = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(str(path)):
            events.append(event_pb2.Event.FromString(record.numpy()))
    return events


def summaries(events) -> dict:
    """{(tag, plugin): {step: value}}."""
    import tensorflow as tf

    out = {}
    for event in events:
        for value in event.summary.value:
            key = (value.tag, value.metadata.plugin_data.plugin_name)
            out.setdefault(key, {})[event.step] = tf.make_ndarray(value.tensor)
    return out


def train_tiny(tmp_path: Path, *overrides) -> Path:
    return train(write_spec(tmp_path, SPEC, "tiny.yaml"), tmp_path / "runs", *overrides)


@pytest.mark.slow
def test_a_two_epoch_run_holds_every_per_epoch_scalar_and_the_graph(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # written without the tensorboard package
    run = train_tiny(tmp_path)
    history = json.loads((run / "history.json").read_text())
    train_events = read_events(run / "tensorboard" / "train")
    scalars = summaries(train_events)
    for key in ("loss", "accuracy", "learning_rate"):
        values = scalars[(f"epoch_{key}", "scalars")]
        assert sorted(values) == [1, 2]
        assert [float(values[s]) for s in (1, 2)] == pytest.approx(history[key], rel=1e-6)
    validation = summaries(read_events(run / "tensorboard" / "validation"))
    for key in ("loss", "accuracy"):
        values = validation[(f"epoch_{key}", "scalars")]
        assert [float(values[s]) for s in (1, 2)] == pytest.approx(history[f"val_{key}"], rel=1e-6)
    graphs = [e for e in train_events if e.WhichOneof("what") == "graph_def"]
    assert len(graphs) == 1
    from tensorflow.core.framework import graph_pb2

    ops = {node.op for node in graph_pb2.GraphDef.FromString(graphs[0].graph_def).node}
    assert "Conv2D" in ops and "MatMul" in ops
    assert not any(plugin == "histograms" for _, plugin in scalars)  # off by default


@pytest.mark.slow
def test_histograms_on_request_and_nothing_when_off(tmp_path):
    run = train_tiny(tmp_path / "on", "--set", "train.tensorboard={histograms: true, graph: false}")
    found = summaries(read_events(run / "tensorboard" / "train"))
    kernels = [tag for tag, plugin in found if plugin == "histograms"]
    assert len(kernels) == 4  # conv kernel + bias, dense kernel + bias
    buckets = next(iter(found[(kernels[0], "histograms")].values()))
    assert buckets.shape[1] == 3 and buckets[:, 2].sum() > 0
    assert not [e for e in read_events(run / "tensorboard" / "train") if e.WhichOneof("what") == "graph_def"]
    off = train_tiny(tmp_path / "off", "--epochs", "1", "--set", "train.tensorboard=false")
    assert not (off / "tensorboard").exists()


def test_histogram_buckets_count_every_value():
    values = np.array([0.0, 0.5, 1.0, 1.0])
    buckets = histogram(values, bins=2)
    assert buckets.tolist() == [[0.0, 0.5, 1.0], [0.5, 1.0, 3.0]]
    assert histogram(np.full(5, 2.0)).tolist() == [[2.0, 2.0, 5.0]]

"""Event files for TensorBoard under RUN/tensorboard/, written with TensorFlow alone.

`tf.summary.scalar` and Keras' TensorBoard callback need the `tensorboard` package, which TensorFlow 2.21 no longer
installs. The event format itself is TensorFlow's (`tf.summary.write` + a SummaryMetadata naming the plugin), so
cnnkit writes scalars, histograms and the graph with that and needs `tensorboard` only to look at them
(`pip install 'cnnkit[tensorboard]'`, then `tensorboard --logdir runs`).

Layout, as Keras' callback: tensorboard/train and tensorboard/validation, tags epoch_loss, epoch_accuracy, ...,
steps 1, 2, ... (the epoch numbers of history.csv).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FOLDER = "tensorboard"
HISTOGRAM_BINS = 30


def tensorboard_callbacks(keras, spec, run_dir: Path) -> list:
    """[] when the spec says train.tensorboard: false, else the one callback that writes the event files."""
    settings = spec.train.get("tensorboard")
    if not settings:
        return []
    from cnnkit.backend import tensorflow

    tf = tensorflow()
    from tensorflow.core.framework import summary_pb2

    def metadata(plugin: str):
        return summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin))

    scalar_meta, histogram_meta = metadata("scalars"), metadata("histograms")
    folder = Path(run_dir) / FOLDER
    input_shape = tuple(spec.input_shape)

    class EventWriter(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.writers = {}

        def _writer(self, name: str):
            if name not in self.writers:
                self.writers[name] = tf.summary.create_file_writer(str(folder / name))
            return self.writers[name]

        def on_train_begin(self, logs=None):
            if settings.get("graph"):
                with self._writer("train").as_default():
                    traced = tf.function(lambda x: self.model(x, training=False))
                    tf.summary.graph(
                        traced.get_concrete_function(tf.TensorSpec((None, *input_shape), tf.float32)).graph
                    )

        def on_epoch_end(self, epoch, logs=None):
            step = epoch + 1
            values = dict(logs or {})
            learning_rate = _learning_rate(self.model)
            if learning_rate is not None:
                values.setdefault("learning_rate", learning_rate)
            for key, value in values.items():
                split, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
                with self._writer(split).as_default():
                    tf.summary.write(f"epoch_{name}", tf.constant(float(value), tf.float32), step, metadata=scalar_meta)
            if settings.get("histograms"):
                with self._writer("train").as_default():
                    for weight in self.model.weights:
                        tensor = histogram(np.asarray(weight.numpy(), dtype=np.float64))
                        tf.summary.write(_tag(weight), tensor, step, metadata=histogram_meta)
            for writer in self.writers.values():
                writer.flush()  # a killed run keeps every completed epoch's events

        def on_train_end(self, logs=None):
            for writer in self.writers.values():
                writer.close()
            self.writers.clear()

    writer = EventWriter()
    writer.async_safe = True  # no batch hooks: Keras' asynchronous batch dispatch stays on
    return [writer]


def histogram(values: np.ndarray, bins: int = HISTOGRAM_BINS) -> np.ndarray:
    """TensorBoard's histogram tensor: one (left edge, right edge, count) row per bucket."""
    values = values.ravel()
    if values.size == 0:
        return np.zeros((0, 3))
    low, high = float(values.min()), float(values.max())
    if low == high:
        return np.array([[low, high, float(values.size)]])
    counts, edges = np.histogram(values, bins=bins, range=(low, high))
    return np.stack([edges[:-1], edges[1:], counts.astype(np.float64)], axis=1)


def _tag(weight) -> str:
    return getattr(weight, "path", None) or weight.name


def _learning_rate(model) -> float | None:
    rate = getattr(getattr(model, "optimizer", None), "learning_rate", None)
    if rate is None:
        return None
    try:
        return float(np.asarray(rate.numpy() if hasattr(rate, "numpy") else rate))
    except (TypeError, ValueError):  # a schedule object that is not a current value
        return None

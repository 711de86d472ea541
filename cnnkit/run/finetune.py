"""Apply train.fine_tune (cnnkit/spec/finetune.py) during fit: a Keras callback that unfreezes at an epoch's start."""

from __future__ import annotations

from cnnkit.spec.finetune import frozen_units


def fine_tune_callbacks(keras, spec) -> list:
    """[] without train.fine_tune; else the callback, to run before any callback that reads the learning rate."""
    cfg = spec.train.get("fine_tune")
    if not cfg:
        return []

    class FineTune(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.done = False

        def on_epoch_begin(self, epoch, logs=None):
            # `epoch` counts from 0; a resumed run past the epoch unfreezes at its first epoch
            if not self.done and epoch + 1 >= cfg["unfreeze_at_epoch"]:
                unfreeze(keras, self.model, spec, cfg)
                self.done = True

    return [FineTune()]


def unfreeze(keras, model, spec, cfg: dict) -> list[str]:
    """Make the chosen frozen layers trainable (BatchNormalization excepted), give the model a fresh optimizer
    (its old one knows only the variables that were trainable) and retrace the train step. Returns the names
    of the layers made trainable."""
    units = frozen_units(spec.layers)
    chosen = set(units if cfg["last"] is None else units[-cfg["last"] :])
    names = []
    for i, layer in enumerate(model.layers):
        parts = [(i, j) for (k, j) in units if k == i]
        if not parts or not any(p in chosen for p in parts):
            continue
        layer.trainable = True  # Keras sets every sublayer too; the ones not chosen are frozen again below
        for part in parts:
            inner = layer if part[1] is None else layer.inner[part[1]]
            if part not in chosen:
                inner.trainable = False
            else:
                names.append(inner.name)
        for sub in _all_layers(layer):
            if isinstance(sub, keras.layers.BatchNormalization):
                sub.trainable = False  # inference mode: its moving statistics stay as learned
    old = model.optimizer
    rate = cfg["learning_rate"]
    if rate is None:
        rate = float(keras.ops.convert_to_numpy(old.learning_rate))
    config = {**old.get_config(), "learning_rate": rate}
    fresh = type(old).from_config(config)
    fresh.build(model.trainable_variables)
    model.optimizer = fresh
    model.make_train_function(force=True)
    return names


def _all_layers(layer):
    yield layer
    for child in getattr(layer, "inner", None) or []:
        yield from _all_layers(child)

"""What fit() runs besides the training step: the callbacks in their order, the epoch-end recorder (history,
best.keras, then the checkpoint that says all of it is complete), the NaN guard, and the one way a model file is
written (whole, or not at all)."""

from __future__ import annotations

import math
from pathlib import Path

from cnnkit.backend import is_tf_keras
from cnnkit.run import checkpoint
from cnnkit.run.finetune import fine_tune_callbacks
from cnnkit.run.folder import unwritable, write_history
from cnnkit.run.tensorboard import tensorboard_callbacks


def fit_callbacks(keras, spec, run_dir, history, has_val, reporter, steps, stop, manifest, home, writer, twin) -> list:
    """Every callback of fit(), in the order Keras calls them (the order matters, see each line)."""
    from cnnkit.run.replay import epoch_start

    monitor = spec.train["monitor"] if has_val or not spec.train["monitor"].startswith("val_") else "loss"
    learning_rates: dict = {}
    # First: seeds the epoch, answers a signal after each batch, notes the epoch's learning rate before
    # ReduceLROnPlateau changes it for the next one.
    callbacks = [epoch_start(keras, spec.train["seed"], stop, learning_rates), nan_guard(keras)]
    if spec.train.get("early_stopping") is not None:
        callbacks.append(keras.callbacks.EarlyStopping(**{"monitor": monitor, **spec.train["early_stopping"]}))
    if spec.train.get("reduce_lr_on_plateau") is not None:
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(**{"monitor": monitor, **spec.train["reduce_lr_on_plateau"]})
        )
    # After the callbacks whose state it saves (and restores, in on_train_begin, after they reset themselves).
    stateful = callbacks[2:]
    callbacks += tensorboard_callbacks(keras, spec, run_dir)
    callbacks.append(recorder(keras, run_dir, home, writer, history, monitor, manifest, stateful, learning_rates, twin))
    if reporter is not None:
        callbacks.append(reporter.keras_callback(keras, spec.train["epochs"], steps))
    # train.fine_tune first of all: it changes the optimizer, whose learning rate epoch_start then notes
    return fine_tune_callbacks(keras, spec) + callbacks


def recorder(keras, run_dir, home, writer, history, monitor, manifest, stateful, learning_rates, twin):
    """At every epoch end: history, best.keras, then the checkpoint whose manifest says all of it is complete.
    `home`: where the checkpoint was read (the chief's folder); `writer`: False on a multi_worker non-chief, which
    computes the same arrays (reading a variable may be a collective) but writes no checkpoint."""
    saved = manifest or {}

    class Recorder(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.best = saved.get("best")
            self.epoch = int(saved.get("epoch", 0))

        def on_train_begin(self, logs=None):
            if manifest:  # the callbacks reset themselves in their own on_train_begin, just before this one
                checkpoint.restore_callbacks(home, manifest, stateful)

        def on_epoch_end(self, epoch, logs=None):
            logs = dict(logs or {})
            if epoch in learning_rates:
                logs["learning_rate"] = learning_rates[epoch]
            for key, value in logs.items():
                history.setdefault(key, [])
                del history[key][epoch:]
                history[key].append(float(value))
            write_history(run_dir, history)
            current = logs.get(monitor)
            better = current is not None and (
                self.best is None or (current < self.best if "loss" in monitor else current > self.best)
            )
            if better:
                self.best = current
                save_model(self.model, run_dir / "best.keras", twin)
            self.epoch = epoch + 1
            self.save()

        def save(self, finished: bool = False):
            arrays = checkpoint.state_arrays(self.model, stateful)
            manifest_now = {
                "epoch": self.epoch,
                "history": history,
                "best": self.best,
                "monitor": monitor,
                "callbacks": checkpoint.callback_counters(stateful),
                "stopped": bool(self.model.stop_training),
                "finished": finished,
            }
            checkpoint.save(run_dir, arrays, manifest_now, write=writer)

    return Recorder()


def nan_guard(keras):
    if not is_tf_keras(keras):
        guard = keras.callbacks.TerminateOnNaN(raise_error=True)
        guard.async_safe = True  # reads only the logs it is given: keeps Keras' asynchronous batch dispatch on
        return guard

    class RaiseOnNaN(keras.callbacks.Callback):
        """tf-keras' TerminateOnNaN has no raise_error: it would end fit() quietly, as if it had finished. Under
        multi_worker the logged loss is the all-reduced one, so every worker raises at the same batch."""

        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}")

    return RaiseOnNaN()


def save_model(model, path: Path, twin=None) -> None:
    """model.save to a temp name, then rename: a crash never leaves a half-written model.keras.
    `twin`: a tf-keras model's Keras 3 twin (see train._float32_twin), which writes the file."""
    if twin is not None:
        twin.set_weights(model.get_weights())
        model = twin
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    try:
        model.save(tmp)
        tmp.replace(path)
    except OSError as err:  # a full disk or a read-only folder
        tmp.unlink(missing_ok=True)
        raise unwritable(path, err) from None

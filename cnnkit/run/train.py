"""Train a spec: data -> model -> fit with Keras callbacks -> a self-contained run folder."""

from __future__ import annotations

import contextlib
import math
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from cnnkit import __version__
from cnnkit.backend import is_tf_keras, keras_version
from cnnkit.data.feed import arrange, check_fit, keep_classes
from cnnkit.errors import Interrupted, RunError, SpecError, TrainingDiverged
from cnnkit.run import devices
from cnnkit.run.folder import new_run_dir, point_latest, read_json, resolve_run, unwritable, write_history, write_json
from cnnkit.spec import options
from cnnkit.spec.parse import Spec, load_spec
from cnnkit.spec.summary import summarize

BACKUP = "backup"


@dataclass
class TrainRequest:
    spec_file: Path | None = None
    overrides: tuple = ()
    epochs: int | None = None
    data_dir: str | None = None
    device: str = "auto"
    seed: int | None = None
    out: Path = Path("runs")
    resume: Path | None = None
    strategy: str | None = None
    # Called once the run is complete, as after_training(run_dir, model=, splits=, feed=, summary=): the CLI
    # passes viz.pictures.draw_run_pictures. A hook, because the run side never imports the picture side.
    after_training: Callable[..., object] | None = None


@dataclass
class TrainResult:
    run_dir: Path
    metrics: dict
    history: dict
    epochs_run: int
    worker: str | None = None  # multi_worker: "worker 1", "chief 0"...; None otherwise
    weights_sha256: str | None = None


def prepare(request: TrainRequest) -> tuple[Spec, Path | None, dict]:
    """Everything that can fail without TensorFlow: the spec, the run to resume, its settings."""
    if request.resume is not None:
        if request.spec_file is not None or request.overrides:
            raise SpecError("--resume continues a run with its own spec; drop the SPEC argument and --set")
        run_dir = resolve_run(request.resume)
        previous = read_json(run_dir / "run.json", {})
        if previous.get("status") == "completed":
            raise RunError(f"run {run_dir} already completed all its epochs; nothing to resume")
        spec = load_spec(run_dir / "spec.yaml")
        return spec, run_dir, previous
    if request.spec_file is None:
        raise SpecError("give a SPEC file to train, or --resume RUN")
    overrides = list(request.overrides)
    if request.epochs is not None:
        overrides.append(f"train.epochs={request.epochs}")
    if request.seed is not None:
        overrides.append(f"train.seed={request.seed}")
    if request.strategy is not None:
        overrides.append(f"train.distribution.strategy={request.strategy}")
    return load_spec(request.spec_file, overrides), None, {}


def train(request: TrainRequest, reporter=None) -> TrainResult:
    with contextlib.ExitStack() as cleanup:  # a non-chief worker's scratch folder goes, whatever happens
        try:
            return _train(request, reporter, cleanup)
        except Exception as err:
            lost = devices.lost_worker(err)  # multi_worker: a peer died; None for every other error
            if lost is None:
                raise
            raise lost from None


def _train(request: TrainRequest, reporter, cleanup: contextlib.ExitStack) -> TrainResult:
    spec, resume_dir, previous = prepare(request)
    # multi_worker: TF_CONFIG is checked and tf-keras selected now, before TensorFlow is imported.
    cluster = devices.cluster_for(spec.train)
    shared_dir = None
    if cluster is not None:
        shared_dir, resume_dir, previous = _cluster_run(cluster, request.out, spec, resume_dir)
    summary = summarize(spec)
    device = previous.get("device", {}).get("requested", request.device) if resume_dir else request.device
    data_dir = previous.get("data_dir") if resume_dir and request.data_dir is None else request.data_dir
    devices.hide_gpus_if_cpu(device)
    seed = spec.train["seed"]

    from cnnkit.data import load_splits

    classes, max_samples = spec.data.get("classes"), spec.data.get("max_samples")
    # data.classes before data.max_samples: N training samples of the task asked for, not N of every class
    # of which only the kept classes survive (3,000 MNIST images hold only ~640 zeros and ones).
    splits = load_splits(
        {**spec.data, "max_samples": None} if classes else spec.data,
        data_dir=data_dir,
        seed=seed,
        input_shape=tuple(spec.input_shape),
    )
    splits = keep_classes(splits, classes)
    if classes and max_samples:
        from cnnkit.data.splits import carve

        splits = carve(splits, validation_split=0, test_split=0, max_samples=max_samples, seed=seed)
    feed = check_fit(spec, summary, splits)

    from cnnkit.backend import tensorflow

    tf = tensorflow()
    devices.split_cpus(tf, spec.train)  # before anything initialises TensorFlow's devices
    keras = tf.keras
    device_info = devices.describe(tf, device)
    keras.utils.set_random_seed(seed)
    if spec.train["deterministic"]:
        tf.config.experimental.enable_op_determinism()
    mixed = spec.train["mixed_precision"] and device_info["used"] == "gpu"
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    strategy, distribution = devices.strategy_for(tf, spec.train, device_info, cluster)
    distribution, strategy_line = devices.report(distribution, spec.train["batch_size"])
    if cluster is not None:
        _check_cluster(tf, strategy, cluster, spec, splits, shared_dir / BACKUP, previous)
    if distribution["strategy"] != "none" and hasattr(reporter, "note"):
        reporter.note(strategy_line)

    # The model before the run folder: a spec that cannot be built (e.g. by tf-keras) leaves no folder behind.
    batch_size = spec.train["batch_size"]
    train_ds = _dataset(splits.x_train, splits.y_train, feed, splits, batch_size, seed, shuffle=spec.train["shuffle"])
    val_ds = _dataset(splits.x_val, splits.y_val, feed, splits, batch_size, seed)
    steps = -(-len(splits.x_train) // batch_size)
    with devices.scope(strategy), _tf_keras_limits(keras):
        model = _compiled_model(keras, spec, steps)
    twin = _keras3_twin(keras, spec, steps)

    run_dir = resume_dir or _new_run_dir(request.out, spec.name, cluster, shared_dir, cleanup)
    if resume_dir is None:
        from cnnkit.run.folder import atomic_write

        atomic_write(run_dir / "spec.yaml", spec.resolved_yaml())
    run_info = {
        "cnnkit": __version__,
        "tensorflow": tf.__version__,
        "keras": keras_version(keras),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device_info,
        "strategy": distribution["strategy"],
        "distribution": distribution,
        "mixed_precision": mixed,
        "seed": seed,
        "deterministic": spec.train["deterministic"],
        "command": sys.argv,
        "data_dir": str(Path(data_dir).resolve()) if data_dir else None,
        "data_source": splits.source,
        "class_names": splits.class_names,
        "samples": {"train": len(splits.x_train), "val": _len(splits.x_val), "test": _len(splits.x_test)},
        "feed": {"squeeze_channel": feed.squeeze_channel, "channels_first": feed.channels_first, "labels": feed.labels},
        "started": previous.get("started") or _now(),
        "resumed": previous.get("resumed", []) + ([_now()] if resume_dir else []),
        "status": "running",
    }
    write_json(run_dir / "run.json", run_info)
    point_latest(run_dir)

    history = read_json(run_dir / "history.json", {}) if resume_dir else {}
    if resume_dir:
        _repair_backup(run_dir / BACKUP)
    callbacks = _callbacks(
        keras,
        spec,
        run_dir,
        history,
        val_ds is not None,
        reporter,
        steps,
        backup_dir=(shared_dir or run_dir) / BACKUP,
        twin=twin,
    )
    try:
        # shuffle=False: the tf.data pipeline already shuffles (seeded) every epoch.
        model.fit(
            train_ds, validation_data=val_ds, epochs=spec.train["epochs"], verbose=0, callbacks=callbacks, shuffle=False
        )
    except KeyboardInterrupt:
        _ignore_further_ctrl_c()  # a second Ctrl-C must not cut the run.json write short
        done = len(next(iter(history.values()), []))
        write_json(run_dir / "run.json", {**run_info, "status": "interrupted", "ended": _now()})
        raise Interrupted(
            f"interrupted after {done} completed epoch(s); progress is saved in {run_dir}",
            hint=f"resume with: cnnkit train --resume {run_dir}",
        ) from None
    except RuntimeError as err:
        if "NaN or Inf loss" not in str(err):
            raise
        done = len(next(iter(history.values()), []))
        write_json(run_dir / "run.json", {**run_info, "status": "diverged", "ended": _now()})
        raise TrainingDiverged(
            f"the loss became NaN/inf during epoch {done + 1}; training stopped. The last good state "
            f"(epoch {done}) is kept in {run_dir / BACKUP}"
            + (" and best.keras" if (run_dir / "best.keras").exists() else ""),
            hint="lower the learning rate or add BatchNormalization, then --resume",
        ) from None
    except OSError as err:  # Keras' own backup write on a full disk or read-only folder
        raise RunError(
            f"cannot write to {run_dir}: {err.strerror or err}",
            hint=f"free disk space, then: cnnkit train --resume {run_dir}",
        ) from None
    except Exception as err:
        lost = devices.lost_worker(err)  # multi_worker: another worker died mid-epoch
        if lost is None:
            raise
        write_json(run_dir / "run.json", {**run_info, "status": "worker lost", "ended": _now()})
        raise lost from None

    if twin is not None:  # tf-keras: go on with the Keras 3 twin, which needs no other worker from here on
        twin.set_weights(model.get_weights())
        model = twin
    weights_sha256 = devices.weights_sha256(model)
    _save_model(model, run_dir / "model.keras")
    metrics = {"train": _last(history, train=True), "val": _last(history, train=False)}
    if splits.x_test is not None and len(splits.x_test):
        test_ds = _dataset(splits.x_test, splits.y_test, feed, splits, batch_size, seed)
        metrics["test"] = {k: float(v) for k, v in model.evaluate(test_ds, verbose=0, return_dict=True).items()}
    write_json(run_dir / "metrics.json", metrics)
    epochs_run = len(next(iter(history.values()), []))
    write_json(
        run_dir / "run.json",
        {
            **run_info,
            "status": "completed",
            "ended": _now(),
            "epochs_run": epochs_run,
            "weights_sha256": weights_sha256,
        },
    )
    # Only now: a run killed after fit() but before "completed" resumes at its last epoch, not from scratch.
    shutil.rmtree(run_dir / BACKUP, ignore_errors=True)
    if request.after_training is not None and (cluster is None or cluster.is_chief):
        request.after_training(run_dir, model=model, splits=splits, feed=feed, summary=summary)
    return TrainResult(
        shared_dir or run_dir,
        metrics,
        history,
        epochs_run,
        worker=cluster.task if cluster is not None else None,
        weights_sha256=weights_sha256,
    )


def _repair_backup(folder: Path) -> None:
    """Keras writes backup/training_metadata.json in place, so a kill mid-write leaves it unparseable (Keras would
    then crash on resume). Fall back to the previous checkpoint pair, or else start the backup afresh."""
    import json

    def readable(path: Path) -> bool:
        try:
            json.loads(path.read_text())
            return True
        except (OSError, ValueError):
            return False

    meta = folder / "training_metadata.json"
    if not meta.exists() or readable(meta):
        return
    previous = folder / "training_metadata.json.bkp"
    if readable(previous) and (folder / "latest.weights.h5.bkp").exists():
        shutil.copyfile(folder / "latest.weights.h5.bkp", folder / "latest.weights.h5")
        shutil.copyfile(previous, meta)
    else:
        shutil.rmtree(folder, ignore_errors=True)


def _len(array) -> int:
    return 0 if array is None else int(len(array))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _dataset(x, y, feed, splits, batch_size, seed, shuffle=False):
    if x is None or not len(x):
        return None
    from cnnkit.data.pipeline import to_tf_dataset

    if feed.labels == "binary":
        y = y.reshape(-1, 1)
    return to_tf_dataset(
        arrange(x, feed),
        y,
        batch_size=batch_size,
        num_classes=splits.num_classes,
        one_hot=feed.labels == "onehot",
        shuffle=shuffle,
        seed=seed,
    )


def _compiled_model(keras, spec, steps_per_epoch: int):
    from cnnkit.run.build import build_model

    model = build_model(spec, keras)
    model.compile(
        optimizer=make_optimizer(keras, spec.train, steps_per_epoch),
        loss=_loss(keras, spec.train["loss"]),
        metrics=[_metric(keras, m) for m in spec.train["metrics"]],
    )
    return model


def make_optimizer(keras, train_cfg: dict, steps_per_epoch: int):
    opt = train_cfg["optimizer"]
    args = dict(opt["args"])
    schedule = train_cfg.get("lr_schedule")
    if schedule:
        entry = options.SCHEDULES[schedule["name"]]
        sched_args = dict(schedule["args"])
        total = steps_per_epoch * train_cfg["epochs"]
        if "decay_steps" in entry.args:
            sched_args.setdefault("decay_steps", total)
        if "first_decay_steps" in entry.args:
            sched_args.setdefault("first_decay_steps", total)
        if entry.keras_class != "PiecewiseConstantDecay":
            sched_args["initial_learning_rate"] = args.pop("learning_rate", 0.001)
        args["learning_rate"] = getattr(keras.optimizers.schedules, entry.keras_class)(**sched_args)
    return getattr(keras.optimizers, options.OPTIMIZERS[opt["name"]].keras_class)(**args)


def _loss(keras, loss: dict):
    return getattr(keras.losses, options.LOSSES[loss["name"]][0])(**loss["args"])


def _metric(keras, metric: dict):
    cls = options.METRICS[metric["name"]][0]
    if cls == "accuracy":
        return "accuracy"  # Keras picks binary/categorical/sparse accuracy to match the loss
    return getattr(keras.metrics, cls)(**metric["args"])


def _save_model(model, path: Path, twin=None) -> None:
    """model.save to a temp name, then rename: a crash never leaves a half-written model.keras.
    `twin`: a tf-keras model's Keras 3 twin (see _keras3_twin), which writes the file."""
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


def _last(history: dict, *, train: bool) -> dict:
    return {
        k.removeprefix("val_"): v[-1]
        for k, v in history.items()
        if v and k != "learning_rate" and k.startswith("val_") != train
    }


def _callbacks(
    keras,
    spec,
    run_dir: Path,
    history: dict,
    has_val: bool,
    reporter,
    steps: int,
    backup_dir: Path | None = None,
    twin=None,
) -> list:
    monitor = spec.train["monitor"] if has_val or not spec.train["monitor"].startswith("val_") else "loss"
    # delete_checkpoint=False: train() removes the backup only once run.json says completed.
    backup = _backup_callback(keras, backup_dir or run_dir / BACKUP)
    # Its batch hook does nothing with save_freq="epoch"; marking it async-safe keeps Keras'
    # asynchronous batch dispatch on (a per-batch sync would slow every step).
    backup.async_safe = True
    nan_guard = _nan_guard(keras)
    nan_guard.async_safe = True  # reads only the logs it is given
    # The recorder before the backup: a run killed between the two resumes at the epoch whose history row it
    # has (and rewrites that row), instead of skipping an epoch whose row was never written.
    callbacks = [_recorder(keras, run_dir, history, monitor, twin), backup, nan_guard]
    if spec.train.get("early_stopping") is not None:
        callbacks.append(keras.callbacks.EarlyStopping(**{"monitor": monitor, **spec.train["early_stopping"]}))
    if spec.train.get("reduce_lr_on_plateau") is not None:
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(**{"monitor": monitor, **spec.train["reduce_lr_on_plateau"]})
        )
    if reporter is not None:
        callbacks.append(reporter.keras_callback(keras, spec.train["epochs"], steps))
    return callbacks


def _recorder(keras, run_dir: Path, history: dict, monitor: str, twin=None):
    """Writes history and best.keras at every epoch end, so a killed run keeps what it had."""

    class Recorder(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            values = history.get(monitor, [])
            self.best = (min if "loss" in monitor else max)(values) if values else None

        def on_epoch_end(self, epoch, logs=None):
            logs = dict(logs or {})
            lr = getattr(self.model.optimizer, "learning_rate", None)
            if lr is not None:
                logs["learning_rate"] = _as_float(keras, lr)
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
                _save_model(self.model, run_dir / "best.keras", twin)

    return Recorder()


# --- multi_worker ---------------------------------------------------------------------------------------------
# It trains on tf-keras (see cnnkit/run/devices.py for why). These helpers hold the few places where tf-keras' API
# differs from Keras 3's, and the run-folder rules of a cluster: the chief writes the run folder, other workers
# write nothing that outlives them.


def _cluster_run(cluster, out: Path, spec, resume_dir: Path | None):
    """(the run folder every worker names alike, the folder to continue, its run.json).

    A restarted cluster finds its unfinished run under the same name and continues it (BackupAndRestore restores
    the epoch). Only the chief continues a folder; a completed one is refused after all workers have met
    (_check_cluster), so that no worker waits for a chief that has already left."""
    shared = resume_dir or Path(out) / cluster.run_name(spec.name, spec.resolved_yaml())
    if not cluster.is_chief:
        return shared, None, {}
    previous = read_json(shared / "run.json")
    if previous is None or not (shared / "spec.yaml").exists():
        return shared, None, {}
    return shared, shared, previous


def _new_run_dir(out: Path, name: str, cluster, shared_dir: Path | None, cleanup: contextlib.ExitStack) -> Path:
    if cluster is None:
        return new_run_dir(out, name)
    if cluster.is_chief:
        try:
            shared_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise unwritable(shared_dir, err) from None
        return shared_dir
    # A non-chief worker runs the same code into a scratch folder that goes when train() returns. tf-keras'
    # BackupAndRestore reads the chief's backup and writes its own copy to backup/workertemp_N, removed after
    # each save; the empty folders that may leave (when --out is not shared with the chief) are removed too.
    made = [d for d in (shared_dir / BACKUP, shared_dir, Path(out)) if not d.exists()]
    cleanup.callback(_remove_empty, made)
    scratch = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="cnnkit-worker-"))) / "run"
    scratch.mkdir()
    return scratch


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        with contextlib.suppress(OSError):  # not empty (the chief's, on a shared filesystem) or already gone
            folder.rmdir()


def _check_cluster(tf, strategy, cluster, spec, splits, backup_dir: Path, previous: dict) -> None:
    import hashlib

    latest = tf.train.latest_checkpoint(str(backup_dir / "chief"))  # tf-keras' BackupAndRestore layout
    facts = {
        "the spec": int(hashlib.sha256(spec.resolved_yaml().encode()).hexdigest()[:12], 16),
        "the number of training samples": len(splits.x_train),
        "the chief's backup (checkpoint number)": int(latest.rsplit("-", 1)[1]) if latest else -1,
    }
    hints = {
        "the spec": "start every worker with the same spec file and --set values",
        "the number of training samples": "give every worker the same dataset (data.* and --data-dir)",
        "the chief's backup (checkpoint number)": f"a restarted run continues from the chief's backup in "
        f"{backup_dir}: put --out on a filesystem all workers share",
    }
    chief = devices.check_workers_agree(
        tf, strategy, cluster.size, facts, hints, chief_facts={"completed": int(previous.get("status") == "completed")}
    )
    if chief["completed"]:
        raise RunError(
            f"{backup_dir.parent} already holds this spec's completed run on {cluster.size} workers",
            hint="pass another --out (or --seed) to train again, or remove that folder",
        )


@contextlib.contextmanager
def _tf_keras_limits(keras):
    """Under tf-keras a Keras-3-only layer, argument, loss or optimizer fails with a bare TypeError/ValueError."""
    try:
        yield
    except (TypeError, ValueError, AttributeError) as err:
        if not is_tf_keras(keras):
            raise
        raise SpecError(
            f"strategy multi_worker trains with tf-keras {keras_version(keras).split()[-1]}, which cannot "
            f"build this spec: {err}",
            hint="use layers and arguments tf-keras (Keras 2) has, or train with strategy none/mirrored",
        ) from None


def _keras3_twin(keras, spec, steps: int):
    """tf-keras writes .keras files that Keras 3 refuses (their optimizer config has tf-keras-only keys), and
    `cnnkit evaluate`/`predict` load with Keras 3. So the same network is built once more with Keras 3, from the
    spec, and every model file is written from it with the trained weights copied in (the optimizer's state is not
    carried over: resuming uses the backup). None when training on Keras 3 already."""
    if not is_tf_keras(keras):
        return None
    import keras as keras3

    twin = _compiled_model(keras3, spec, steps)
    # Built, so the file holds a full (fresh) optimizer state: Keras warns when loading a file that has none.
    twin.optimizer.build(twin.trainable_variables)
    return twin


def _backup_callback(keras, folder: Path):
    if is_tf_keras(keras):
        # tf-keras has no double_checkpoint: its CheckpointManager writes a new checkpoint beside the last one and
        # then switches its `checkpoint` index file atomically, so a kill mid-write leaves the previous one.
        return keras.callbacks.BackupAndRestore(str(folder), delete_checkpoint=False)
    return keras.callbacks.BackupAndRestore(str(folder), double_checkpoint=True, delete_checkpoint=False)


def _nan_guard(keras):
    if not is_tf_keras(keras):
        return keras.callbacks.TerminateOnNaN(raise_error=True)

    class RaiseOnNaN(keras.callbacks.Callback):
        """tf-keras' TerminateOnNaN has no raise_error: it would end fit() quietly, as if it had finished. Under
        multi_worker the logged loss is the all-reduced one, so every worker raises at the same batch."""

        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}")

    return RaiseOnNaN()


def _as_float(keras, value) -> float:
    if is_tf_keras(keras):  # tf-keras has no keras.ops
        return float(keras.backend.get_value(value))
    if hasattr(value, "numpy"):  # a Variable: convert_to_numpy(Variable) trips NumPy 2's copy-keyword warning
        return float(value.numpy())
    return float(keras.ops.convert_to_numpy(value))


def _ignore_further_ctrl_c() -> None:
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)

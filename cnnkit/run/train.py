"""Train a spec: data -> model -> fit with Keras callbacks -> a self-contained run folder."""

from __future__ import annotations

import contextlib
import gc
import platform
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from cnnkit import __version__
from cnnkit.backend import cpu_kernels, is_tf_keras, keras_version
from cnnkit.data.feed import arrange, check_fit, keep_classes
from cnnkit.errors import Interrupted, RunError, SpecError, TrainingDiverged
from cnnkit.run import checkpoint, devices, precision, recording, stopping, workers
from cnnkit.run.batching import inference_batch
from cnnkit.run.class_weights import weighted_training
from cnnkit.run.compiled import compiled_model
from cnnkit.run.evaluate import evaluate_arrays, flipped_views
from cnnkit.run.folder import (
    atomic_write,
    point_latest,
    read_json,
    resolve_run,
    write_history,
    write_json,
)
from cnnkit.spec.parse import Spec, load_spec

# `--set` keys a resumed run may change: they act on the saved state from the next epoch on. Anything else (layers,
# data, batch size, seed...) would make the saved state mean something else.
RESUME_SETTABLE = (
    "train.epochs",
    "train.optimizer.learning_rate",
    "train.early_stopping",
    "train.reduce_lr_on_plateau",
)


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
    # Called once the run is complete, as after_training(run_dir, model=, splits=, feed=, summary=, spec=, history=,
    # evaluation=, run_info=);
    # the CLI passes viz.pictures.draw_run_pictures. A hook, because the run side never imports the picture side.
    after_training: Callable[..., object] | None = None
    # Called as on_metrics(history, metrics, draws) once the test metrics are known, before after_training (which
    # runs when `draws`): the CLI prints the result there, so the user reads it while the pictures are drawn.
    on_metrics: Callable[[dict, dict, bool], object] | None = None


@dataclass
class TrainResult:
    run_dir: Path
    metrics: dict
    history: dict
    epochs_run: int
    worker: str | None = None  # multi_worker: "worker 1", "chief 0"...; None otherwise
    weights_sha256: str | None = None


@dataclass
class Prepared:
    spec: Spec
    resume_dir: Path | None  # the real run folder (symlinks resolved once), or None for a new run
    previous: dict  # its run.json
    changes: list  # the --set values a resume applies


def prepare(request: TrainRequest) -> Prepared:
    """Everything that can fail without TensorFlow: the spec, the run to resume, its settings."""
    if request.resume is None:
        if request.spec_file is None:
            raise SpecError("give a SPEC file to train, or --resume RUN")
        overrides = list(request.overrides)
        if request.epochs is not None:
            overrides.append(f"train.epochs={request.epochs}")
        if request.seed is not None:
            overrides.append(f"train.seed={request.seed}")
        if request.strategy is not None:
            overrides.append(f"train.distribution.strategy={request.strategy}")
        return Prepared(load_spec(request.spec_file, overrides), None, {}, [])
    if request.spec_file is not None:
        raise SpecError("--resume continues a run with its own spec; drop the SPEC argument")
    if request.seed is not None or request.strategy is not None:
        raise SpecError("--resume continues a run with its own seed and strategy; drop --seed and --strategy")
    # The real folder: `runs/latest` or `runs` name it through a symlink, and `latest` must never point at itself.
    run_dir = resolve_run(request.resume).resolve()
    changes = list(request.overrides) + ([f"train.epochs={request.epochs}"] if request.epochs is not None else [])
    for item in changes:
        key = item.partition("=")[0].strip()
        if not any(key == k or key.startswith(k + ".") for k in RESUME_SETTABLE):
            raise SpecError(
                f"--resume --set {item}: a resumed run may change only {', '.join(RESUME_SETTABLE)}",
                hint="train a new run to change anything else",
            )
    previous = read_json(run_dir / "run.json", {})
    if previous.get("status") == "completed":
        shutil.rmtree(run_dir / checkpoint.FOLDER, ignore_errors=True)  # a kill just before its removal
        raise RunError(f"run {run_dir} already completed all its epochs; nothing to resume")
    spec = load_spec(run_dir / "spec.yaml")
    if changes:
        spec = load_spec(run_dir / "spec.yaml", _optimizer_as_mapping(spec, changes) + changes)
    return Prepared(spec, run_dir, previous, changes)


def _optimizer_as_mapping(spec: Spec, changes: list) -> list:
    """`--set train.optimizer.learning_rate=X` needs the mapping form; a spec may say just `optimizer: adam`."""
    if not any(c.startswith("train.optimizer.learning_rate") for c in changes):
        return []
    name = spec.train["optimizer"]["name"]
    raw_train = spec.raw.get("train") if isinstance(spec.raw, dict) else None
    if not isinstance(raw_train, dict):
        return [f"train={{optimizer: {{name: {name}}}}}"]
    if not isinstance(raw_train.get("optimizer"), dict):
        return [f"train.optimizer={{name: {name}}}"]
    return []


def train(request: TrainRequest, reporter=None) -> TrainResult:
    # A non-chief worker's scratch folder goes, whatever happens; SIGINT/SIGTERM stop the run cleanly.
    with contextlib.ExitStack() as cleanup, stopping.handled() as stop:
        try:
            return _train(request, reporter, cleanup, stop)
        except Exception as err:
            lost = devices.lost_worker(err)  # multi_worker: a peer died; None for every other error
            if lost is None:
                raise
            raise lost from None


def _train(request: TrainRequest, reporter, cleanup: contextlib.ExitStack, stop) -> TrainResult:
    prepared = prepare(request)
    spec, resume_dir, previous = prepared.spec, prepared.resume_dir, prepared.previous
    # multi_worker: TF_CONFIG is checked and tf-keras selected now, before TensorFlow is imported.
    cluster = devices.cluster_for(spec.train)
    shared_dir = None
    if cluster is not None:
        shared_dir, resume_dir, previous = workers.shared_run(cluster, request.out, spec, resume_dir)
    # Every worker reads the same (the chief's) checkpoint, so all take the same decisions from the same state.
    manifest = checkpoint.read_manifest(shared_dir or resume_dir) if (shared_dir or resume_dir) else None
    summary = spec.summary
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
    # A resumed run keeps the policy it started with: `auto` may resolve otherwise on another machine.
    requested = previous.get("precision", {}).get("policy") if resume_dir else None
    policy, policy_reason = precision.resolve(tf, requested or spec.train["precision"], device_info["used"])
    say = getattr(reporter, "note", None)  # multi_worker: who is awaited while the workers meet
    strategy, distribution = devices.strategy_for(tf, spec.train, device_info, cluster, say=say)
    distribution, strategy_line = devices.report(distribution, spec.train["batch_size"])
    if cluster is not None:
        workers.check_cluster(tf, strategy, cluster, spec, splits, shared_dir, previous, manifest)
    if distribution["strategy"] != "none" and hasattr(reporter, "note"):
        reporter.note(strategy_line)
    if policy != "float32" and hasattr(reporter, "note"):
        reporter.note(f"precision {policy} ({policy_reason}); variables and model files stay float32")

    # The model before the run folder: a spec that cannot be built (e.g. by tf-keras) leaves no folder behind.
    batch_size, epochs = spec.train["batch_size"], spec.train["epochs"]
    first_epoch = min(int(manifest["epoch"]), epochs) if manifest else 0
    train_ds = _train_batches(splits, feed, spec, first_epoch)
    val_ds = _dataset(splits.x_val, splits.y_val, feed, splits, inference_batch(spec, batch_size), seed)
    train_ds, class_weight = weighted_training(spec.train, train_ds, splits, feed)
    steps = -(-len(splits.x_train) // batch_size)
    with devices.scope(strategy), workers.tf_keras_limits(keras):
        model = compiled_model(keras, spec, steps, policy)
        if manifest:
            model.optimizer.build(model.trainable_variables)
            checkpoint.restore_model(shared_dir or resume_dir, manifest, model)
            _apply_changes(keras, model, spec, prepared.changes)
    twin = _float32_twin(keras, spec, steps, policy)

    run_dir = resume_dir or workers.run_dir_for(request.out, spec.name, cluster, shared_dir, cleanup)
    if resume_dir is None or prepared.changes:
        atomic_write(run_dir / "spec.yaml", spec.resolved_yaml())
    point_latest(run_dir)  # as soon as the folder can be resumed: `--resume runs/latest` finds it from here on
    if resume_dir is not None:
        _remove_temp_files(run_dir)
    run_info = {
        "cnnkit": __version__,
        "tensorflow": tf.__version__,
        "keras": keras_version(keras),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device_info,
        "cpu_kernels": cpu_kernels(),
        "strategy": distribution["strategy"],
        "distribution": distribution,
        "precision": {"requested": spec.train["precision"], "policy": policy, "why": policy_reason},
        "seed": seed,
        "deterministic": spec.train["deterministic"],
        "command": sys.argv,
        "data_dir": str(Path(data_dir).resolve()) if data_dir else None,
        "data_source": splits.source,
        "class_names": splits.class_names,
        "samples": {"train": len(splits.x_train), "val": _len(splits.x_val), "test": _len(splits.x_test)},
        "class_weight": class_weight,
        "feed": {"squeeze_channel": feed.squeeze_channel, "channels_first": feed.channels_first, "labels": feed.labels},
        "started": previous.get("started") or _now(),
        "resumed": previous.get("resumed", [])
        + ([{"at": _now(), "after_epoch": first_epoch, "set": prepared.changes}] if resume_dir else []),
        "status": "running",
    }
    write_json(run_dir / "run.json", run_info)
    history = {k: list(v) for k, v in (manifest or {}).get("history", {}).items()}
    if resume_dir is not None:
        write_history(run_dir, history)  # rows of an epoch whose checkpoint was not complete are redone
        if hasattr(reporter, "note"):
            reporter.note(_resume_line(run_dir, manifest, epochs, previous))
    writer = cluster is None or cluster.is_chief
    try:
        home = shared_dir or run_dir
        model, history = _fit(
            keras, spec, model, twin, train_ds, val_ds, run_dir, home, history, manifest, reporter, steps, stop, writer
        )
        # The training and validation images are done with. Freed now, before the test pass and the pictures: the
        # picture process then runs beside a smaller one (the peak memory of the two together: bench/README.md).
        # tf.data holds them in reference cycles (its functions and their captures): only a collection frees them.
        del train_ds, val_ds
        splits = replace(splits, x_train=None, y_train=None, x_val=None, y_val=None)
        gc.collect()
        # tf-keras or mixed precision: go on with the float32 Keras 3 twin (see _float32_twin), which needs no other
        # worker from here on and is the model the files hold.
        if twin is not None:
            twin.set_weights(model.get_weights())
            model = twin
        return _finish(request, spec, model, splits, feed, summary, run_dir, run_info, history, cluster, shared_dir)
    except KeyboardInterrupt as err:  # Ctrl-C, SIGTERM (stopping.Stop)
        stop.quiet()  # a second signal must not cut the run.json write short
        done = len(next(iter(history.values()), []))
        _mark(run_dir, run_info, "interrupted")
        where = "; progress is saved in" if done else "; no epoch was complete yet, the run starts again from"
        interrupted = Interrupted(
            f"interrupted after {done} completed epoch(s){where} {run_dir}",
            hint=f"resume with: cnnkit train --resume {run_dir}",
        )
        interrupted.exit_code = 128 + getattr(err, "signum", 2)  # 130 Ctrl-C, 143 SIGTERM: as the shell reports
        raise interrupted from None
    except RuntimeError as err:
        if "NaN or Inf loss" not in str(err):
            _mark(run_dir, run_info, f"failed: {_first_line(err)}")
            raise
        done = len(next(iter(history.values()), []))
        _mark(run_dir, run_info, f"failed: the loss became NaN/inf in epoch {done + 1}")
        raise TrainingDiverged(
            f"the loss became NaN/inf during epoch {done + 1}; training stopped. "
            + (f"The last good state (epoch {done}) is kept in {run_dir}" if done else "No epoch was complete")
            + (" and best.keras" if (run_dir / "best.keras").exists() else ""),
            hint=_nan_hint(spec, run_dir),
        ) from None
    except RunError as err:  # a checkpoint, history or model write on a full disk or read-only folder
        _mark(run_dir, run_info, f"failed: {err.message}")
        raise RunError(err.message, hint=f"free disk space, then: cnnkit train --resume {run_dir}") from None
    except OSError as err:
        _mark(run_dir, run_info, f"failed: {err.strerror or err}")
        raise RunError(
            f"cannot write to {run_dir}: {err.strerror or err}",
            hint=f"free disk space, then: cnnkit train --resume {run_dir}",
        ) from None
    except Exception as err:
        lost = devices.lost_worker(err)  # multi_worker: another worker died mid-epoch
        if lost is None:
            _mark(run_dir, run_info, f"failed: {type(err).__name__}: {_first_line(err)}")
            raise
        _mark(run_dir, run_info, "failed: worker lost")
        raise lost from None


def _fit(keras, spec, model, twin, train_ds, val_ds, run_dir, home, history, manifest, reporter, steps, stop, writer):
    """Train from the checkpoint's epoch to the end; returns (the trained model, its history)."""
    epochs = spec.train["epochs"]
    if manifest and manifest.get("finished"):
        return model, history  # killed after training: the saved state is the trained model
    callbacks = recording.fit_callbacks(
        keras, spec, run_dir, history, val_ds is not None, reporter, steps, stop, manifest, home, writer, twin
    )
    recorder = callbacks[-2] if reporter is not None else callbacks[-1]
    first_epoch = int(manifest["epoch"]) if manifest else 0
    # Every epoch is done, or EarlyStopping had stopped the run: fit() runs no epoch, only on_train_begin/end
    # (where EarlyStopping puts its best weights back).
    last = first_epoch if manifest and manifest.get("stopped") else max(epochs, first_epoch)
    with stop.after_each_batch():
        # shuffle=False: train_ds orders each epoch itself (seeded by epoch, see replay.py); one iterator spans
        # every epoch, steps_per_epoch batches each.
        model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=last,
            initial_epoch=first_epoch,
            steps_per_epoch=steps,
            verbose=0,
            callbacks=callbacks,
            shuffle=False,
        )
        recorder.save(finished=True)  # a kill from here on does not train again
    return model, history


def _finish(request, spec, model, splits, feed, summary, run_dir, run_info, history, cluster, shared_dir):
    """After training: model.keras, test metrics, pictures, then `completed`. A kill anywhere here resumes here."""
    weights_sha256 = devices.weights_sha256(model)
    recording.save_model(model, run_dir / "model.keras")
    metrics = {"train": _last(history, train=True), "val": _last(history, train=False)}
    evaluation = None
    if splits.x_test is not None and len(splits.x_test):
        # One predict pass gives the test metrics, eval.json, and the pictures' confusion matrix and examples.
        evaluation = evaluate_arrays(
            model,
            arrange(splits.x_test, feed),
            splits.y_test,
            splits.class_names,
            top_k=spec.train["top_k"],
            batch_size=inference_batch(spec, spec.train["batch_size"]),
            flipped=flipped_views(splits.x_test, spec.train["test_time_flip"], feed),
            test_time_flip=spec.train["test_time_flip"],
        )
        evaluation = replace(evaluation, model=str(run_dir / "model.keras"), data=splits.source)
        metrics["test"] = evaluation.metrics
        if evaluation.single_view_accuracy is not None:  # beside the flip-averaged accuracy, what one view scored
            metrics["test"]["single_view_accuracy"] = evaluation.single_view_accuracy
        write_json(run_dir / "eval.json", evaluation.to_dict())
    write_json(run_dir / "metrics.json", metrics)
    draws = request.after_training is not None and (cluster is None or cluster.is_chief)
    if request.on_metrics is not None:
        request.on_metrics(history, metrics, draws)
    epochs_run = len(next(iter(history.values()), []))
    info = {**run_info, "status": "completed", "ended": _now(), "epochs_run": epochs_run}
    if draws:
        request.after_training(
            run_dir,
            model=model,
            splits=splits,
            feed=feed,
            summary=summary,
            spec=spec,
            history=history,
            evaluation=evaluation,
            run_info=info,  # what run.json says once the pictures are drawn: the report shows the run complete
        )
    write_json(run_dir / "run.json", {**info, "weights_sha256": weights_sha256})
    # Only now: a run killed before "completed" resumes from its finished state, not from scratch.
    shutil.rmtree(run_dir / checkpoint.FOLDER, ignore_errors=True)
    return TrainResult(
        shared_dir or run_dir,
        metrics,
        history,
        epochs_run,
        worker=cluster.task if cluster is not None else None,
        weights_sha256=weights_sha256,
    )


def _train_batches(splits, feed, spec, first_epoch: int):
    from cnnkit.run.replay import epoch_batches

    y = splits.y_train.reshape(-1, 1) if feed.labels == "binary" else splits.y_train
    return epoch_batches(
        arrange(splits.x_train, feed),
        y,
        batch_size=spec.train["batch_size"],
        num_classes=splits.num_classes,
        one_hot=feed.labels == "onehot",
        shuffle=spec.train["shuffle"],
        seed=spec.train["seed"],
        first_epoch=first_epoch,
        epochs=spec.train["epochs"],
    )


def _apply_changes(keras, model, spec, changes: list) -> None:
    """--resume --set train.optimizer.learning_rate=X: on top of the restored optimizer state (which holds the
    learning rate the run had reached). Epochs and callback settings act through the rebuilt callbacks."""
    if not any(c.startswith("train.optimizer.learning_rate") for c in changes) or spec.train.get("lr_schedule"):
        return
    model.optimizer.learning_rate.assign(spec.train["optimizer"]["args"]["learning_rate"])


def _resume_line(run_dir: Path, manifest: dict | None, epochs: int, previous: dict) -> str:
    was = previous.get("status", "unknown")
    if was == "running":
        was = "running when its process ended"
    if manifest is None:
        return f"resuming {run_dir} (was {was}): no epoch was saved yet, training from epoch 1"
    done = int(manifest["epoch"])
    if manifest.get("finished") or done >= epochs:
        return f"resuming {run_dir} (was {was}): all {done} epochs are saved, finishing the run"
    return f"resuming {run_dir} (was {was}) after epoch {done} of {epochs}"


def _nan_hint(spec, run_dir: Path) -> str:
    schedule = spec.train.get("lr_schedule")
    if schedule and schedule["name"] == "piecewise_constant_decay":
        return "lower the values of train.lr_schedule or add BatchNormalization, and train a new run"
    lr = spec.train["optimizer"]["args"].get("learning_rate")
    if lr is None:
        lr = 0.01 if spec.train["optimizer"]["name"] == "sgd" else 0.001  # Keras' defaults
    return (
        f"lower the learning rate (or add BatchNormalization): cnnkit train --resume {run_dir} "
        f"--set train.optimizer.learning_rate={lr / 10:g}"
    )


def _mark(run_dir: Path, run_info: dict, status: str) -> None:
    """run.json says how the run ended. On a full disk the fsynced write may fail where a plain one still fits."""
    data = {**run_info, "status": status, "ended": _now()}
    try:
        write_json(run_dir / "run.json", data)
    except RunError:
        import json
        import os

        tmp = run_dir / f".run.json.{os.getpid()}.tmp"
        try:
            tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
            os.replace(tmp, run_dir / "run.json")
        except OSError:
            tmp.unlink(missing_ok=True)  # run.json keeps its previous content; the error line tells the rest


def _remove_temp_files(run_dir: Path) -> None:
    """Leftovers of writes a kill cut short (atomic_write's and model saves' temp names)."""
    for folder in (run_dir, run_dir / checkpoint.FOLDER):
        for leftover in folder.glob(".*.tmp*") if folder.is_dir() else ():
            leftover.unlink(missing_ok=True)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


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


def _last(history: dict, *, train: bool) -> dict:
    return {
        k.removeprefix("val_"): v[-1]
        for k, v in history.items()
        if v and k != "learning_rate" and k.startswith("val_") != train
    }


def _float32_twin(keras, spec, steps: int, policy: str):
    """The model that writes every model file, when the trained one cannot: the same network built once more in
    float32 with Keras 3, the trained weights copied in before each save (the optimizer's state is not carried over:
    resuming uses the checkpoint). None when the trained model is that already.

    - tf-keras (multi_worker) writes .keras files that Keras 3 refuses (their optimizer config has tf-keras-only
      keys), and `cnnkit evaluate`/`predict` load with Keras 3.
    - Under mixed precision the variables are float32 already; a float32 file evaluates, predicts and exports the
      same on every machine, where a bfloat16 graph would crawl on a CPU without bfloat16 units."""
    if not is_tf_keras(keras) and policy == "float32":
        return None
    import keras as keras3

    twin = compiled_model(keras3, spec, steps)
    # Built, so the file holds a full (fresh) optimizer state: Keras warns when loading a file that has none.
    twin.optimizer.build(twin.trainable_variables)
    return twin

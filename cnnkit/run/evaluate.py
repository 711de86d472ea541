"""Evaluate a trained model on its test split: loss, metrics, top-k, confusion matrix, per-class scores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from cnnkit.errors import DataError, ModelFileError
from cnnkit.run.folder import read_json, resolve_run, run_model, write_json


@dataclass
class Target:
    """What to evaluate: a model file, and the run folder it belongs to (if any)."""

    model_path: Path
    run_dir: Path | None
    run_info: dict
    spec: object | None


@dataclass(frozen=True)
class Predictions:
    """The test arrays and what the model made of them (for the pictures of mistakes)."""

    x: np.ndarray  # as the model takes them (uint8)
    y: np.ndarray  # true class ids
    y_pred: np.ndarray  # predicted class ids
    confidence: np.ndarray  # the predicted class's probability


@dataclass(frozen=True)
class Evaluation:
    """What `cnnkit evaluate` reports; `to_dict()` is its JSON (eval.json, --json)."""

    samples: int
    metrics: dict  # loss and every compiled metric, by Keras' names
    accuracy: float
    class_names: list[str]
    top_k: int
    top_k_accuracy: float | None  # None when there are no more than top_k classes
    confusion_matrix: list[list[int]]  # rows: true class, columns: predicted
    per_class: list[dict]
    predictions: Predictions = field(repr=False, compare=False)
    model: str = ""  # the model file evaluated
    data: str = ""  # where the test data came from
    test_time_flip: str | None = None  # train.test_time_flip: the flips averaged in (None: one view)
    single_view_accuracy: float | None = None  # with test_time_flip: the accuracy of the images as they are

    def to_dict(self) -> dict:
        out = {
            "model": self.model,
            "data": self.data,
            "samples": self.samples,
            "metrics": self.metrics,
            "accuracy": self.accuracy,
            "class_names": self.class_names,
        }
        if self.top_k_accuracy is not None:
            out[f"top_{self.top_k}_accuracy"] = self.top_k_accuracy
        if self.test_time_flip is not None:
            out.update(test_time_flip=self.test_time_flip, single_view_accuracy=self.single_view_accuracy)
        return {**out, "confusion_matrix": self.confusion_matrix, "per_class": self.per_class}


def resolve_target(target: str | Path, *, model_name: str = "model.keras") -> Target:
    path = Path(target)
    # A missing x.keras is a missing model file (modelfile says so), not a missing run folder.
    if path.is_dir() or path.suffix != ".keras":
        if path.suffix and path.suffix != ".keras" and not path.is_dir():
            raise ModelFileError(f"{path}: expected a run folder or a .keras model file")
        run_dir = resolve_run(path, need=model_name)
        from cnnkit.spec.parse import load_spec

        # An interrupted run has no model.keras yet: its best.keras stands in (the CLI says so, folder.model_note).
        model_path = run_model(run_dir) if model_name == "model.keras" else run_dir / model_name
        return Target(model_path, run_dir, read_json(run_dir / "run.json", {}), load_spec(run_dir / "spec.yaml"))
    return Target(path, None, {}, None)


def data_config(target: Target, data: str | None) -> dict:
    """The run's own data settings, or --data: a dataset name, or a file/folder a dataset kind reads."""
    from cnnkit.spec import datasets
    from cnnkit.spec.defaults import DATA_DEFAULTS

    if data is None:
        if target.spec is None:
            raise DataError(
                f"{target.model_path} is a bare model file: say which data to use with --data "
                f"(a dataset name such as mnist, or an .npz file)"
            )
        return dict(target.spec.data)
    cfg = dict(target.spec.data) if target.spec is not None else dict(DATA_DEFAULTS)
    name = datasets.for_data_arg(data, Path(data).is_dir())
    if name is None:
        raise DataError(
            f"--data {data!r} is neither a dataset name ({', '.join(datasets.DATASETS)}) "
            f"nor {datasets.data_arg_forms()}"
        )
    cfg.update(dataset=name, path=None if name == data else data)
    return cfg


def check_data(target: Target, data: str | None) -> None:
    """The data files evaluation will read exist and are of the right kind; nothing is loaded."""
    from cnnkit.data.paths import check_data_paths

    check_data_paths(data_config(target, data), hint="check the --data path" if data else "check data.path")


def load_test_split(target: Target, data: str | None, data_dir: str | None, model):
    """(test images laid out for `model`, their labels, the Splits they came from)."""
    x, y, splits, _ = _test_split_and_feed(target, data, data_dir, model)
    return x, y, splits


def _test_split_and_feed(target: Target, data: str | None, data_dir: str | None, model):
    from cnnkit.data import load_splits
    from cnnkit.data.feed import arrange, feed_for

    cfg = data_config(target, data)
    input_shape = tuple(int(d) for d in model.input_shape[1:])
    seed = target.spec.train["seed"] if target.spec is not None else 0
    data_dir = data_dir if data_dir is not None else target.run_info.get("data_dir")
    splits = load_splits(cfg, data_dir=data_dir, seed=seed, input_shape=input_shape)
    if target.spec is not None and cfg.get("classes"):
        from cnnkit.data.feed import keep_classes

        splits = keep_classes(splits, cfg["classes"])
    x, y = splits.x_test, splits.y_test
    if x is None or not len(x):
        raise DataError(f"{splits.source} has no test split to evaluate on")
    feed = feed_for(input_shape, tuple(x.shape[1:]), splits.source)
    return arrange(x, feed), y, splits, feed


def evaluate(
    target_path,
    *,
    data: str | None = None,
    data_dir: str | None = None,
    top_k: int | None = None,
    batch_size: int = 256,
    test_time_flip: str | None = "spec",
) -> Evaluation:
    """`test_time_flip`: one of options.TEST_TIME_FLIPS, None for one view, or "spec": the run's own setting."""
    from cnnkit.run.modelfile import load_model

    if test_time_flip not in (None, "spec", *FLIP_AXES):  # before the model's TensorFlow import
        raise DataError(
            f"--test-time-flip must be one of {', '.join(FLIP_AXES)} or none. Received: {test_time_flip!r}."
        )
    target = resolve_target(target_path)
    if target.model_path.exists():  # else load_model says the model file is missing, before any TF import
        check_data(target, data)  # before load_model: that imports TensorFlow
    model = load_model(target.model_path)
    x, y, splits, feed = _test_split_and_feed(target, data, data_dir, model)
    names = target.run_info.get("class_names") or splits.class_names
    k = top_k or (target.spec.train["top_k"] if target.spec is not None else 5)
    if test_time_flip == "spec":
        test_time_flip = target.spec.train["test_time_flip"] if target.spec is not None else None
    flipped = flipped_views(splits.x_test, test_time_flip, feed)
    result = evaluate_arrays(
        model, x, y, names, top_k=k, batch_size=batch_size, flipped=flipped, test_time_flip=test_time_flip
    )
    result = replace(result, model=str(target.model_path), data=splits.source)
    weighted = (target.run_info.get("class_weight") or {}).get("weights")
    if weighted and data is None:  # the weight each class had in training, beside its recall
        for row in result.per_class:
            row["weight"] = weighted.get(row["class"])
    if target.run_dir is not None:
        write_json(target.run_dir / "eval.json", result.to_dict())
    return result


# train.test_time_flip -> the axes of an (N, H, W, C) batch flipped for each extra view
FLIP_AXES = {
    "horizontal": [(2,)],
    "vertical": [(1,)],
    "horizontal_and_vertical": [(2,), (1,), (1, 2)],
}


def flipped_views(x: np.ndarray, mode: str | None, feed) -> list[np.ndarray]:
    """The flipped copies of an (N, H, W, C) image batch that test-time flipping adds to it ([] for None), each laid
    out for the model like the batch itself (data.feed.arrange)."""
    from cnnkit.data.feed import arrange

    if mode is None:
        return []
    if feed.squeeze_channel:  # the spec's checks refuse this too; --test-time-flip reaches here without them
        raise DataError(
            "test-time flips need a model that takes images (height, width, channels); this one reads each image "
            "as rows of a sequence",
            hint="drop --test-time-flip for this model",
        )
    return [arrange(np.ascontiguousarray(np.flip(x, axis=axes)), feed) for axes in FLIP_AXES[mode]]


def evaluate_arrays(
    model,
    x,
    y,
    names,
    *,
    top_k: int = 5,
    batch_size: int = 256,
    flipped: Sequence[np.ndarray] = (),
    test_time_flip: str | None = None,
) -> Evaluation:
    """The evaluation itself, on a loaded model and test arrays already laid out for it.

    `flipped`: the same images flipped by `test_time_flip` (flipped_views); the class probabilities are the mean
    over all views, and single_view_accuracy keeps what the images alone scored.
    """
    probs = predict_probabilities(model, x, batch_size)
    single_view_accuracy = None
    if len(flipped):
        single_view_accuracy = float((_predicted_classes(probs) == y).mean())
        probs = np.mean([probs] + [predict_probabilities(model, view, batch_size) for view in flipped], axis=0)
    classes = max(probs.shape[1], 2) if probs.ndim == 2 else 2
    y_pred = _predicted_classes(probs)
    probs_full = np.stack([1 - probs[:, 0], probs[:, 0]], axis=1) if probs.shape[-1] == 1 else probs
    if int(y.max()) >= classes:
        raise DataError(f"the test labels go up to {int(y.max())} but the model predicts {classes} classes")
    class_names = list(names)[:classes] if names else [str(i) for i in range(classes)]
    top_k_accuracy = None
    if classes > top_k:
        top = np.argsort(-probs_full, axis=1)[:, :top_k]
        top_k_accuracy = float((top == y[:, None]).any(axis=1).mean())
    cm = confusion_matrix(y, y_pred, classes)
    return Evaluation(
        samples=int(len(y)),
        metrics=_compiled_metrics(model, y, probs),
        accuracy=float((y_pred == y).mean()),
        class_names=class_names,
        top_k=top_k,
        top_k_accuracy=top_k_accuracy,
        confusion_matrix=cm.tolist(),
        per_class=per_class_scores(cm, class_names),
        predictions=Predictions(x, y, y_pred, probs_full.max(axis=1)),
        test_time_flip=test_time_flip if len(flipped) else None,
        single_view_accuracy=single_view_accuracy,
    )


def _predicted_classes(probs: np.ndarray) -> np.ndarray:
    """Class ids from probabilities: argmax, or > 0.5 for a single sigmoid unit."""
    if probs.shape[-1] == 1:
        return (probs[:, 0] > 0.5).astype(np.int64)
    return probs.argmax(axis=1)


def predict_probabilities(model, x, batch_size: int = 256) -> np.ndarray:
    from cnnkit.backend import tensorflow

    tf = tensorflow()
    # Scale per batch inside the graph: the uint8 array is never copied to float as a whole.
    ds = (
        tf.data.Dataset.from_tensor_slices(x)
        .batch(batch_size)
        .map(lambda b: tf.cast(b, tf.float32) / 255.0)
        .prefetch(tf.data.AUTOTUNE)
    )
    return np.asarray(model.predict(ds, verbose=0))


def _compiled_metrics(model, y, probs) -> dict:
    """Loss and every compiled metric, computed by Keras from the predictions already in hand.

    One inference pass instead of a second `model.evaluate` over the test set (bench/: 1.3 s saved
    on 10,000 MNIST images). Equal to `model.evaluate`: the loss over the whole set is the mean
    Keras' batches add up to, plus the same regularization terms (tests/test_evaluate.py checks).
    """
    if model.loss is None:
        return {}
    from cnnkit.backend import tensorflow

    tf = tensorflow()
    loss_name = getattr(model.loss, "name", str(model.loss))
    if probs.shape[-1] == 1:
        y_true = y.reshape(-1, 1).astype("float32")
    elif "sparse" in loss_name:
        y_true = y
    else:
        y_true = tf.keras.utils.to_categorical(y, probs.shape[-1])
    loss_fn = model.loss if callable(model.loss) else tf.keras.losses.get(model.loss)
    loss = float(np.asarray(loss_fn(y_true, probs))) + sum(float(np.asarray(term)) for term in model.losses)
    # compute_metrics adds onto the metric objects' state: after `train` they still hold the last validation pass.
    model.reset_metrics()
    metrics = {k: float(v) for k, v in model.compute_metrics(None, y_true, probs, None).items()}
    metrics["loss"] = loss
    return metrics


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, classes: int) -> np.ndarray:
    cm = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(cm, (y_true.astype(np.int64), y_pred.astype(np.int64)), 1)
    return cm


def per_class_scores(cm: np.ndarray, names: list[str]) -> list[dict]:
    rows = []
    for i, name in enumerate(names):
        tp = int(cm[i, i])
        predicted, actual = int(cm[:, i].sum()), int(cm[i, :].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"class": name, "precision": precision, "recall": recall, "f1": f1, "support": actual})
    return rows

"""Where in the input a prediction came from: Grad-CAM and vanilla-gradient saliency on a trained model.

Grad-CAM (Selvaraju et al., 2017): the gradient of a class score with respect to a conv layer's output weights
that output's channels; the ReLU of their sum is the heat map, resized to the input. The weights are taken per
position, not averaged over positions (see `grad_cam` for why). Saliency: the absolute gradient of the class score
with respect to the input pixels.

Class scores are the pre-softmax (pre-sigmoid) values of the last Dense layer, not the probabilities: a confident
softmax saturates, and its gradient (and so the map) would vanish exactly on the images one most wants to explain.

Keras is imported only inside functions, as in probe.py. cnnkit models are Sequential, so the forward pass walks
`model.layers` and keeps the target layer's output on the way. `channels_first` models run under XLA
(`jit_compile`), which has the NCHW convolutions TensorFlow's CPU kernels lack.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnkit.errors import CnnkitError, DataError
from cnnkit.viz.plots import most_confident_mistakes, resize_linear

METHODS = ("gradcam", "saliency")
MISCLASSIFIED_SHOWN = 8  # rows of plots/gradcam_misclassified.png: enough to see a pattern, small enough to read
_BATCH = 64


@dataclass
class Explanation:
    """One input, what the model said about it, and where that came from (arrays in display layout)."""

    label: str  # where the input came from: "test #12", a file path
    image: np.ndarray  # (H, W), (H, W, C), or (steps, features) for a 1-D model; float in [0, 1]
    probabilities: np.ndarray  # (classes,)
    predicted: int
    true: int | None
    heat: np.ndarray  # for the predicted class: like `image` without channels, or (steps,) for 1-D Grad-CAM
    heat_true: np.ndarray | None  # for the true class, when it is known and differs from the prediction


# --------------------------------------------------------------------------------------------- the model side
def layout(model) -> str:
    """channels_last | channels_first (image models) or sequence (Conv1D models reading (steps, features))."""
    shape = tuple(model.input_shape[1:])
    if len(shape) == 2:
        return "sequence"
    if len(shape) != 3:
        raise DataError(
            f"model '{model.name}' takes inputs of shape {_shape_text(shape)}: Grad-CAM and saliency need an "
            "image (H, W, C) or a sequence (steps, features)"
        )
    first = next((layer for layer in model.layers if hasattr(layer, "data_format")), None)
    return "channels_first" if getattr(first, "data_format", None) == "channels_first" else "channels_last"


def spatial_layers(model) -> list[int]:
    """Positions in `model.layers` whose output still has the input's positions (a map, not a vector)."""
    rank = len(model.input_shape)
    return [i for i, layer in enumerate(model.layers[:-1]) if len(layer.output.shape) == rank]


def target_layer(model, layer: str | None = None) -> int:
    """The layer Grad-CAM looks at: `layer` by name (or position), else the last convolution layer."""
    from cnnkit.viz.probe import conv_layer_indices

    candidates = spatial_layers(model)
    names = [model.layers[i].name for i in candidates]
    if layer is None:
        convs = [i for i in conv_layer_indices(model) if i in candidates]
        if not convs:
            raise CnnkitError(
                f"model '{model.name}' has no convolution layer for Grad-CAM",
                hint="use --method saliency, which needs no conv layer",
            )
        return convs[-1]
    for i, found in enumerate(model.layers):
        if found.name == layer or (layer.isdigit() and int(layer) == i):
            if i in candidates:
                return i
            raise CnnkitError(
                f"--layer {layer}: {found.name} outputs {_shape_text(found.output.shape[1:])}, not a map over the "
                f"input's positions; expected one of: {', '.join(names) or 'none'}"
            )
    raise CnnkitError(f"--layer {layer}: no such layer; expected one of: {', '.join(names) or 'none'}")


def _scores_and_probabilities(keras, last, hidden):
    """(class scores before the output activation, class probabilities), both (N, classes) float32."""
    ops = keras.ops
    activation = getattr(getattr(last, "activation", None), "__name__", "")
    if isinstance(last, keras.layers.Dense) and activation in ("softmax", "sigmoid"):
        scores = ops.matmul(ops.cast(hidden, last.kernel.dtype), last.kernel)
        if last.use_bias:
            scores = scores + last.bias
        scores = ops.cast(scores, "float32")
    elif isinstance(last, keras.layers.Activation) and activation in ("softmax", "sigmoid"):
        scores = ops.cast(hidden, "float32")
    else:  # no output activation to look behind: the outputs are the scores
        scores = ops.cast(last(hidden, training=False), "float32")
        activation = ""
    if scores.shape[-1] == 1:  # one sigmoid unit: class 1 is the score, class 0 its negative
        probs = ops.sigmoid(scores) if activation == "sigmoid" else scores
        return ops.concatenate([-scores, scores], axis=1), ops.concatenate([1 - probs, probs], axis=1)
    return scores, ops.softmax(scores, axis=-1) if activation == "softmax" else scores


def _gradient_function(model, index: int | None):
    """A tf.function (x, true) -> (target activations, d score_pred, d score_true, probabilities).

    `index` is the Grad-CAM layer (None for saliency: gradients are taken with respect to the input instead).
    `true` holds -1 where the true class is unknown (its gradient is then ignored).
    """
    from cnnkit.backend import keras as _keras
    from cnnkit.backend import tensorflow

    tf, keras = tensorflow(), _keras()
    layers = model.layers

    def step(x, true):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            hidden, acts = x, x
            for i, layer in enumerate(layers[:-1]):
                hidden = layer(hidden, training=False)
                if i == index:
                    acts = hidden
            scores, probs = _scores_and_probabilities(keras, layers[-1], hidden)
            predicted = tf.argmax(probs, axis=1, output_type=tf.int32)
            score_pred = tf.reduce_sum(tf.gather(scores, predicted, batch_dims=1))
            score_true = tf.reduce_sum(tf.gather(scores, tf.maximum(true, 0), batch_dims=1))
        grad_pred, grad_true = tape.gradient(score_pred, acts), tape.gradient(score_true, acts)
        del tape
        return acts, grad_pred, grad_true, probs

    # autograph=False: the loop runs over Python layers and `index`, never over a tensor, so AutoGraph's rewrite of
    # this source (~0.4 s of every run's pictures) changes nothing but the time.
    return tf.function(step, autograph=False, jit_compile=layout(model) == "channels_first")


def _forward_function(model):
    from cnnkit.backend import keras as _keras
    from cnnkit.backend import tensorflow

    tf, keras = tensorflow(), _keras()

    def forward(x):
        hidden = tf.cast(x, tf.float32) / 255.0
        for layer in model.layers[:-1]:
            hidden = layer(hidden, training=False)
        return _scores_and_probabilities(keras, model.layers[-1], hidden)[1]

    return tf.function(forward, autograph=False, jit_compile=layout(model) == "channels_first")  # as above


def probabilities(model, x_uint8: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Class probabilities (N, classes) of uint8 arrays laid out for the model (binary models give 2 columns)."""
    forward = _forward_function(model)
    parts = [np.asarray(forward(x_uint8[i : i + batch_size])) for i in range(0, len(x_uint8), batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, 2), np.float32)


# ------------------------------------------------------------------------------------------------- the maps
def grad_cam(acts: np.ndarray, grads: np.ndarray, channel_axis: int) -> np.ndarray:
    """Grad-CAM maps (N, ..positions..) in [0, 1] from a layer's activations and the class score's gradient.

    The weights are element-wise: ReLU(sum over channels of gradient × activation) at each position (HiResCAM,
    Draelos & Carin 2020). Behind global average pooling the gradient is the same at every position, and this is
    exactly the original Grad-CAM (channel weights = position-averaged gradients). Behind Flatten + Dense, the
    head of most cnnkit specs, each position has its own Dense weights; averaging them away can cancel the
    evidence entirely (tests/test_gradcam.py trains such a net, where the original gives empty maps). The ReLU
    keeps what speaks *for* the class; a map with no positive evidence stays zero rather than stretched noise.
    """
    acts, grads = np.asarray(acts, np.float64), np.asarray(grads, np.float64)
    cam = np.maximum((grads * acts).sum(axis=channel_axis % acts.ndim), 0.0)
    return _per_sample_max_one(cam)


def saliency(grads: np.ndarray, channel_axis: int | None) -> np.ndarray:
    """|d score / d input|, the largest over the channels when there are channels, scaled to [0, 1]."""
    magnitude = np.abs(np.asarray(grads, np.float64))
    if channel_axis is not None:
        magnitude = magnitude.max(axis=channel_axis)
    return _per_sample_max_one(magnitude)


def _per_sample_max_one(maps: np.ndarray) -> np.ndarray:
    peak = maps.reshape(len(maps), -1).max(axis=1) if maps.size else np.zeros(len(maps))
    peak = peak.reshape((-1,) + (1,) * (maps.ndim - 1))
    return np.divide(maps, peak, out=np.zeros_like(maps), where=peak > 0)


def to_display(sample: np.ndarray, kind: str) -> np.ndarray:
    """A model-layout sample as a picture: (C, H, W) -> (H, W, C); (H, W, 1) -> (H, W); sequences stay 2-D."""
    sample = np.asarray(sample)
    if kind == "channels_first":
        sample = np.moveaxis(sample, 0, -1)
    if sample.ndim == 3 and sample.shape[-1] == 1:
        sample = sample[..., 0]
    return sample


def explain(
    model,
    batch: np.ndarray,
    *,
    true: np.ndarray | None = None,
    labels: list[str] | None = None,
    layer: str | None = None,
    method: str = "gradcam",
) -> list[Explanation]:
    """Grad-CAM or saliency maps of the predicted (and true) class for a float batch in [0, 1], model layout."""
    from cnnkit.backend import tensorflow

    if method not in METHODS:
        raise CnnkitError(f"--method must be one of {', '.join(METHODS)}. Received: {method!r}")
    tf = tensorflow()
    kind = layout(model)
    batch = np.asarray(batch, np.float32)
    want = tuple(int(d) for d in model.input_shape[1:])
    if batch.shape[1:] != want:
        raise DataError(f"inputs are {_shape_text(batch.shape[1:])} but the model expects {_shape_text(want)}")
    true = np.full(len(batch), -1) if true is None else np.asarray(true).reshape(-1)
    labels = labels or [f"input #{i}" for i in range(len(batch))]
    index = target_layer(model, layer) if method == "gradcam" else None
    step = _gradient_function(model, index)
    image_channels = {"channels_last": -1, "channels_first": 1, "sequence": None}[kind]
    if index is not None:
        fmt = getattr(model.layers[index], "data_format", "channels_last")
        channel_axis = 1 if fmt == "channels_first" else -1
    spatial = want[1:] if kind == "channels_first" else want[:-1] if kind == "channels_last" else want[:1]
    if method == "saliency" and kind == "sequence":
        spatial = want  # every (step, feature) input value has its own gradient

    found: list[Explanation] = []
    for start in range(0, len(batch), _BATCH):
        x = tf.constant(batch[start : start + _BATCH])
        t = tf.constant(true[start : start + _BATCH].astype(np.int32))
        acts, grad_pred, grad_true, probs = (np.asarray(v) for v in step(x, t))
        if index is not None:
            maps_pred, maps_true = grad_cam(acts, grad_pred, channel_axis), grad_cam(acts, grad_true, channel_axis)
        else:
            maps_pred, maps_true = saliency(grad_pred, image_channels), saliency(grad_true, image_channels)
        for j in range(len(x)):
            i = start + j
            predicted = int(np.argmax(probs[j]))
            known = int(true[i]) if true[i] >= 0 else None
            found.append(
                Explanation(
                    label=labels[i],
                    image=to_display(batch[i], kind),
                    probabilities=probs[j].astype(np.float64),
                    predicted=predicted,
                    true=known,
                    heat=resize_linear(maps_pred[j], spatial),
                    heat_true=None if known in (None, predicted) else resize_linear(maps_true[j], spatial),
                )
            )
    return found


# ----------------------------------------------------------------------------------------- run-folder glue
def mistakes(y, y_pred, confidence, count: int) -> tuple[np.ndarray, bool]:
    """Indices of the `count` most confident mistakes (as misclassified.png orders them), and True; with no
    mistakes, the `count` least confident correct answers, and False."""
    wrong = most_confident_mistakes(y, y_pred, confidence, count)
    if wrong.size:
        return wrong, True
    confidence = np.nan_to_num(np.asarray(confidence, np.float64).reshape(-1), nan=-1.0)
    return np.argsort(confidence, kind="stable")[:count], False


def draw_misclassified(run_dir: Path, model, evaluation, out: Path | None = None) -> Path:
    """plots/gradcam_misclassified.png of a finished run, from the Evaluation `train` has just made."""
    seen = evaluation.predictions
    chosen, wrong = mistakes(seen.y, seen.y_pred, seen.confidence, MISCLASSIFIED_SHOWN)
    method = _default_method(model)
    out = out or Path(run_dir) / "plots" / "gradcam_misclassified.png"
    return _draw(model, seen.x, seen.y, chosen, evaluation.class_names, method, None, out, wrong)


def gradcam_picture(
    target,
    out: Path | None = None,
    *,
    images: list[Path] | None = None,
    indices: list[int] | None = None,
    misclassified: int | None = None,
    layer: str | None = None,
    method: str = "gradcam",
    data: str | None = None,
    data_dir: str | None = None,
) -> Path:
    """`cnnkit plot gradcam`: image files, test images by number, or the most confident mistakes."""
    from cnnkit.run.evaluate import load_test_split, resolve_target
    from cnnkit.run.modelfile import load_model

    given = [name for name, v in (("IMAGE", images), ("--index", indices), ("--misclassified", misclassified)) if v]
    if len(given) != 1:
        raise CnnkitError(
            "say which inputs to explain with exactly one of: IMAGE files, --index N (repeatable), "
            f"--misclassified K; got {' and '.join(given) if given else 'none'}"
        )
    if method not in METHODS:
        raise CnnkitError(f"--method must be one of {', '.join(METHODS)}. Received: {method!r}")
    if misclassified is not None and misclassified < 1:
        raise CnnkitError(f"--misclassified must be a positive number of images. Received: {misclassified}")
    resolved = resolve_target(target)
    model = load_model(resolved.model_path)
    folder = resolved.run_dir / "plots" if resolved.run_dir is not None else resolved.model_path.parent
    out = out or folder / ("gradcam.png" if method == "gradcam" else "saliency.png")
    names = resolved.run_info.get("class_names")
    if images:
        batch = np.stack([read_for(model, path) for path in images])
        found = explain(model, batch, labels=[str(p) for p in images], layer=layer, method=method)
        return _plot(found, model, names, method, layer, out, title_kind="images")
    x, y, splits = load_test_split(resolved, data, data_dir, model)
    names = names or splits.class_names
    if indices:
        bad = [i for i in indices if not 0 <= i < len(x)]
        if bad:
            raise DataError(
                f"test image #{bad[0]} does not exist: the test split has {len(x)} images (0..{len(x) - 1})"
            )
        return _draw(model, x, y, np.asarray(indices), names, method, layer, out, None)
    probs = probabilities(model, x)
    chosen, wrong = mistakes(y, probs.argmax(axis=1), probs.max(axis=1), misclassified)
    return _draw(model, x, y, chosen, names, method, layer, out, wrong)


def read_for(model, path: Path) -> np.ndarray:
    """An image file as the model's input, float in [0, 1], also for channels_first models."""
    from cnnkit.data.images import read_image_for

    if layout(model) != "channels_first":
        return read_image_for(model, path)
    c, h, w = (int(d) for d in model.input_shape[1:])
    as_last = types.SimpleNamespace(input_shape=(None, h, w, c))  # read as (H, W, C), then turn the axes
    return np.moveaxis(read_image_for(as_last, path), -1, 0)


def _draw(model, x, y, chosen, names, method, layer, out, wrong: bool | None) -> Path:
    chosen = np.asarray(chosen, dtype=np.int64)
    batch = x[chosen].astype(np.float32) / (255.0 if x.dtype == np.uint8 else 1.0)
    found = explain(model, batch, true=y[chosen], labels=[f"test #{i}" for i in chosen], layer=layer, method=method)
    kind = {True: "mistakes", False: "no_mistakes", None: "test"}[wrong]
    return _plot(found, model, names, method, layer, out, title_kind=kind)


def _plot(found, model, names, method, layer, out, *, title_kind: str) -> Path:
    from cnnkit.viz.heatmaps import plot_explanations

    where = model.layers[target_layer(model, layer)].name if method == "gradcam" else "input pixels"
    return plot_explanations(found, out, method=method, where=where, class_names=names, kind=title_kind)


def _default_method(model) -> str:
    """Grad-CAM when the model has a conv layer to look at; a Dense-only model gets saliency instead."""
    try:
        target_layer(model)
    except CnnkitError:
        return "saliency"
    return "gradcam"


def _shape_text(shape) -> str:
    return "×".join("?" if d is None else str(d) for d in shape)

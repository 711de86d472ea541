"""Keras Applications as Backbone blocks (cnnkit/spec/blocks.py): shapes for the summary, input preprocessing,
and ImageNet weights through Keras' own cache, with a one-line error naming the file when they cannot be had.

Importing this module registers `probe` with the spec side (spec cannot import TensorFlow itself); it imports
TensorFlow only when a Backbone is actually summarised or built.
"""

from __future__ import annotations

import functools
import math
import os
import re

from cnnkit.errors import SpecError
from cnnkit.spec import blocks as spec_blocks
from cnnkit.text import one_line

# ImageNet means and deviations (RGB) of the "caffe" and "torch" preprocessing of keras.applications.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)


def preprocess(keras, app: str, x):
    """cnnkit feeds pixels in [0, 1]; give the application what its own preprocess_input would (from 0..255)."""
    mode = spec_blocks.BACKBONE_APPS[app].preprocess
    ops = keras.ops
    if mode == "tf":
        return x * 2.0 - 1.0
    if mode == "raw":
        return x * 255.0
    if mode == "caffe":
        bgr = ops.flip(x, axis=-1) * 255.0
        return bgr - ops.convert_to_tensor(_CAFFE_MEAN_BGR, dtype=x.dtype)
    mean = ops.convert_to_tensor(_TORCH_MEAN, dtype=x.dtype)
    return (x - mean) / ops.convert_to_tensor(_TORCH_STD, dtype=x.dtype)


def application(keras, app: str, input_shape: tuple, pooling, weights):
    """keras.applications.APP without its classifier; `weights` None, "imagenet" (Keras' cache) or a file."""
    build = getattr(keras.applications, app)
    try:
        return build(include_top=False, weights=weights, input_shape=tuple(input_shape), pooling=pooling)
    except Exception as err:  # Keras raises Exception("URL fetch failure on ...") when it cannot download
        url = re.search(r"https?://\S+?\.h5", str(err))
        if weights != "imagenet" or url is None:
            raise SpecError(
                f"Backbone {app}: Keras could not build it with weights={weights!r}: {one_line(str(err))}"
            ) from None
        from keras.src.backend.config import keras_home

        folder = os.path.join(keras_home(), "models")
        name = url.group(0).rsplit("/", 1)[-1]
        raise SpecError(
            f"Backbone {app}: imagenet weights are not in Keras' cache and cannot be downloaded here: "
            f"place {name} in {folder} (from {url.group(0)})",
            hint="or set weights: null (random start) or weights: PATH to a weights file",
        ) from None


@functools.lru_cache(maxsize=32)
def probe(app: str, input_shape: tuple, pooling) -> dict:
    """Output shape (no batch), parameter split and multiply-accumulates of the application, built weights-off."""
    from cnnkit.backend import keras as _keras

    keras = _keras()
    net = application(keras, app, input_shape, pooling, None)
    trainable = sum(math.prod(w.shape) for w in net.trainable_weights)
    fixed = sum(math.prod(w.shape) for w in net.non_trainable_weights)
    return {
        "output_shape": tuple(int(d) for d in net.output.shape[1:]),
        "trainable": int(trainable),
        "non_trainable": int(fixed),
        "macs": _macs(keras, net),
    }


def _macs(keras, net) -> int:
    """Multiply-accumulates of the convolutions and dense layers (what dominates; adds and activations left out)."""
    L, total = keras.layers, 0
    for layer in net.layers:
        if not isinstance(layer, (L.Conv2D, L.DepthwiseConv2D, L.Dense)):
            continue
        out = [int(d) for d in layer.output.shape[1:]]
        fan_in = int(layer.input.shape[-1])
        if isinstance(layer, L.DepthwiseConv2D):
            total += math.prod(out) * math.prod(layer.kernel_size)
        elif isinstance(layer, L.Conv2D):
            total += math.prod(out) * math.prod(layer.kernel_size) * fan_in // layer.groups
        else:
            total += math.prod(out) * fan_in
    return total


spec_blocks.BACKBONE_PROBE = probe

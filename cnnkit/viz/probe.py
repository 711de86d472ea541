"""Look inside a built Keras model: its conv kernels and the feature maps an image produces.

The only picture-side module that touches Keras, and only inside functions, so `import cnnkit.viz.probe` stays free.
Layer indices are positions in `model.layers` (an input layer is not counted), the same numbering the summary uses.
"""

from __future__ import annotations

import numpy as np

from cnnkit.errors import CnnkitError, DataError
from cnnkit.spec.layers import LAYERS
from cnnkit.text import shape_text


def _entry(layer):
    """The registry entry (cnnkit/spec/layers.py) of a Keras layer object, or None for a class cnnkit lacks."""
    return LAYERS.get(type(layer).__name__)


def _has_kernels(layer) -> bool:
    entry = _entry(layer)
    return entry is not None and entry.kernel is not None


def _shows_a_map(layer) -> bool:
    # Global pooling is left out on purpose: its output is a vector (or 1×1), not a map anyone can look at.
    # A block's output (Residual) is a map too; its inner layers sit inside the block's Keras layer.
    if getattr(layer, "registered_block", False):
        return True
    entry = _entry(layer)
    return entry is not None and (entry.kernel is not None or entry.family == "pooling")


def conv_layer_indices(model) -> list[int]:
    """Positions in `model.layers` of every convolution layer (plain, separable, depthwise, transposed)."""
    return [i for i, layer in enumerate(model.layers) if _has_kernels(layer)]


def conv_kernel(model, layer_index: int) -> tuple[str, np.ndarray]:
    """(layer name, kernel) of conv layer `layer_index`, laid out as (..spatial.., in, out) for plot_filters.

    Transposed convs store (..spatial.., out, in) and are swapped back; separable and depthwise convs give their
    depthwise kernel (..spatial.., in, depth_multiplier), the part that looks at the image.
    """
    layers = model.layers
    count = len(layers)
    if isinstance(layer_index, bool) or not isinstance(layer_index, (int, np.integer)) or not 0 <= layer_index < count:
        raise CnnkitError(f"layer index {layer_index} is out of range: the model has {count} layers (0..{count - 1})")
    layer = layers[layer_index]
    convs = conv_layer_indices(model)
    if layer_index not in convs:
        listed = ", ".join(map(str, convs)) or "none"
        raise CnnkitError(f"layer {layer_index} ({layer.name}) has no convolution kernel; conv layers: {listed}")
    if not layer.built:
        raise CnnkitError(
            f"layer {layer_index} ({layer.name}) is not built yet: expected a model that has been "
            "built or called on data"
        )
    entry = _entry(layer)
    # Variable.numpy(), not ops.convert_to_numpy: the latter trips a NumPy 2 copy-keyword DeprecationWarning.
    kernel = np.array(getattr(layer, entry.kernel).numpy())
    if entry.kernel_out_in:
        kernel = np.swapaxes(kernel, -1, -2)
    return layer.name, kernel


def feature_maps(model, image: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(layer name, activation without the batch axis) for every conv and pooling layer, for one image.

    `image` is (H, W, C) float32 as the model takes it; a (H, W) image is accepted for a 1-channel model.
    """
    from cnnkit.backend import keras as _keras

    keras = _keras()

    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise CnnkitError(
            f"model '{model.name}' has no defined input: expected a model built with an input shape "
            "(keras.Input or input_shape=...) or called once on data"
        )
    if len(inputs) != 1:
        raise CnnkitError(f"model '{model.name}' has {len(inputs)} inputs: expected a single-image model")
    expected = tuple(inputs[0].shape[1:])
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == len(expected) - 1 and expected[-1] == 1:
        image = image[..., None]
    if image.ndim != len(expected) or any(e is not None and e != d for e, d in zip(expected, image.shape)):
        raise DataError(f"image is {shape_text(image.shape)} but the model expects {shape_text(expected)}")

    probed = [layer for layer in model.layers if _shows_a_map(layer)]
    if not probed:
        raise CnnkitError(f"model '{model.name}' has no convolution or pooling layers to show feature maps for")
    # One forward pass that returns every intermediate output, instead of one truncated model per layer.
    # A single input tensor, not the one-item list: Keras warns when the call structure differs from the model's.
    probe = keras.Model(inputs=inputs[0], outputs=[layer.output for layer in probed])
    outputs = probe(image[None], training=False)
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    return [(layer.name, np.asarray(keras.ops.convert_to_numpy(out))[0]) for layer, out in zip(probed, outputs)]

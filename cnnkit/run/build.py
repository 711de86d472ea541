"""Spec -> tf.keras Sequential model. The only module that constructs keras.layers objects."""

from __future__ import annotations

from cnnkit.backend import keras as _keras
from cnnkit.spec.argtypes import CONSTRAINTS
from cnnkit.spec.blocks import BLOCKS
from cnnkit.text import slug

BLOCK_TYPES = frozenset(BLOCKS.values())


def build_model(spec, keras=None):
    """`keras`: the Keras to build with; default `tf.keras`. train.py passes Keras 3 itself to write model files
    from a multi-worker run (which trains on tf-keras) in the format `cnnkit evaluate` loads."""
    keras = keras or _keras()
    layers = [keras.Input(shape=tuple(spec.input_shape))]
    layers += [build_layer(keras, layer) for layer in spec.layers]
    # Keras names must be simple identifiers; a spec's name is free text.
    return keras.Sequential(layers, name=slug(spec.name, fill="_", empty="model"))


def build_layer(keras, layer):
    if layer.type in BLOCK_TYPES:
        from cnnkit.run.blocks import build_residual

        return build_residual(keras, layer)
    cls = getattr(keras.layers, layer.type)
    kwargs = {key: _keras_value(keras, key, value) for key, value in layer.args.items() if key != "trainable"}
    built = cls(**{k: v for k, v in kwargs.items() if v is not None or k in ("activation", "max_value")})
    if "trainable" in layer.args:
        built.trainable = layer.args["trainable"]  # set, not passed: SpatialDropout's __init__ has no **kwargs
    return built


def _keras_value(keras, key: str, value):
    if key.endswith("_regularizer") and isinstance(value, dict):
        return keras.regularizers.L1L2(l1=value["l1"], l2=value["l2"])
    if key.endswith("_constraint") and isinstance(value, dict):
        return getattr(keras.constraints, CONSTRAINTS[value["name"]][0])(**value["args"])
    if key in ("padding", "cropping") and isinstance(value, tuple) and value and isinstance(value[0], tuple):
        return value[0] if len(value) == 1 else value  # 1-D layers take a single (before, after) pair
    if key == "size" and isinstance(value, tuple) and len(value) == 1:
        return value[0]
    return value

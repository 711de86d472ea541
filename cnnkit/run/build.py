"""Spec -> tf.keras Sequential model. The only module that constructs keras.layers objects."""

from __future__ import annotations

from cnnkit.backend import keras as _keras
from cnnkit.spec.blocks import BLOCKS
from cnnkit.spec.layers import LAYERS
from cnnkit.text import slug

BLOCK_TYPES = frozenset(BLOCKS.values())


def build_model(spec, keras=None, policy: str = "float32"):
    """`keras`: the Keras to build with; default `tf.keras`. train.py passes Keras 3 itself to write model files
    from a multi-worker run (which trains on tf-keras) in the format `cnnkit evaluate` loads.
    `policy`: a Keras dtype policy (cnnkit/run/precision.py); under a mixed one the output layer stays float32,
    as Keras' mixed-precision guide advises: a softmax in 16 bits loses the small probabilities the loss needs."""
    keras = keras or _keras()
    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        *body, last = spec.layers
        output_dtype = "float32" if policy != "float32" and last.type not in BLOCK_TYPES else None
        layers = [keras.Input(shape=tuple(spec.input_shape))]
        layers += [build_layer(keras, layer) for layer in body] + [build_layer(keras, last, dtype=output_dtype)]
        # Keras names must be simple identifiers; a spec's name is free text. The model takes the policy too:
        # compile() wraps the optimizer for loss scaling when the model's policy is mixed_float16.
        model = keras.Sequential(layers, name=slug(spec.name, fill="_", empty="model"))
    finally:
        keras.mixed_precision.set_global_policy(before)  # layers keep the policy they were built with
    if any(layer.type == "FromRun" for layer in spec.layers):
        from cnnkit.run.blocks import copy_run_weights

        copy_run_weights(model)  # FromRun: the run's trained weights, once the layers are built
    return model


def build_layer(keras, layer, dtype: str | None = None):
    """One layer from its registry entry: each argument as its type's `to_keras` gives it."""
    if layer.type in BLOCK_TYPES:
        from cnnkit.run.blocks import build_block

        return build_block(keras, layer)
    args = LAYERS[layer.type].args
    kwargs = {}
    for key, value in layer.args.items():
        argtype = args[key].type
        if key == "trainable" or (value is None and not argtype.none_to_keras):
            continue
        kwargs[key] = None if value is None else argtype.to_keras(keras, value)
    if dtype is not None:
        kwargs["dtype"] = dtype
    built = getattr(keras.layers, layer.type)(**kwargs)
    if "trainable" in layer.args:
        built.trainable = layer.args["trainable"]  # set, not passed: SpatialDropout's __init__ has no **kwargs
    return built

"""The Keras side of spec blocks (cnnkit/spec/blocks.py): a `Residual` layer made of built-in Keras layers.

The layer is registered as `cnnkit>Residual`. Its config is the block as the user wrote it in YAML
(`{layers: [...], shortcut: ...}`); `from_config` parses it again with the spec parser, so a model file can
only ever rebuild layers that a spec could have built (the model-file inspector checks the same way before
Keras sees the file). Which shortcut to add is decided in `build` from the input shape, by the same function
the summary uses (`spec.blocks.projection`).
"""

from __future__ import annotations

from cnnkit.spec import blocks as spec_blocks

REGISTERED_NAME = "cnnkit>Residual"
_CLASSES: dict[type, type] = {}


def residual_class(keras):
    """The Residual layer class for this Keras (Keras 3 itself or tf.keras), registered once."""
    key = keras.layers.Layer  # tf.keras (Keras 3) and `import keras` share it: one class, registered once
    if key not in _CLASSES:
        _CLASSES[key] = _define(keras)
    return _CLASSES[key]


def build_residual(keras, layer):
    built = residual_class(keras)(block=layer.entry, name=layer.args.get("name"))
    if "trainable" in layer.args:
        built.trainable = layer.args["trainable"]
    return built


def _define(keras):
    from cnnkit.run.build import build_layer  # build.py hands blocks back here: import at call time

    @keras.utils.register_keras_serializable(package="cnnkit", name="Residual")
    class Residual(keras.layers.Layer):
        """y = layers(x) + shortcut(x); shortcut = identity or a 1×1 convolution (see spec/blocks.py)."""

        registered_block = True  # viz/probe.py: its output is a feature map

        def __init__(self, block: dict, **kwargs):
            super().__init__(**kwargs)
            self.block = block
            self.spec = spec_blocks.residual_from_config(block, f"{REGISTERED_NAME} {self.name}")
            # a list attribute: Keras tracks these layers' weights and saves them with the model
            self.inner = [build_layer(keras, layer) for layer in self.spec.layers]
            self.shortcut = None
            self.add = keras.layers.Add()

        def build(self, input_shape):
            shape = tuple(input_shape)
            for layer in self.inner:
                layer.build(shape)
                shape = tuple(layer.compute_output_shape(shape))
            plan = spec_blocks.projection(self.spec, tuple(input_shape[1:]), tuple(shape[1:]))
            if plan is not None:
                conv = getattr(keras.layers, f"Conv{len(plan['kernel_size'])}D")
                self.shortcut = conv(
                    filters=plan["filters"],
                    kernel_size=plan["kernel_size"],
                    strides=plan["strides"],
                    padding=plan["padding"],
                    use_bias=plan["use_bias"],
                    name="projection",
                )
                self.shortcut.build(tuple(input_shape))
            self.add.build([shape, shape])

        def call(self, inputs):
            x = inputs
            for layer in self.inner:
                x = layer(x)
            return self.add([x, inputs if self.shortcut is None else self.shortcut(inputs)])

        def compute_output_shape(self, input_shape):
            shape = tuple(input_shape)
            for layer in self.inner:
                shape = tuple(layer.compute_output_shape(shape))
            return shape

        def get_config(self):
            return {**super().get_config(), "block": self.block}

    return Residual

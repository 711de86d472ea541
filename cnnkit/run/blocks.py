"""The Keras side of spec blocks (cnnkit/spec/blocks.py), made of built-in Keras layers.

* `cnnkit>Residual`: y = layers(x) + shortcut(x).
* `cnnkit>Stack`: what `FromRun` becomes: the run's first layers, their weights copied from RUN/model.keras when
  the model is built (`copy_run_weights`). A saved model holds the layers and weights, not the run.

A block layer's config is its layers as a spec writes them in YAML (`{layers: [...], ...}`); `from_config`
parses them again with the spec parser, so a model file can only ever rebuild layers that a spec could have
built (the model-file inspector checks the same way before Keras sees the file). Which shortcut a Residual
adds is decided in `build` from the input shape, by the function the summary uses (`spec.blocks.projection`).
"""

from __future__ import annotations

from cnnkit.spec import blocks as spec_blocks

REGISTERED = {"Residual": "cnnkit>Residual", "Stack": "cnnkit>Stack"}
_CLASSES: dict[type, dict[str, type]] = {}


def block_classes(keras) -> dict[str, type]:
    """{"Residual": class, "Stack": class} for this Keras (tf.keras or Keras 3 share one), registered once."""
    key = keras.layers.Layer
    if key not in _CLASSES:
        _CLASSES[key] = _define(keras)
    return _CLASSES[key]


def build_block(keras, layer):
    classes = block_classes(keras)
    if isinstance(layer, spec_blocks.FromRunSpec):
        built = classes["Stack"](block=layer.entry, name=layer.args.get("name"))
        built.source_run = layer.run  # copy_run_weights reads it once the model is built
    else:
        built = classes["Residual"](block=layer.entry, name=layer.args.get("name"))
    if "trainable" in layer.args:
        built.trainable = layer.args["trainable"]
    return built


def copy_run_weights(model) -> None:
    """Give every FromRun stack of a freshly built `model` the weights of its run's first layers."""
    from pathlib import Path

    from cnnkit.run.modelfile import load_model

    for layer in model.layers:
        run = getattr(layer, "source_run", None)
        if run is None:
            continue
        source = load_model(Path(run) / "model.keras", compile=False)
        for mine, theirs in zip(layer.inner, source.layers):
            mine.set_weights(theirs.get_weights())


def _define(keras) -> dict[str, type]:
    from cnnkit.run.build import build_layer  # build.py hands blocks back here: import at call time

    def build_chain(layers, input_shape):
        shape = tuple(input_shape)
        for layer in layers:
            layer.build(shape)
            shape = tuple(layer.compute_output_shape(shape))
        return shape

    def chain_shape(layers, input_shape):
        shape = tuple(input_shape)
        for layer in layers:
            shape = tuple(layer.compute_output_shape(shape))
        return shape

    @keras.utils.register_keras_serializable(package="cnnkit", name="Residual")
    class Residual(keras.layers.Layer):
        """y = layers(x) + shortcut(x); shortcut = identity or a 1×1 convolution (see spec/blocks.py)."""

        registered_block = True  # viz/probe.py: its output is a feature map

        def __init__(self, block: dict, **kwargs):
            super().__init__(**kwargs)
            self.block = block
            self.spec = spec_blocks.residual_from_config(block, f"{REGISTERED['Residual']} {self.name}")
            # a list attribute: Keras tracks these layers' weights and saves them with the model
            self.inner = [build_layer(keras, layer) for layer in self.spec.layers]
            self.shortcut = None
            self.add = keras.layers.Add()

        def build(self, input_shape):
            shape = build_chain(self.inner, input_shape)
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
            return chain_shape(self.inner, input_shape)

        def get_config(self):
            return {**super().get_config(), "block": self.block}

    @keras.utils.register_keras_serializable(package="cnnkit", name="Stack")
    class Stack(keras.layers.Layer):
        """The first layers of another run (FromRun), one after the other."""

        registered_block = True

        def __init__(self, block: dict, **kwargs):
            super().__init__(**kwargs)
            self.block = block
            self.spec = spec_blocks.stack_from_config(block, f"{REGISTERED['Stack']} {self.name}")
            self.inner = [build_layer(keras, layer) for layer in self.spec.layers]

        def build(self, input_shape):
            build_chain(self.inner, input_shape)

        def call(self, inputs):
            x = inputs
            for layer in self.inner:
                x = layer(x)
            return x

        def compute_output_shape(self, input_shape):
            return chain_shape(self.inner, input_shape)

        def get_config(self):
            return {**super().get_config(), "block": self.block}

    return {"Residual": Residual, "Stack": Stack}

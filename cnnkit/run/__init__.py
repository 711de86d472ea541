"""The TensorFlow side: building, training, evaluating, predicting and timing models, and the run folder.

Lives here: build (spec -> tf.keras model; the only module that creates keras.layers objects), train,
devices (device and tf.distribute set-up), folder (run folders), evaluate, predict, timing, modelfile (safe
`.keras` loading), progress (the live epoch display), keras_check (summary vs the real Keras model), blocks
(the Keras layers of Residual / FromRun / Backbone), backbones (Keras Applications), finetune (train.fine_tune).

May import: cnnkit.data, cnnkit.spec, cnnkit.backend, cnnkit.files, cnnkit.errors, cnnkit.text, and
TensorFlow / Keras (through cnnkit.backend, inside functions, so importing a module here stays cheap). Never
cnnkit.viz or cnnkit.cli.
"""

# Registers the Backbone probe with the spec side (spec/ cannot import TensorFlow); TensorFlow itself is imported
# only when a Backbone is summarised or built.
from cnnkit.run import backbones as _backbones  # noqa: E402, F401

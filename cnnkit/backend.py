"""The one place that imports TensorFlow/Keras, lazily, so that commands which do not train
(`--help`, `summary`, `validate`, every spec error) never pay its 5-6 s import.

`tf.keras` (not `import keras`) is used on purpose: with TF_USE_LEGACY_KERAS=1 it resolves to
tf-keras, which multi-worker training needs (keras-team/keras#20585).
"""

from __future__ import annotations

import os


def tensorflow():
    # TF's C++ start-up chatter (oneDNN notices, CUDA stubs) is noise to a CNN learner.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    return tf


def keras():
    return tensorflow().keras

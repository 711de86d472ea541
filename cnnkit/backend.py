"""The one place that imports TensorFlow, lazily, so that commands which do not train
(`--help`, `summary`, `validate`, every spec error) never pay its 5-6 s import.

Modules that need Keras call `keras()` (or `tensorflow()` before their own `import keras`),
so that TF's C++ start-up chatter is silenced in one place.
"""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def _quiet_stderr():
    """TF 2.21 logs oneDNN/CUDA notices through absl before TF_CPP_MIN_LOG_LEVEL applies; hide fd 2
    during the import only. Import errors still surface: they are Python exceptions, raised after."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    with _quiet_stderr():
        import tensorflow as tf
    return tf


def keras():
    return tensorflow().keras


def is_tf_keras(keras) -> bool:
    """True when `tf.keras` is tf-keras (Keras 2): TF_USE_LEGACY_KERAS=1, which strategy multi_worker sets."""
    return keras.__name__.startswith("tf_keras")


def keras_version(keras) -> str:
    if is_tf_keras(keras):
        import tf_keras

        return f"tf-keras {tf_keras.__version__}"
    return keras.__version__

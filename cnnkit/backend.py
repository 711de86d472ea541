"""The one place that imports TensorFlow, lazily, so that commands which do not train
(`--help`, `summary`, `validate`, every spec error) never pay its 5-6 s import.

Modules that need Keras call `keras()` (or `tensorflow()` before their own `import keras`),
so that TF's C++ start-up chatter is silenced in one place.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys

# TensorFlow's x86 wheels carry oneDNN kernels but switch them on by themselves only on CPUs with AVX-512 neural-network
# instructions (VNNI, BF16, AMX). On an AVX2 CPU (the project's 2-core AMD EPYC, Zen 3) they stay off, and TF's own
# kernels trained the notes' MNIST net and the Fashion ResNet ~1.3x slower (bench/train_throughput.py's "oneDNN off"
# lever). TensorFlow reads the variable once, at import, so it must be set before: a user's own value always wins.
ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
X86_64 = ("x86_64", "amd64")


def choose_cpu_kernels(environ=os.environ, machine: str | None = None) -> str:
    """Turn TensorFlow's oneDNN kernels on for x86-64 unless the user set TF_ENABLE_ONEDNN_OPTS; say which and why."""
    if ONEDNN_VARIABLE in environ:
        return f"{ONEDNN_VARIABLE}={environ[ONEDNN_VARIABLE]} (set outside cnnkit)"
    if (machine or platform.machine()).lower() not in X86_64:
        return "TensorFlow's default (not an x86-64 CPU)"
    environ[ONEDNN_VARIABLE] = "1"
    return f"{ONEDNN_VARIABLE}=1 (cnnkit's default on x86-64)"


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


_chosen_kernels = ""  # set by the tensorflow() call that imports it


def cpu_kernels() -> str:
    """Which CPU kernels this process's TensorFlow was imported with, and why (run.json records it)."""
    if _chosen_kernels:
        return _chosen_kernels
    return f"{ONEDNN_VARIABLE}={os.environ.get(ONEDNN_VARIABLE, 'unset')} (TensorFlow imported outside cnnkit)"


def tensorflow():
    global _chosen_kernels
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    _chosen_kernels = choose_cpu_kernels()
    with _quiet_stderr(), _not_importable(UNUSED_AT_IMPORT):
        import tensorflow as tf
    return tf


# Keras imports scikit-learn (~1 s, a third of its own import) when it is installed, only for the
# keras.wrappers.SKLearn* classes, which cnnkit never uses. The `digits` dataset imports scikit-learn itself.
UNUSED_AT_IMPORT = ("sklearn",)


@contextlib.contextmanager
def _not_importable(names: tuple[str, ...]):
    """While inside, `import NAME` raises ImportError (None in sys.modules), for modules not imported yet."""
    blocked = [name for name in names if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None
    try:
        yield
    finally:
        for name in blocked:
            if sys.modules.get(name, "") is None:
                del sys.modules[name]


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

"""cnnkit: a command-line workbench for convolutional networks on Keras."""

__version__ = "0.1.0"

import os as _os

# TensorFlow's C++ start-up log (oneDNN notices, "failed call to cuInit" on CPU-only machines)
# is noise to someone learning CNNs; Python-level errors still surface as exceptions.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

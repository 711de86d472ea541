"""cnnkit: a command-line workbench for convolutional networks on Keras."""

__version__ = "0.1.0"

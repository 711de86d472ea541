"""Registries of the training vocabulary: optimizers, losses, metrics, schedules, callbacks.

Each maps the spec name to the Keras class and the arguments it accepts, so a spec can be
checked without TensorFlow and built with it (``train.py`` looks the class up by name).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Option:
    keras_class: str
    args: tuple[str, ...]


_OPT_COMMON = (
    "learning_rate",
    "weight_decay",
    "clipnorm",
    "clipvalue",
    "global_clipnorm",
    "use_ema",
    "ema_momentum",
    "gradient_accumulation_steps",
)
_ADAM = ("beta_1", "beta_2", "epsilon", "amsgrad")
OPTIMIZERS = {
    "adam": Option("Adam", _OPT_COMMON + _ADAM),
    "adamw": Option("AdamW", _OPT_COMMON + _ADAM),
    "sgd": Option("SGD", _OPT_COMMON + ("momentum", "nesterov")),
    "rmsprop": Option("RMSprop", _OPT_COMMON + ("rho", "momentum", "epsilon", "centered")),
    "adagrad": Option("Adagrad", _OPT_COMMON + ("initial_accumulator_value", "epsilon")),
    "adadelta": Option("Adadelta", _OPT_COMMON + ("rho", "epsilon")),
    "adamax": Option("Adamax", _OPT_COMMON + ("beta_1", "beta_2", "epsilon")),
    "nadam": Option("Nadam", _OPT_COMMON + ("beta_1", "beta_2", "epsilon")),
    "lion": Option("Lion", _OPT_COMMON + ("beta_1", "beta_2")),
    "ftrl": Option(
        "Ftrl",
        _OPT_COMMON
        + (
            "learning_rate_power",
            "initial_accumulator_value",
            "l1_regularization_strength",
            "l2_regularization_strength",
        ),
    ),
}

# label: how the data's integer labels must be fed to this loss.
#   onehot  - (N, classes) float one-hot vectors
#   sparse  - (N,) integer class ids
#   binary  - (N, 1) float 0/1 (a single sigmoid unit)
LOSSES = {
    "categorical_crossentropy": ("CategoricalCrossentropy", ("from_logits", "label_smoothing"), "onehot"),
    "sparse_categorical_crossentropy": ("SparseCategoricalCrossentropy", ("from_logits",), "sparse"),
    "binary_crossentropy": ("BinaryCrossentropy", ("from_logits", "label_smoothing"), "binary"),
    "categorical_focal_crossentropy": (
        "CategoricalFocalCrossentropy",
        ("alpha", "gamma", "from_logits", "label_smoothing"),
        "onehot",
    ),
    "binary_focal_crossentropy": (
        "BinaryFocalCrossentropy",
        ("alpha", "gamma", "from_logits", "label_smoothing"),
        "binary",
    ),
    "kl_divergence": ("KLDivergence", (), "onehot"),
    "categorical_hinge": ("CategoricalHinge", (), "onehot"),
    "hinge": ("Hinge", (), "binary"),
    "squared_hinge": ("SquaredHinge", (), "binary"),
    "mean_squared_error": ("MeanSquaredError", (), "onehot"),
    "mean_absolute_error": ("MeanAbsoluteError", (), "onehot"),
}

# metric name -> (Keras class, arguments, label kinds it works with)
METRICS = {
    "accuracy": ("accuracy", ("name",), ("onehot", "sparse", "binary")),
    "categorical_accuracy": ("CategoricalAccuracy", ("name",), ("onehot",)),
    "sparse_categorical_accuracy": ("SparseCategoricalAccuracy", ("name",), ("sparse",)),
    "binary_accuracy": ("BinaryAccuracy", ("name", "threshold"), ("binary",)),
    "top_k_categorical_accuracy": ("TopKCategoricalAccuracy", ("k", "name"), ("onehot",)),
    "sparse_top_k_categorical_accuracy": ("SparseTopKCategoricalAccuracy", ("k", "name"), ("sparse",)),
    "auc": ("AUC", ("name", "num_thresholds", "curve", "multi_label"), ("onehot", "binary")),
    "precision": ("Precision", ("name", "thresholds", "top_k", "class_id"), ("onehot", "binary")),
    "recall": ("Recall", ("name", "thresholds", "top_k", "class_id"), ("onehot", "binary")),
    "mean_squared_error": ("MeanSquaredError", ("name",), ("onehot", "binary")),
    "mean_absolute_error": ("MeanAbsoluteError", ("name",), ("onehot", "binary")),
}

# Learning-rate schedules: the optimizer's learning_rate is the initial rate; decay_steps
# (or first_decay_steps) left out means "the whole run", computed when the data is known.
SCHEDULES = {
    "cosine_decay": Option("CosineDecay", ("decay_steps", "alpha", "warmup_target", "warmup_steps")),
    "cosine_decay_restarts": Option("CosineDecayRestarts", ("first_decay_steps", "t_mul", "m_mul", "alpha")),
    "exponential_decay": Option("ExponentialDecay", ("decay_steps", "decay_rate", "staircase")),
    "inverse_time_decay": Option("InverseTimeDecay", ("decay_steps", "decay_rate", "staircase")),
    "polynomial_decay": Option("PolynomialDecay", ("decay_steps", "end_learning_rate", "power", "cycle")),
    "piecewise_constant_decay": Option("PiecewiseConstantDecay", ("boundaries", "values")),
}

CALLBACK_ARGS = {
    "early_stopping": (
        "monitor",
        "min_delta",
        "patience",
        "mode",
        "baseline",
        "restore_best_weights",
        "start_from_epoch",
    ),
    "reduce_lr_on_plateau": ("monitor", "factor", "patience", "mode", "min_delta", "cooldown", "min_lr"),
}

STRATEGIES = ("auto", "none", "mirrored", "multi_worker")

# Names of the dataset registry (cnnkit.data.DATASETS), kept here so that validating a spec
# never imports the loaders (scikit-learn, Pillow); a test keeps the two in step.
DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "npz", "image_folder", "csv")

"""Registries of the training vocabulary: optimizers, losses, metrics, schedules, callbacks.

Each maps the spec name to the Keras class and the arguments it accepts, so a spec can be
checked without TensorFlow and built with it (``run/compiled.py`` looks the class up by name).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Option:
    keras_class: str  # looked up by name in keras.optimizers / losses / metrics / ...
    args: tuple[str, ...]  # the arguments a spec may give it


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

# How the data's integer labels must be fed to a loss:
ONE_HOT = "onehot"  # (N, classes) float one-hot vectors
SPARSE = "sparse"  # (N,) integer class ids
BINARY = "binary"  # (N, 1) float 0/1 (a single sigmoid unit)
LABEL_KINDS = (ONE_HOT, SPARSE, BINARY)


@dataclass(frozen=True)
class Loss(Option):
    labels: str  # one of LABEL_KINDS: what the data's labels become for this loss


@dataclass(frozen=True)
class Metric(Option):
    labels: tuple[str, ...]  # the label kinds (of the loss) this metric can be computed on


LOSSES = {
    "categorical_crossentropy": Loss("CategoricalCrossentropy", ("from_logits", "label_smoothing"), ONE_HOT),
    "sparse_categorical_crossentropy": Loss("SparseCategoricalCrossentropy", ("from_logits",), SPARSE),
    "binary_crossentropy": Loss("BinaryCrossentropy", ("from_logits", "label_smoothing"), BINARY),
    "categorical_focal_crossentropy": Loss(
        "CategoricalFocalCrossentropy", ("alpha", "gamma", "from_logits", "label_smoothing"), ONE_HOT
    ),
    "binary_focal_crossentropy": Loss(
        "BinaryFocalCrossentropy", ("alpha", "gamma", "from_logits", "label_smoothing"), BINARY
    ),
    "kl_divergence": Loss("KLDivergence", (), ONE_HOT),
    "categorical_hinge": Loss("CategoricalHinge", (), ONE_HOT),
    "hinge": Loss("Hinge", (), BINARY),
    "squared_hinge": Loss("SquaredHinge", (), BINARY),
    "mean_squared_error": Loss("MeanSquaredError", (), ONE_HOT),
    "mean_absolute_error": Loss("MeanAbsoluteError", (), ONE_HOT),
}

# keras_class "accuracy": Keras' own string, which picks binary/categorical/sparse accuracy to match the loss.
METRICS = {
    "accuracy": Metric("accuracy", ("name",), LABEL_KINDS),
    "categorical_accuracy": Metric("CategoricalAccuracy", ("name",), (ONE_HOT,)),
    "sparse_categorical_accuracy": Metric("SparseCategoricalAccuracy", ("name",), (SPARSE,)),
    "binary_accuracy": Metric("BinaryAccuracy", ("name", "threshold"), (BINARY,)),
    "top_k_categorical_accuracy": Metric("TopKCategoricalAccuracy", ("k", "name"), (ONE_HOT,)),
    "sparse_top_k_categorical_accuracy": Metric("SparseTopKCategoricalAccuracy", ("k", "name"), (SPARSE,)),
    "auc": Metric("AUC", ("name", "num_thresholds", "curve", "multi_label"), (ONE_HOT, BINARY)),
    "precision": Metric("Precision", ("name", "thresholds", "top_k", "class_id"), (ONE_HOT, BINARY)),
    "recall": Metric("Recall", ("name", "thresholds", "top_k", "class_id"), (ONE_HOT, BINARY)),
    "mean_squared_error": Metric("MeanSquaredError", ("name",), (ONE_HOT, BINARY)),
    "mean_absolute_error": Metric("MeanAbsoluteError", ("name",), (ONE_HOT, BINARY)),
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
# train.test_time_flip: RandomFlip's `mode` names; each adds the flipped views of every test image.
TEST_TIME_FLIPS = ("horizontal", "vertical", "horizontal_and_vertical")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")

"""The layer registry: spec name -> Keras class, arguments (type + Keras default), input rank, shape rule.

Adding a layer type is one ``_register`` call here plus, if it changes shapes in a new way,
one rule in ``shapes.py``. No TensorFlow is imported: ``build.py`` turns the same entries
into ``keras.layers`` objects by class name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from cnnkit.spec import shapes
from cnnkit.spec.argtypes import (
    Activation,
    ArgType,
    Axis,
    Bool,
    Constraint,
    Enum,
    Float,
    FloatOrPair,
    Initializer,
    Int,
    IntTuple,
    Number,
    OptionalInt,
    Padding,
    Regularizer,
    Shape,
    Str,
)

REQUIRED = object()  # marks an argument without a Keras default


@dataclass(frozen=True)
class Arg:
    type: ArgType
    default: Any = REQUIRED


@dataclass(frozen=True)
class LayerType:
    keras_class: str
    args: dict[str, Arg]
    rule: Callable[[tuple, dict], shapes.LayerOut]
    # Ranks of the input (without batch) that the layer accepts; None = any rank >= 1.
    input_ranks: tuple[int, ...] | None = None
    rank_meaning: str = ""
    aliases: tuple[str, ...] = ()
    # Only these layers may use padding: causal (Keras allows it on Conv1D alone).
    causal_ok: bool = False

    @property
    def defaults(self) -> dict:
        return {k: a.default for k, a in self.args.items() if a.default is not REQUIRED}

    @property
    def required(self) -> list[str]:
        return [k for k, a in self.args.items() if a.default is REQUIRED]


LAYERS: dict[str, LayerType] = {}
_BY_LOWER: dict[str, str] = {}

DATA_FORMAT = Arg(Enum(("channels_last", "channels_first")), "channels_last")
_RANK_MEANING = {1: "(steps, channels)", 2: "(height, width, channels)", 3: "(depth, height, width, channels)"}
# Arguments every Keras layer takes.
_COMMON = {"name": Arg(Str(), None), "trainable": Arg(Bool(), True)}


def _register(keras_class: str, args: dict, rule, *, ranks=None, aliases=(), causal_ok=False) -> None:
    meaning = " or ".join(_RANK_MEANING.get(r - 1, f"{r}-D") for r in ranks) if ranks else ""
    entry = LayerType(keras_class, {**args, **_COMMON}, rule, ranks, meaning, tuple(aliases), causal_ok)
    LAYERS[keras_class] = entry
    for name in (keras_class, *aliases):
        _BY_LOWER[name.lower()] = keras_class


def _regularized(*weights: str) -> dict:
    out: dict = {}
    for w in weights:
        out[f"{w}_initializer"] = (
            Arg(Initializer(vector=True), "zeros") if w == "bias" else Arg(Initializer(), "glorot_uniform")
        )
        out[f"{w}_regularizer"] = Arg(Regularizer(), None)
        out[f"{w}_constraint"] = Arg(Constraint(), None)
    out["activity_regularizer"] = Arg(Regularizer(), None)
    return out


def _window_args(rank: int) -> dict:
    return {
        "kernel_size": Arg(IntTuple(rank)),
        "strides": Arg(IntTuple(rank), (1,) * rank),
        "padding": Arg(Enum(("valid", "same", "causal")), "valid"),
        "data_format": DATA_FORMAT,
        "dilation_rate": Arg(IntTuple(rank), (1,) * rank),
        "activation": Arg(Activation(), None),
        "use_bias": Arg(Bool(), True),
    }


for _r in (1, 2, 3):
    _register(
        f"Conv{_r}D",
        {"filters": Arg(Int()), **_window_args(_r), "groups": Arg(Int(), 1), **_regularized("kernel", "bias")},
        shapes.conv,
        ranks=(_r + 1,),
        causal_ok=_r == 1,
    )
for _r in (1, 2):
    _register(
        f"SeparableConv{_r}D",
        {
            "filters": Arg(Int()),
            **_window_args(_r),
            "depth_multiplier": Arg(Int(), 1),
            **_regularized("depthwise", "pointwise", "bias"),
        },
        shapes.separable_conv,
        ranks=(_r + 1,),
    )
    _register(
        f"DepthwiseConv{_r}D",
        {**_window_args(_r), "depth_multiplier": Arg(Int(), 1), **_regularized("depthwise", "bias")},
        shapes.depthwise_conv,
        ranks=(_r + 1,),
    )

for _r in (1, 2, 3):
    _pool = {
        "pool_size": Arg(IntTuple(_r), (2,) * _r),
        "strides": Arg(IntTuple(_r), None),
        "padding": Arg(Enum(("valid", "same")), "valid"),
        "data_format": DATA_FORMAT,
    }
    _register(f"MaxPooling{_r}D", _pool, shapes.pool, ranks=(_r + 1,), aliases=(f"MaxPool{_r}D",))
    # Keras 3's AveragePooling has no default pool_size (MaxPooling does): required, as in Keras.
    _register(
        f"AveragePooling{_r}D",
        {**_pool, "pool_size": Arg(IntTuple(_r))},
        shapes.pool,
        ranks=(_r + 1,),
        aliases=(f"AvgPool{_r}D", f"AveragePool{_r}D"),
    )
    _global = {"data_format": DATA_FORMAT, "keepdims": Arg(Bool(), False)}
    _register(f"GlobalMaxPooling{_r}D", _global, shapes.global_pool, ranks=(_r + 1,), aliases=(f"GlobalMaxPool{_r}D",))
    _register(
        f"GlobalAveragePooling{_r}D",
        _global,
        shapes.global_pool,
        ranks=(_r + 1,),
        aliases=(f"GlobalAvgPool{_r}D", f"GlobalAveragePool{_r}D"),
    )
    # Keras' 1-D SpatialDropout, Cropping and UpSampling take no data_format (always channels_last).
    _register(
        f"SpatialDropout{_r}D",
        {
            "rate": Arg(Float(0.0, 1.0, exclusive_max=True)),
            **({"data_format": DATA_FORMAT} if _r > 1 else {}),
            "seed": Arg(OptionalInt(), None),
        },
        shapes.identity,
        ranks=(_r + 1,),
    )
    _register(
        f"ZeroPadding{_r}D",
        {"padding": Arg(Padding(_r), ((1, 1),) * _r), "data_format": DATA_FORMAT},
        shapes.zero_padding,
        ranks=(_r + 1,),
    )
_register("Cropping1D", {"cropping": Arg(Padding(1), ((1, 1),))}, shapes.cropping, ranks=(2,))
_register(
    "Cropping2D",
    {"cropping": Arg(Padding(2), ((0, 0), (0, 0))), "data_format": DATA_FORMAT},
    shapes.cropping,
    ranks=(3,),
)  # Keras' Cropping2D crops nothing by default (Cropping1D: 1 each side)
_register("UpSampling1D", {"size": Arg(IntTuple(1), (2,))}, shapes.upsampling, ranks=(2,))
_register(
    "UpSampling2D",
    {
        "size": Arg(IntTuple(2), (2, 2)),
        "data_format": DATA_FORMAT,
        "interpolation": Arg(Enum(("nearest", "bilinear", "bicubic")), "nearest"),
    },
    shapes.upsampling,
    ranks=(3,),
)

_register("Flatten", {"data_format": DATA_FORMAT}, shapes.flatten)
_register(
    "Dense",
    {
        "units": Arg(Int()),
        "activation": Arg(Activation(), None),
        "use_bias": Arg(Bool(), True),
        **_regularized("kernel", "bias"),
    },
    shapes.dense,
    aliases=("FullyConnected",),
)
_register(
    "Dropout", {"rate": Arg(Float(0.0, 1.0, exclusive_max=True)), "seed": Arg(OptionalInt(), None)}, shapes.identity
)
_register("GaussianNoise", {"stddev": Arg(Float(0.0, 1.0)), "seed": Arg(OptionalInt(), None)}, shapes.identity)
_register("Activation", {"activation": Arg(Activation())}, shapes.identity)
# Keras refuses a negative max_value or threshold.
_register(
    "ReLU",
    {
        "max_value": Arg(Number(nullable=True, minimum=0.0), None),
        "negative_slope": Arg(Float(0.0), 0.0),
        "threshold": Arg(Number(minimum=0.0), 0.0),
    },
    shapes.identity,
)
_register("LeakyReLU", {"negative_slope": Arg(Float(0.0), 0.3)}, shapes.identity)
_register("Softmax", {"axis": Arg(Axis(), -1)}, shapes.identity)

_register(
    "BatchNormalization",
    {
        "axis": Arg(Axis(), -1),
        "momentum": Arg(Float(0.0, 1.0), 0.99),
        "epsilon": Arg(Float(0.0, exclusive_min=True), 1e-3),
        "center": Arg(Bool(), True),
        "scale": Arg(Bool(), True),
        "beta_initializer": Arg(Initializer(vector=True), "zeros"),
        "gamma_initializer": Arg(Initializer(vector=True), "ones"),
        "beta_regularizer": Arg(Regularizer(), None),
        "gamma_regularizer": Arg(Regularizer(), None),
    },
    shapes.batch_norm,
    aliases=("BatchNorm",),
)
_register(
    "LayerNormalization",
    {
        "axis": Arg(Axis(), -1),
        "epsilon": Arg(Float(0.0, exclusive_min=True), 1e-3),
        "center": Arg(Bool(), True),
        "scale": Arg(Bool(), True),
    },
    shapes.layer_norm,
    aliases=("LayerNorm",),
)

_register("Reshape", {"target_shape": Arg(Shape(allow_infer=True))}, shapes.reshape)
_register("Permute", {"dims": Arg(Shape())}, shapes.permute)
_register("Rescaling", {"scale": Arg(Number()), "offset": Arg(Number(), 0.0)}, shapes.identity)
_INTERPOLATION = Enum(("bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5", "gaussian", "mitchellcubic"))
_register(
    "Resizing",
    {
        "height": Arg(Int()),
        "width": Arg(Int()),
        "interpolation": Arg(_INTERPOLATION, "bilinear"),
        "crop_to_aspect_ratio": Arg(Bool(), False),
        "data_format": DATA_FORMAT,
    },
    shapes.resize,
    ranks=(3,),
)

# Augmentation layers: active only in training, identity at inference (Keras semantics).
_FILL = {
    "fill_mode": Arg(Enum(("reflect", "wrap", "constant", "nearest")), "reflect"),
    "interpolation": Arg(Enum(("bilinear", "nearest")), "bilinear"),
    "fill_value": Arg(Number(), 0.0),
    "seed": Arg(OptionalInt(), None),
    "data_format": DATA_FORMAT,
}
_register(
    "RandomFlip",
    {
        "mode": Arg(Enum(("horizontal", "vertical", "horizontal_and_vertical")), "horizontal_and_vertical"),
        "seed": Arg(OptionalInt(), None),
        "data_format": DATA_FORMAT,
    },
    shapes.identity,
    ranks=(3,),
)
_register("RandomRotation", {"factor": Arg(FloatOrPair(-1.0, 1.0)), **_FILL}, shapes.identity, ranks=(3,))
_register(
    "RandomTranslation",
    {"height_factor": Arg(FloatOrPair(-1.0, 1.0)), "width_factor": Arg(FloatOrPair(-1.0, 1.0)), **_FILL},
    shapes.identity,
    ranks=(3,),
)
_register(
    "RandomZoom",
    {
        "height_factor": Arg(FloatOrPair(-1.0, 1.0, exclusive_min=True)),
        "width_factor": Arg(FloatOrPair(-1.0, 1.0, exclusive_min=True), None),
        **_FILL,
    },
    shapes.identity,
    ranks=(3,),
)
_register(
    "RandomContrast",
    {"factor": Arg(FloatOrPair(0.0, 1.0)), "seed": Arg(OptionalInt(), None)},
    shapes.identity,
    ranks=(3,),
)
_register(
    "RandomBrightness",
    {"factor": Arg(FloatOrPair(-1.0, 1.0)), "seed": Arg(OptionalInt(), None)},
    shapes.identity,
    ranks=(3,),
)
_register(
    "RandomCrop",
    {"height": Arg(Int()), "width": Arg(Int()), "seed": Arg(OptionalInt(), None), "data_format": DATA_FORMAT},
    shapes.resize,
    ranks=(3,),
)

KERAS_CLASSES = tuple(LAYERS)


def lookup(name: str) -> str | None:
    """Canonical Keras class name for a spec name (case-insensitive, aliases included)."""
    return _BY_LOWER.get(str(name).lower())


def all_names() -> list[str]:
    return sorted(set(LAYERS) | {a for t in LAYERS.values() for a in t.aliases})

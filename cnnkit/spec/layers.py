"""The layer registry: spec name -> Keras class, arguments (type + Keras default), input rank, shape rule, family.

Adding a layer type is one ``register`` call here plus, if it changes shapes in a new way,
one rule in ``shapes.py`` (CONTRIBUTING.md). No TensorFlow is imported: ``run/build.py`` turns the
same entries into ``keras.layers`` objects by class name (each argument type's ``to_keras``), the
pictures colour a layer by its ``family`` and show the weights its ``kernel`` names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from cnnkit.spec import shapes
from cnnkit.spec.argtypes import (
    Activation,
    ArgType,
    Axes,
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


# What a layer does, for people: the architecture picture colours each family alike.
FAMILIES = (
    "convolution",
    "transposed convolution",
    "pooling",
    "global pooling",
    "dense",
    "normalisation",
    "dropout / noise",
    "reshape",
    "activation",
    "preprocessing",
)


@dataclass(frozen=True)
class LayerType:
    keras_class: str
    args: dict[str, Arg]
    rule: Callable[[tuple, dict], shapes.LayerOut]
    family: str  # one of FAMILIES
    # Ranks of the input (without batch) that the layer accepts; None = any rank >= 1.
    input_ranks: tuple[int, ...] | None = None
    rank_meaning: str = ""
    aliases: tuple[str, ...] = ()
    # Only these layers may use padding: causal (Keras allows it on Conv1D alone).
    causal_ok: bool = False
    # The Keras weight holding the kernels that look at the image (`plot filters`); None: no such kernels.
    kernel: str | None = None
    # True when that weight is laid out (..., out, in) instead of (..., in, out): transposed convolutions.
    kernel_out_in: bool = False
    # Keras refuses strides > 1 together with dilation_rate > 1 on this layer (plain ConvND, transposed convs).
    refuses_strided_dilation: bool = False

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


def register(keras_class: str, args: dict, rule, *, family: str, ranks=None, aliases=(), **traits) -> LayerType:
    """Add a layer type: its Keras class name, arguments, shape rule (shapes.py) and family; `traits` are the
    other LayerType fields (causal_ok, kernel, kernel_out_in, refuses_strided_dilation)."""
    if family not in FAMILIES:
        raise ValueError(f"{keras_class}: family {family!r} is not one of {', '.join(FAMILIES)}")
    meaning = " or ".join(_RANK_MEANING.get(r - 1, f"{r}-D") for r in ranks) if ranks else ""
    entry = LayerType(keras_class, {**args, **_COMMON}, rule, family, ranks, meaning, tuple(aliases), **traits)
    LAYERS[keras_class] = entry
    for name in (keras_class, *aliases):
        _BY_LOWER[name.lower()] = keras_class
    return entry


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
    register(
        f"Conv{_r}D",
        {"filters": Arg(Int()), **_window_args(_r), "groups": Arg(Int(), 1), **_regularized("kernel", "bias")},
        shapes.conv,
        family="convolution",
        ranks=(_r + 1,),
        causal_ok=_r == 1,
        kernel="kernel",
        refuses_strided_dilation=True,
    )
    register(
        f"Conv{_r}DTranspose",
        {
            "filters": Arg(Int()),
            **_window_args(_r),
            "padding": Arg(Enum(("valid", "same")), "valid"),
            **_regularized("kernel", "bias"),
        },
        shapes.conv_transpose,
        family="transposed convolution",
        ranks=(_r + 1,),
        aliases=(f"Convolution{_r}DTranspose",),
        kernel="kernel",
        kernel_out_in=True,
        refuses_strided_dilation=True,
    )
for _r in (1, 2):
    register(
        f"SeparableConv{_r}D",
        {
            "filters": Arg(Int()),
            **_window_args(_r),
            "depth_multiplier": Arg(Int(), 1),
            **_regularized("depthwise", "pointwise", "bias"),
        },
        shapes.separable_conv,
        family="convolution",
        ranks=(_r + 1,),
        kernel="depthwise_kernel",
    )
    register(
        f"DepthwiseConv{_r}D",
        {**_window_args(_r), "depth_multiplier": Arg(Int(), 1), **_regularized("depthwise", "bias")},
        shapes.depthwise_conv,
        family="convolution",
        ranks=(_r + 1,),
        kernel="kernel",  # Keras 3 names the depthwise layers' one weight `kernel` (separable: depthwise_kernel)
    )

for _r in (1, 2, 3):
    _pool = {
        "pool_size": Arg(IntTuple(_r), (2,) * _r),
        "strides": Arg(IntTuple(_r), None),
        "padding": Arg(Enum(("valid", "same")), "valid"),
        "data_format": DATA_FORMAT,
    }
    register(f"MaxPooling{_r}D", _pool, shapes.pool, family="pooling", ranks=(_r + 1,), aliases=(f"MaxPool{_r}D",))
    # Keras 3's AveragePooling has no default pool_size (MaxPooling does): required, as in Keras.
    register(
        f"AveragePooling{_r}D",
        {**_pool, "pool_size": Arg(IntTuple(_r))},
        shapes.pool,
        family="pooling",
        ranks=(_r + 1,),
        aliases=(f"AvgPool{_r}D", f"AveragePool{_r}D"),
    )
    _global = {"data_format": DATA_FORMAT, "keepdims": Arg(Bool(), False)}
    register(
        f"GlobalMaxPooling{_r}D",
        _global,
        shapes.global_pool,
        family="global pooling",
        ranks=(_r + 1,),
        aliases=(f"GlobalMaxPool{_r}D",),
    )
    register(
        f"GlobalAveragePooling{_r}D",
        _global,
        shapes.global_pool,
        family="global pooling",
        ranks=(_r + 1,),
        aliases=(f"GlobalAvgPool{_r}D", f"GlobalAveragePool{_r}D"),
    )
    # Keras' 1-D SpatialDropout, Cropping and UpSampling take no data_format (always channels_last).
    register(
        f"SpatialDropout{_r}D",
        {
            "rate": Arg(Float(0.0, 1.0, exclusive_max=True)),
            **({"data_format": DATA_FORMAT} if _r > 1 else {}),
            "seed": Arg(OptionalInt(), None),
        },
        shapes.identity,
        family="dropout / noise",
        ranks=(_r + 1,),
    )
    register(
        f"ZeroPadding{_r}D",
        {"padding": Arg(Padding(_r), ((1, 1),) * _r), "data_format": DATA_FORMAT},
        shapes.zero_padding,
        family="reshape",
        ranks=(_r + 1,),
    )
register("Cropping1D", {"cropping": Arg(Padding(1), ((1, 1),))}, shapes.cropping, family="reshape", ranks=(2,))
register(
    "Cropping2D",
    {"cropping": Arg(Padding(2), ((0, 0), (0, 0))), "data_format": DATA_FORMAT},
    shapes.cropping,
    family="reshape",
    ranks=(3,),
)  # Keras' Cropping2D crops nothing by default (Cropping1D: 1 each side)
register("UpSampling1D", {"size": Arg(IntTuple(1), (2,))}, shapes.upsampling, family="reshape", ranks=(2,))
register(
    "UpSampling2D",
    {
        "size": Arg(IntTuple(2), (2, 2)),
        "data_format": DATA_FORMAT,
        "interpolation": Arg(Enum(("nearest", "bilinear", "bicubic")), "nearest"),
    },
    shapes.upsampling,
    family="reshape",
    ranks=(3,),
)

register("Flatten", {"data_format": DATA_FORMAT}, shapes.flatten, family="reshape")
register(
    "Dense",
    {
        "units": Arg(Int()),
        "activation": Arg(Activation(), None),
        "use_bias": Arg(Bool(), True),
        **_regularized("kernel", "bias"),
    },
    shapes.dense,
    family="dense",
    aliases=("FullyConnected",),
)
register(
    "Dropout",
    {"rate": Arg(Float(0.0, 1.0, exclusive_max=True)), "seed": Arg(OptionalInt(), None)},
    shapes.identity,
    family="dropout / noise",
)
register(
    "GaussianNoise",
    {"stddev": Arg(Float(0.0, 1.0)), "seed": Arg(OptionalInt(), None)},
    shapes.identity,
    family="dropout / noise",
)
register("Activation", {"activation": Arg(Activation())}, shapes.identity, family="activation")
# Keras refuses a negative max_value or threshold.
register(
    "ReLU",
    {
        "max_value": Arg(Number(nullable=True, minimum=0.0), None),
        "negative_slope": Arg(Float(0.0), 0.0),
        "threshold": Arg(Number(minimum=0.0), 0.0),
    },
    shapes.identity,
    family="activation",
)
register("LeakyReLU", {"negative_slope": Arg(Float(0.0), 0.3)}, shapes.identity, family="activation")
register("Softmax", {"axis": Arg(Axis(), -1)}, shapes.identity, family="activation")

register(
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
    family="normalisation",
    aliases=("BatchNorm",),
)
register(
    "LayerNormalization",
    {
        "axis": Arg(Axes(), -1),  # Keras normalises over one axis or several ([1, 2, 3]: whole feature maps)
        "epsilon": Arg(Float(0.0, exclusive_min=True), 1e-3),
        "center": Arg(Bool(), True),
        "scale": Arg(Bool(), True),
    },
    shapes.layer_norm,
    family="normalisation",
    aliases=("LayerNorm",),
)

register("Reshape", {"target_shape": Arg(Shape(allow_infer=True))}, shapes.reshape, family="reshape")
register("Permute", {"dims": Arg(Shape())}, shapes.permute, family="reshape")
register("Rescaling", {"scale": Arg(Number()), "offset": Arg(Number(), 0.0)}, shapes.identity, family="preprocessing")
_INTERPOLATION = Enum(("bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5", "gaussian", "mitchellcubic"))
register(
    "Resizing",
    {
        "height": Arg(Int()),
        "width": Arg(Int()),
        "interpolation": Arg(_INTERPOLATION, "bilinear"),
        "crop_to_aspect_ratio": Arg(Bool(), False),
        "data_format": DATA_FORMAT,
    },
    shapes.resize,
    family="reshape",
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
register(
    "RandomFlip",
    {
        "mode": Arg(Enum(("horizontal", "vertical", "horizontal_and_vertical")), "horizontal_and_vertical"),
        "seed": Arg(OptionalInt(), None),
        "data_format": DATA_FORMAT,
    },
    shapes.identity,
    family="preprocessing",
    ranks=(3,),
)
register(
    "RandomRotation",
    {"factor": Arg(FloatOrPair(-1.0, 1.0)), **_FILL},
    shapes.identity,
    family="preprocessing",
    ranks=(3,),
)
register(
    "RandomTranslation",
    {"height_factor": Arg(FloatOrPair(-1.0, 1.0)), "width_factor": Arg(FloatOrPair(-1.0, 1.0)), **_FILL},
    shapes.identity,
    family="preprocessing",
    ranks=(3,),
)
register(
    "RandomZoom",
    {
        "height_factor": Arg(FloatOrPair(-1.0, 1.0, exclusive_min=True)),
        "width_factor": Arg(FloatOrPair(-1.0, 1.0, exclusive_min=True), None),
        **_FILL,
    },
    shapes.identity,
    family="preprocessing",
    ranks=(3,),
)
register(
    "RandomContrast",
    {"factor": Arg(FloatOrPair(0.0, 1.0)), "seed": Arg(OptionalInt(), None)},
    shapes.identity,
    family="preprocessing",
    ranks=(3,),
)
register(
    "RandomBrightness",
    {"factor": Arg(FloatOrPair(-1.0, 1.0)), "seed": Arg(OptionalInt(), None)},
    shapes.identity,
    family="preprocessing",
    ranks=(3,),
)
register(
    "RandomCrop",
    {"height": Arg(Int()), "width": Arg(Int()), "seed": Arg(OptionalInt(), None), "data_format": DATA_FORMAT},
    shapes.resize,
    family="preprocessing",
    ranks=(3,),
)

KERAS_CLASSES = tuple(LAYERS)


def lookup(name: str) -> str | None:
    """Canonical Keras class name for a spec name (case-insensitive, aliases included)."""
    return _BY_LOWER.get(str(name).lower())


def all_names() -> list[str]:
    return sorted(set(LAYERS) | {a for t in LAYERS.values() for a in t.aliases})

"""Shape, parameter, MAC and receptive-field rules: pure Python, no TensorFlow.

Each rule takes the input shape (no batch axis) and the layer's full argument dict
(user values over Keras defaults) and returns a ``LayerOut``. The formulas follow
Keras' own ``compute_output_shape`` so ``cnnkit summary`` equals ``model.summary()``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from cnnkit.text import shape_text


class ShapeError(ValueError):
    """The layer cannot take this input; the message explains the arithmetic."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message, self.hint = message, hint


@dataclass
class LayerOut:
    shape: tuple
    trainable: int = 0
    non_trainable: int = 0
    macs: int = 0
    # Sliding windows per spatial axis, for the receptive field: (effective kernel, stride).
    window: tuple | None = None
    # Why no single receptive-field number holds from this layer on (UpSampling: neighbouring outputs copy
    # the same input unit, so a window after it covers a varying number of input units; Reshape: axes merged).
    rf_lost: str | None = None
    # False once the spatial axes are gone (Flatten, Dense on vectors, global pooling).
    spatial: bool = True
    arithmetic: list[str] = field(default_factory=list)


def prod(values) -> int:
    return math.prod(int(v) for v in values)


def split_channels(shape: tuple, data_format: str) -> tuple[tuple, int]:
    """(spatial dims, channels) for channels_last or channels_first shapes."""
    if data_format == "channels_first":
        return tuple(shape[1:]), shape[0]
    return tuple(shape[:-1]), shape[-1]


def join_channels(spatial: tuple, channels: int, data_format: str) -> tuple:
    return (channels, *spatial) if data_format == "channels_first" else (*spatial, channels)


def window_out(n: int, k: int, s: int, d: int, padding: str) -> tuple[int, str]:
    """Output length of one axis and the formula that gives it (Keras' rules)."""
    k_eff = d * (k - 1) + 1
    if padding == "valid":
        out = (n - k_eff) // s + 1
        kernel = f"{k_eff}" if d == 1 else f"{k_eff} (={d}·({k}−1)+1)"
        return out, f"⌊({n}−{kernel})/{s}⌋+1 = {out}"
    # `same` pads so that out = ceil(n / s); `causal` pads d·(k−1) on the left only, which gives the same.
    out = -(-n // s)
    return out, f"⌈{n}/{s}⌉ = {out} ({padding})"


def _windowed(in_shape, args, kernel, what: str):
    """Shared arithmetic of conv and pool layers: output spatial dims or a clear collapse error."""
    spatial, channels = split_channels(in_shape, args["data_format"])
    strides, dilation, padding = args["strides"], args.get("dilation_rate") or (1,) * len(kernel), args["padding"]
    outs, formulas = [], []
    for n, k, s, d in zip(spatial, kernel, strides, dilation):
        out, formula = window_out(n, k, s, d, padding)
        outs.append(out)
        formulas.append(formula)
    if min(outs) < 1:
        same = len(set(formulas)) == 1
        shown = formulas[0] if same else ", ".join(formulas)
        k_txt = kernel[0] if len(set(kernel)) == 1 else shape_text(kernel)
        s_txt = strides[0] if len(set(strides)) == 1 else shape_text(strides)
        raise ShapeError(
            f"input {shape_text(spatial)}, {what} {k_txt}, stride {s_txt}, {padding} → {shown}",
            hint="the output would have no pixels left; use padding: same, a smaller "
            f"{what}/stride, or fewer pooling layers",
        )
    k_eff = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    arithmetic = formulas[:1] if len(set(formulas)) == 1 else formulas
    return tuple(outs), channels, (k_eff, tuple(strides)), arithmetic


def conv(in_shape, args) -> LayerOut:
    spatial_out, channels, window, arithmetic = _windowed(in_shape, args, args["kernel_size"], "kernel")
    groups, filters = args.get("groups", 1), args["filters"]
    if channels % groups or filters % groups:
        raise ShapeError(f"groups={groups} must divide both the input channels ({channels}) and filters ({filters})")
    per_filter = prod(args["kernel_size"]) * (channels // groups)
    params = per_filter * filters + (filters if args["use_bias"] else 0)
    macs = prod(spatial_out) * filters * per_filter
    return LayerOut(
        join_channels(spatial_out, filters, args["data_format"]), params, 0, macs, window, arithmetic=arithmetic
    )


def separable_conv(in_shape, args) -> LayerOut:
    spatial_out, channels, window, arithmetic = _windowed(in_shape, args, args["kernel_size"], "kernel")
    depth = channels * args["depth_multiplier"]
    filters = args["filters"]
    params = prod(args["kernel_size"]) * depth + depth * filters + (filters if args["use_bias"] else 0)
    macs = prod(spatial_out) * (prod(args["kernel_size"]) * depth + depth * filters)
    return LayerOut(
        join_channels(spatial_out, filters, args["data_format"]), params, 0, macs, window, arithmetic=arithmetic
    )


def depthwise_conv(in_shape, args) -> LayerOut:
    spatial_out, channels, window, arithmetic = _windowed(in_shape, args, args["kernel_size"], "kernel")
    depth = channels * args["depth_multiplier"]
    params = prod(args["kernel_size"]) * depth + (depth if args["use_bias"] else 0)
    macs = prod(spatial_out) * prod(args["kernel_size"]) * depth
    return LayerOut(
        join_channels(spatial_out, depth, args["data_format"]), params, 0, macs, window, arithmetic=arithmetic
    )


def conv_transpose(in_shape, args) -> LayerOut:
    """Keras' rule: valid -> (n−1)·s + max(k_eff, s); same -> n·s (no output_padding)."""
    spatial, channels = split_channels(in_shape, args["data_format"])
    kernel, strides, dilation = args["kernel_size"], args["strides"], args["dilation_rate"]
    outs, formulas = [], []
    for n, k, st, d in zip(spatial, kernel, strides, dilation):
        k_eff = d * (k - 1) + 1
        if args["padding"] == "valid":
            outs.append((n - 1) * st + max(k_eff, st))
            formulas.append(f"({n}−1)·{st}+{max(k_eff, st)} = {outs[-1]}")
        else:
            outs.append(n * st)
            formulas.append(f"{n}·{st} = {outs[-1]} (same)")
    filters = args["filters"]
    per_input = prod(kernel) * channels * filters
    params = per_input + (filters if args["use_bias"] else 0)
    # Every input pixel is spread over a k×k patch of every output channel.
    macs = prod(spatial) * per_input
    # With stride 1 it is a full convolution: each output sees a k_eff window. A stride > 1 inserts zeros, so
    # neighbouring outputs see different numbers of input pixels.
    stride_one = max(strides) == 1
    window = (tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation)), tuple(strides)) if stride_one else None
    return LayerOut(
        join_channels(tuple(outs), filters, args["data_format"]),
        params,
        0,
        macs,
        window,
        rf_lost=None if stride_one else "transposed conv",
        arithmetic=formulas[:1] if len(set(formulas)) == 1 else formulas,
    )


def pool(in_shape, args) -> LayerOut:
    args = dict(args)
    args["strides"] = args.get("strides") or args["pool_size"]  # Keras: strides default to pool_size
    spatial_out, channels, window, arithmetic = _windowed(in_shape, args, args["pool_size"], "pool")
    return LayerOut(join_channels(spatial_out, channels, args["data_format"]), window=window, arithmetic=arithmetic)


def global_pool(in_shape, args) -> LayerOut:
    spatial, channels = split_channels(in_shape, args["data_format"])
    if args["keepdims"]:
        # A 1×1 map whose one unit sees the whole input map: a window as large as the map.
        whole = (tuple(spatial), (1,) * len(spatial))
        return LayerOut(join_channels((1,) * len(spatial), channels, args["data_format"]), window=whole)
    return LayerOut((channels,), spatial=False)


def flatten(in_shape, args) -> LayerOut:
    return LayerOut((prod(in_shape),), spatial=False)


def dense(in_shape, args) -> LayerOut:
    units, fan_in = args["units"], in_shape[-1]
    params = fan_in * units + (units if args["use_bias"] else 0)
    return LayerOut((*in_shape[:-1], units), params, 0, prod(in_shape[:-1]) * fan_in * units, spatial=len(in_shape) > 1)


def identity(in_shape, args) -> LayerOut:
    return LayerOut(tuple(in_shape))


def _norm_axis(in_shape, axis: int) -> int:
    # the summary's shapes have no batch axis; Keras' axis counts it
    rank = len(in_shape) + 1
    if -rank <= axis < rank and axis % rank == 0:
        raise ShapeError(
            f"axis {axis} is the batch axis; statistics must be taken per feature, not across samples",
            hint="use -1 (channels_last) or 1 (channels_first)",
        )
    if not -rank <= axis < rank:
        raise ShapeError(
            f"axis {axis} is out of range for input of shape {tuple(in_shape)}; "
            f"use -1 (channels_last) or 1 (channels_first)"
        )
    return axis % rank - 1


def batch_norm(in_shape, args) -> LayerOut:
    channels = in_shape[_norm_axis(in_shape, args["axis"])]
    learned = channels * (int(args["center"]) + int(args["scale"]))
    return LayerOut(tuple(in_shape), learned, 2 * channels)  # moving mean and variance are not trained


def layer_norm(in_shape, args) -> LayerOut:
    axes = args["axis"] if isinstance(args["axis"], tuple) else (args["axis"],)
    dims = [_norm_axis(in_shape, a) for a in axes]
    if len(set(dims)) != len(dims):
        raise ShapeError(f"axis {list(axes)} names the same axis twice for input of shape {tuple(in_shape)}")
    # one gamma and one beta per position of the normalised axes (Keras: shape = input_shape[axes])
    return LayerOut(tuple(in_shape), prod(in_shape[d] for d in dims) * (int(args["center"]) + int(args["scale"])))


def zero_padding(in_shape, args) -> LayerOut:
    fmt = args.get("data_format", "channels_last")  # the 1-D layers have none
    spatial, channels = split_channels(in_shape, fmt)
    out = tuple(n + before + after for n, (before, after) in zip(spatial, args["padding"]))
    return LayerOut(join_channels(out, channels, fmt))


def cropping(in_shape, args) -> LayerOut:
    fmt = args.get("data_format", "channels_last")  # the 1-D layers have none
    spatial, channels = split_channels(in_shape, fmt)
    out = tuple(n - before - after for n, (before, after) in zip(spatial, args["cropping"]))
    if min(out) < 1:
        raise ShapeError(f"cropping {args['cropping']} removes all of input {shape_text(spatial)}")
    return LayerOut(join_channels(out, channels, fmt))


def upsampling(in_shape, args) -> LayerOut:
    fmt = args.get("data_format", "channels_last")  # the 1-D layers have none
    spatial, channels = split_channels(in_shape, fmt)
    size = args["size"]
    out = tuple(n * f for n, f in zip(spatial, size))
    return LayerOut(join_channels(out, channels, fmt), rf_lost=None if max(size) == 1 else "upsampling")


def reshape(in_shape, args) -> LayerOut:
    target, total = list(args["target_shape"]), prod(in_shape)
    known = prod(v for v in target if v != -1)
    if -1 in target:
        if total % known:
            raise ShapeError(
                f"cannot reshape {total} values ({shape_text(in_shape)}) into "
                f"{tuple(args['target_shape'])}: {total} is not divisible by {known}"
            )
        target[target.index(-1)] = total // known
    elif known != total:
        raise ShapeError(
            f"cannot reshape {shape_text(in_shape)} ({total} values) into {shape_text(target)} ({known} values)"
        )
    same = tuple(target) == tuple(in_shape)
    return LayerOut(tuple(target), spatial=len(target) > 1, rf_lost=None if same else "reshape")


def permute(in_shape, args) -> LayerOut:
    dims = args["dims"]
    if sorted(dims) != list(range(1, len(in_shape) + 1)):
        raise ShapeError(
            f"dims must be a permutation of 1..{len(in_shape)} for input {tuple(in_shape)}. Received: dims={list(dims)}"
        )
    same = list(dims) == list(range(1, len(in_shape) + 1))
    return LayerOut(tuple(in_shape[d - 1] for d in dims), rf_lost=None if same else "permute")


def resize(in_shape, args) -> LayerOut:
    spatial, channels = split_channels(in_shape, args.get("data_format", "channels_last"))
    return LayerOut(join_channels((args["height"], args["width"]), channels, args.get("data_format", "channels_last")))


# --- receptive field ---------------------------------------------------------------------------


@dataclass
class Field:
    """Receptive field per spatial axis: size in input pixels, and jump (input pixels per output step).

    `lost` says why no single number holds any more (see LayerOut.rf_lost); the field stays lost."""

    size: tuple
    jump: tuple
    lost: str | None = None

    @classmethod
    def start(cls, rank: int) -> "Field":
        return cls((1,) * rank, (1,) * rank)

    def after(self, out: LayerOut) -> "Field":
        if self.lost:
            return self
        if out.rf_lost:
            return Field(self.size, self.jump, out.rf_lost)
        if out.window:
            k_eff, strides = out.window
            size = tuple(r + (k - 1) * j for r, k, j in zip(self.size, k_eff, self.jump))
            jump = tuple(j * s for j, s in zip(self.jump, strides))
            return Field(size, jump)
        return self

    @staticmethod
    def compact(values) -> int | list:
        values = [int(v) for v in values]
        return values[0] if len(set(values)) == 1 else values

"""Blocks: spec entries that hold other layers. Pure Python, no TensorFlow.

``- Residual: {layers: [...], shortcut: identity | projection}`` adds the block's input to the output of its
layers (He et al. 2016). Its layers use the usual syntax and may hold Residual blocks themselves. When the
block changes the shape, ``shortcut: projection`` puts a 1×1 convolution (channels_last, with bias) with the
block's total stride on the shortcut; ``identity`` (the default) requires the shapes to match. When the shapes
match, ``projection`` adds nothing: the shortcut is the identity.

This module parses a block (``parse_residual``), computes its summary rows (``summarize_residual``) and the
shortcut's plan (``projection``), which the Keras layer in ``cnnkit.run.blocks`` builds from, so the summary
and Keras cannot drift apart. ``residual_from_config`` re-reads the block from what the Keras layer stores in
a model file: the YAML entries as the user wrote them, parsed again by the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from cnnkit.errors import SpecError
from cnnkit.spec import shapes
from cnnkit.spec.argtypes import Bool, Enum, Str
from cnnkit.spec.parse import LayerSpec
from cnnkit.text import shape_text

RESIDUAL = "Residual"
SHORTCUTS = ("identity", "projection")
RESIDUAL_KEYS = ("layers", "shortcut", "name", "trainable")
# Spec names of the blocks (case-insensitive) -> canonical name.
BLOCKS = {"residual": RESIDUAL}


@dataclass(frozen=True)
class ResidualSpec(LayerSpec):
    layers: tuple = ()
    shortcut: str = "identity"
    # The block as written in YAML ({layers: [...], shortcut: ...}): what the Keras layer saves and re-parses.
    entry: dict | None = None


def lookup(name) -> str | None:
    return BLOCKS.get(str(name).lower())


def parse_residual(check, path: tuple, index: int, args, parse_layer) -> ResidualSpec:
    """`path` ends with the block's key (`("layers", 2, "Residual")`); `parse_layer(check, index, item, path)`
    parses one inner entry, so inner errors carry their full path (`layers[2].Residual.layers[0].Conv2D...`)."""
    if not isinstance(args, dict):
        check.fail(
            path, f"arguments must be a mapping such as {{layers: [...], shortcut: identity}}. Received: {args!r}"
        )
    check.mapping(path, args, RESIDUAL_KEYS, "Residual arguments")
    if "layers" not in args:
        check.fail(path, "Residual needs `layers`: the list of layers whose output is added to the block's input")
    inner = args["layers"]
    if not isinstance(inner, list) or not inner:
        check.fail(path + ("layers",), f"must be a non-empty list of layers. Received: layers={inner!r}.")
    layers = tuple(parse_layer(check, i, item, path + ("layers", i)) for i, item in enumerate(inner))
    shortcut = check.arg(path + ("shortcut",), Enum(SHORTCUTS), args.get("shortcut", "identity"))
    normalized = {"shortcut": shortcut}
    if args.get("name") is not None:
        normalized["name"] = check.arg(path + ("name",), Str(), args["name"])
    if "trainable" in args:
        normalized["trainable"] = check.arg(path + ("trainable",), Bool(), args["trainable"])
    return ResidualSpec(
        index,
        RESIDUAL,
        normalized,
        {"trainable": True, **normalized},
        check.doc.line(path),
        layers=tuple(_nest(layer, path) for layer in layers),
        shortcut=shortcut,
        entry={"layers": inner, "shortcut": shortcut},
    )


def _nest(layer: LayerSpec, path: tuple) -> LayerSpec:
    """An inner layer's label says where it sits: `layers[2].Residual.layers[0] Conv2D`."""
    prefix = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    return replace(layer, where=f"{prefix}.")


def residual_from_config(entry: dict, where: str) -> ResidualSpec:
    """Re-read a block saved by the Keras layer (its `entry`); any problem is a SpecError naming `where`."""
    from cnnkit.spec.parse import parse_block_entry

    return parse_block_entry({RESIDUAL: entry}, where)


def schema_items(layer_ref: str) -> list[dict]:
    """JSON Schema of the block entries (spec/schema.py); `layer_ref` points at one layer entry."""
    residual = {
        "type": "object",
        "properties": {
            "layers": {"type": "array", "minItems": 1, "items": {"$ref": layer_ref}},
            "shortcut": {"enum": list(SHORTCUTS), "description": "default: 'identity'"},
            "name": {"type": "string"},
            "trainable": {"type": "boolean"},
        },
        "required": ["layers"],
        "additionalProperties": False,
    }
    return [
        {
            "type": "object",
            "properties": {RESIDUAL: residual},
            "required": [RESIDUAL],
            "additionalProperties": False,
            "description": "layers(x) + x: a residual block (projection: 1×1 conv when the shape changes)",
        }
    ]


# --- shapes, params, receptive field -------------------------------------------------------------


def projection(block: ResidualSpec, in_shape: tuple, out_shape: tuple) -> dict | None:
    """The shortcut's 1×1 convolution as full Keras Conv arguments, or None for the identity.

    Raises ShapeError when the shapes cannot be added: identity with different shapes, or a projection whose
    output (stride = the block's total stride) is not the block's output shape."""
    in_shape, out_shape = tuple(in_shape), tuple(out_shape)
    if in_shape == out_shape:
        return None
    if block.shortcut == "identity":
        raise shapes.ShapeError(
            f"shortcut identity adds the block's input {shape_text(in_shape)} to its output "
            f"{shape_text(out_shape)}; the shapes differ",
            hint="use shortcut: projection (a 1×1 convolution), or keep the shape (padding: same, "
            "filters = input channels, strides 1)",
        )
    if len(in_shape) not in (2, 3, 4) or len(out_shape) != len(in_shape):
        raise shapes.ShapeError(
            f"shortcut projection needs input and output maps of the same rank (2 to 4 axes, channels_last); "
            f"the block's input is {shape_text(in_shape)}, its output {shape_text(out_shape)}",
            hint="keep Flatten, Dense and global pooling outside the Residual block",
        )
    strides = total_stride(block.layers, len(in_shape) - 1)
    if strides is None:
        raise shapes.ShapeError(
            f"shortcut projection cannot follow upsampling, reshaping or transposed convolutions: the block's "
            f"input is {shape_text(in_shape)}, its output {shape_text(out_shape)}",
            hint="keep the shape inside the block, or move those layers outside it",
        )
    rank = len(in_shape) - 1
    args = {
        "filters": out_shape[-1],
        "kernel_size": (1,) * rank,
        "strides": strides,
        "padding": "valid",
        "data_format": "channels_last",
        "dilation_rate": (1,) * rank,
        "groups": 1,
        "use_bias": True,
    }
    got = shapes.conv(in_shape, args).shape
    if tuple(got) != out_shape:
        raise shapes.ShapeError(
            f"shortcut projection (1×1 conv, stride {shape_text(strides)}) turns the block's input "
            f"{shape_text(in_shape)} into {shape_text(got)}, but the block's layers output {shape_text(out_shape)}",
            hint="use padding: same inside the block so that only strides change the size",
        )
    return args


def total_stride(layers, rank: int) -> tuple | None:
    """Product of the strides along the block's main path; None when a layer scales up or reshapes."""
    total = [1] * rank
    for layer in layers:
        if isinstance(layer, ResidualSpec):
            inner = total_stride(layer.layers, rank)
            if inner is None:
                return None
            step = inner
        elif layer.type.startswith(("UpSampling", "Reshape", "Permute", "Resizing", "RandomCrop")) or (
            "Transpose" in layer.type
        ):
            return None
        elif "strides" in layer.full:
            step = layer.full["strides"] or layer.full.get("pool_size")
            if step is None:
                continue
        else:
            continue
        if len(step) != rank:
            return None
        total = [t * s for t, s in zip(total, step)]
    return tuple(total)


def summarize_residual(walk, spec, block: ResidualSpec, shape: tuple, rf, spatial_alive: bool):
    """The block's summary row (children: its layers' rows) and the state after it.

    `walk(spec, layers, shape, rf, spatial_alive)` is summary's own walk over a list of layers, so inner rows are
    computed exactly like top-level ones, with the receptive field carried in from the layers before the block.
    The shortcut never widens the receptive field: it is 1×1 with the same total stride as the main path."""
    from cnnkit.spec.summary import LayerRow

    children, out_shape, rf_after, alive_after = walk(spec, list(block.layers), tuple(shape), rf, spatial_alive)
    try:
        plan = projection(block, tuple(shape), tuple(out_shape))
    except shapes.ShapeError as err:
        raise SpecError(f"{block.label}: {err.message}", file=spec.file, line=block.line, hint=err.hint) from None
    params = macs = 0
    arithmetic = "identity shortcut"
    if plan is not None:
        proj = shapes.conv(tuple(shape), plan)
        params, macs = proj.trainable, proj.macs
        arithmetic = (
            f"projection shortcut: 1×1 conv {shape[-1]}→{plan['filters']}, stride "
            f"{shape_text(plan['strides'])} ({params:,} params)"
        )
    trainable = sum(r.trainable_params for r in children) + params
    fixed = sum(r.non_trainable_params for r in children)
    if block.full.get("trainable") is False:
        trainable, fixed = 0, trainable + fixed
        _freeze(children)
    last = children[-1]
    row = LayerRow(
        index=block.index,
        type=RESIDUAL,
        name=block.args.get("name"),
        input_shape=list(shape),
        output_shape=list(out_shape),
        params=trainable + fixed,
        trainable_params=trainable,
        non_trainable_params=fixed,
        macs=sum(r.macs for r in children) + macs,
        receptive_field=last.receptive_field,
        jump=last.jump,
        arithmetic=arithmetic,
    )
    row.children = children
    return row, tuple(out_shape), rf_after, alive_after


def _freeze(rows) -> None:
    for row in rows:
        row.non_trainable_params, row.trainable_params = row.params, 0
        _freeze(getattr(row, "children", []))

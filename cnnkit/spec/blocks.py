"""Blocks: spec entries that hold other layers. Pure Python, no TensorFlow.

``- Residual: {layers: [...], shortcut: identity | projection}`` adds the block's input to the output of its
layers (He et al. 2016). Its layers use the usual syntax and may hold Residual blocks themselves. When the
block changes the shape, ``shortcut: projection`` puts a 1×1 convolution (channels_last, with bias) with the
block's total stride on the shortcut; ``identity`` (the default) requires the shapes to match. When the shapes
match, ``projection`` adds nothing: the shortcut is the identity.

``- FromRun: {run: RUN, until: NAME_OR_INDEX, trainable: false}`` takes the first layers of a trained run, read
from RUN/spec.yaml here and given RUN/model.keras' weights when the model is built (cnnkit.run.blocks).

This module parses a block (``parse_block``), computes its summary rows (``summarize_block``) and the
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
FROM_RUN = "FromRun"
SHORTCUTS = ("identity", "projection")
RESIDUAL_KEYS = ("layers", "shortcut", "name", "trainable")
FROM_RUN_KEYS = ("run", "until", "trainable", "name")
# Spec names of the blocks (case-insensitive) -> canonical name.
BLOCKS = {"residual": RESIDUAL, "fromrun": FROM_RUN}
# The Keras layer a FromRun becomes: a plain stack of the run's first layers, saved with them (no run needed
# to load the model file again). Its saved config is the same {layers: [...]} YAML as a Residual's.
STACK = "Stack"


@dataclass(frozen=True)
class ResidualSpec(LayerSpec):
    layers: tuple = ()
    shortcut: str = "identity"
    # The block as written in YAML ({layers: [...], shortcut: ...}): what the Keras layer saves and re-parses.
    entry: dict | None = None


@dataclass(frozen=True)
class FromRunSpec(LayerSpec):
    """The first layers of a trained run (`layers`, parsed from RUN/spec.yaml) and where their weights are."""

    layers: tuple = ()
    run: str = ""  # the run folder, resolved (absolute): RUN/spec.yaml and RUN/model.keras
    entry: dict | None = None  # {layers: [...]}: those layers as the run's spec.yaml writes them


def lookup(name) -> str | None:
    return BLOCKS.get(str(name).lower())


def parse_block(check, path: tuple, index: int, args, parse_layer) -> LayerSpec:
    """`path` ends with the block's key as written (`("layers", 2, "residual")`)."""
    if lookup(path[-1]) == FROM_RUN:
        return parse_from_run(check, path, index, args)
    return parse_residual(check, path, index, args, parse_layer)


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


def parse_from_run(check, path: tuple, index: int, args) -> FromRunSpec:
    """`- FromRun: {run: RUN, until: NAME_OR_INDEX, trainable: false}`: RUN/spec.yaml is read here (no TensorFlow);
    the weights are read from RUN/model.keras when the model is built. The run's path is written back resolved,
    so the new run's spec.yaml still finds it from any folder."""
    from pathlib import Path

    from cnnkit.spec.parse import load_spec

    if not isinstance(args, dict):
        check.fail(path, f"arguments must be a mapping such as {{run: runs/latest, until: 3}}. Received: {args!r}")
    check.mapping(path, args, FROM_RUN_KEYS, "FromRun arguments")
    for key in ("run", "until"):
        if key not in args:
            check.fail(path, f"FromRun needs `{key}`; required: run (a run folder), until (a layer name or index)")
    run = check.arg(path + ("run",), Str(), args["run"])
    folder = Path(run).expanduser()
    if not (folder / "spec.yaml").is_file():
        check.fail(
            path + ("run",),
            f"expected a cnnkit run folder (with spec.yaml and model.keras), found {'a folder without spec.yaml' if folder.is_dir() else 'no such folder'}: {run}",
            "pass a folder made by `cnnkit train`, e.g. runs/latest",
        )
    if not (folder / "model.keras").is_file():
        check.fail(path + ("run",), f"run {run} has no model.keras (its training never finished a save)")
    folder = folder.resolve()
    source = load_spec(folder / "spec.yaml")
    until = args["until"]
    names = [layer.args.get("name") for layer in source.layers]
    if isinstance(until, bool) or not isinstance(until, (int, str)):
        check.fail(path + ("until",), f"must be a layer index or name. Received: until={until!r}.")
    if isinstance(until, int):
        if not 0 <= until < len(source.layers):
            check.fail(
                path + ("until",),
                f"run {run} has layers 0..{len(source.layers) - 1}. Received: until={until}.",
            )
        last = until
    elif until in names:
        last = names.index(until)
    else:
        given = [n for n in names if n]
        check.fail(
            path + ("until",),
            f"run {run} has no layer named '{until}'",
            f"its named layers: {', '.join(given)}" if given else "its layers have no names; use an index",
        )
    taken = source.layers[: last + 1]
    if any(isinstance(layer, FromRunSpec) for layer in taken):
        check.fail(path + ("run",), f"run {run} itself starts with FromRun; take the layers from that run instead")
    normalized = {"trainable": check.arg(path + ("trainable",), Bool(), args.get("trainable", False))}
    if args.get("name") is not None:
        normalized["name"] = check.arg(path + ("name",), Str(), args["name"])
    args["run"] = str(folder)  # spec.raw (the new run's spec.yaml) keeps the resolved folder
    return FromRunSpec(
        index,
        FROM_RUN,
        normalized,
        dict(normalized),
        check.doc.line(path),
        layers=tuple(_nest(layer, path) for layer in taken),
        run=str(folder),
        entry={"layers": source.raw["layers"][: last + 1], "input_shape": list(source.input_shape)},
    )


def _nest(layer: LayerSpec, path: tuple) -> LayerSpec:
    """An inner layer's label says where it sits: `layers[2].Residual.layers[0] Conv2D`."""
    prefix = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    return replace(layer, where=f"{prefix}.")


def residual_from_config(entry: dict, where: str) -> ResidualSpec:
    """Re-read a block saved by the Keras layer (its `entry`); any problem is a SpecError naming `where`."""
    from cnnkit.spec.parse import parse_block_entry

    return parse_block_entry({RESIDUAL: entry}, where)


def stack_from_config(entry: dict, where: str) -> ResidualSpec:
    """A Stack's saved {layers: [...], input_shape: [...]}: its layers, read by the same parser (a Residual's
    parse, whose shortcut the Stack never uses)."""
    if not isinstance(entry, dict) or set(entry) - {"layers", "input_shape"}:
        raise SpecError(f"{where}: expected {{layers: [...], input_shape: [...]}}, found {entry!r:.80}")
    return residual_from_config({"layers": entry.get("layers")}, where)


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
        if isinstance(layer, (ResidualSpec, FromRunSpec)):
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


def summarize_block(walk, spec, block: ResidualSpec, shape: tuple, rf, spatial_alive: bool):
    """The block's summary row (children: its layers' rows) and the state after it.

    `walk(spec, layers, shape, rf, spatial_alive)` is summary's own walk over a list of layers, so inner rows are
    computed exactly like top-level ones, with the receptive field carried in from the layers before the block.
    The shortcut never widens the receptive field: it is 1×1 with the same total stride as the main path."""
    from cnnkit.spec.summary import LayerRow

    if isinstance(block, FromRunSpec):
        want = tuple(block.entry["input_shape"])
        if tuple(shape) != want:
            raise SpecError(
                f"{block.label}: run {block.run} takes input {shape_text(want)} but receives {shape_text(shape)}",
                file=spec.file,
                line=block.line,
                hint=f"set input_shape: {list(want)} (or resize the data to it)" if block.index == 0 else None,
            )
    children, out_shape, rf_after, alive_after = walk(spec, list(block.layers), tuple(shape), rf, spatial_alive)
    plan = None
    try:
        if isinstance(block, ResidualSpec):
            plan = projection(block, tuple(shape), tuple(out_shape))
    except shapes.ShapeError as err:
        raise SpecError(f"{block.label}: {err.message}", file=spec.file, line=block.line, hint=err.hint) from None
    params = macs = 0
    arithmetic = (
        "identity shortcut" if isinstance(block, ResidualSpec) else f"layers 0..{len(block.layers) - 1} of {block.run}"
    )
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
        type=block.type,
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

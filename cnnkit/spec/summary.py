"""Shape inference over a whole spec: what ``cnnkit summary`` shows. Pure Python.

Walks the layers with the registry's rules, turning any ``ShapeError`` into a ``SpecError``
at the layer's line, and totals params, MACs and memory.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from cnnkit.errors import SpecError
from cnnkit.spec import layers as layer_registry
from cnnkit.spec.shapes import Field, LayerOut, ShapeError, prod
from cnnkit.text import shape_text

BYTES_PER_VALUE = 4  # float32 activations and weights


@dataclass
class LayerRow:
    index: int
    type: str
    name: str | None
    input_shape: list
    output_shape: list
    params: int
    trainable_params: int
    non_trainable_params: int
    macs: int
    # Input pixels one output unit sees, per spatial axis; "n/a (after upsampling)" where no single number is
    # true (see shapes.LayerOut.rf_lost); None once the spatial axes are gone.
    receptive_field: int | list | str | None
    jump: int | list | None
    arithmetic: str
    # A block's own layers (spec/blocks.py), each with its shapes and the receptive field from the model's input.
    children: list = field(default_factory=list)


def _all_rows(rows):
    for row in rows:
        yield row
        yield from _all_rows(row.children)


@dataclass
class Summary:
    name: str
    input_shape: list
    layers: list[LayerRow]

    def all_rows(self) -> list:
        """Every row, the layers inside blocks included."""
        return list(_all_rows(self.layers))

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.layers)

    @property
    def trainable_params(self) -> int:
        return sum(r.trainable_params for r in self.layers)

    @property
    def total_macs(self) -> int:
        return sum(r.macs for r in self.layers)

    @property
    def activation_bytes(self) -> int:
        """Per sample, forward pass: every layer's output (the input included)."""
        return BYTES_PER_VALUE * (prod(self.input_shape) + sum(prod(r.output_shape) for r in _all_rows(self.layers)))

    @property
    def param_bytes(self) -> int:
        return BYTES_PER_VALUE * self.total_params

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "input_shape": self.input_shape,
            "layers": [asdict(r) for r in self.layers],
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "non_trainable_params": self.total_params - self.trainable_params,
            "total_macs": self.total_macs,
            "activation_bytes_per_sample": self.activation_bytes,
            "param_bytes": self.param_bytes,
        }


def summarize(spec) -> Summary:
    shape = tuple(spec.input_shape)
    rf = Field.start(_spatial_rank(shape, "channels_last"))
    rows, _, _, _ = walk(spec, spec.layers, shape, rf, len(shape) >= 2)
    return Summary(spec.name, list(spec.input_shape), rows)


def walk(spec, layers, shape: tuple, rf: Field, spatial_alive: bool):
    """Rows for `layers` starting from `shape` and receptive field `rf`; returns (rows, shape, rf, alive) after
    the last one. Blocks (spec/blocks.py) walk their own layers with this same function."""
    from cnnkit.spec import blocks  # blocks.py builds on parse.py, which imports this module

    rows: list[LayerRow] = []
    for layer in layers:
        if isinstance(layer, (blocks.ResidualSpec, blocks.FromRunSpec, blocks.BackboneSpec)):
            row, shape, rf, spatial_alive = blocks.summarize_block(walk, spec, layer, shape, rf, spatial_alive)
            rows.append(row)
            continue
        entry = layer_registry.LAYERS[layer.type]
        _check_rank(spec, layer, entry, shape, rows)
        try:
            out: LayerOut = entry.rule(shape, layer.full)
        except ShapeError as err:
            raise SpecError(f"{layer.label}: {err.message}", file=spec.file, line=layer.line, hint=err.hint) from None
        if layer.full.get("trainable") is False:
            out.non_trainable, out.trainable = out.non_trainable + out.trainable, 0
        if not out.spatial or len(out.shape) < 2:
            spatial_alive = False
        if spatial_alive:
            rf = rf.after(out)
        rows.append(
            LayerRow(
                index=layer.index,
                type=layer.type,
                name=layer.args.get("name"),
                input_shape=list(shape),
                output_shape=list(out.shape),
                params=out.trainable + out.non_trainable,
                trainable_params=out.trainable,
                non_trainable_params=out.non_trainable,
                macs=out.macs,
                receptive_field=_receptive_field(rf) if spatial_alive else None,
                jump=rf.compact(rf.jump) if spatial_alive and not rf.lost else None,
                arithmetic="; ".join(out.arithmetic),
            )
        )
        shape = tuple(out.shape)
    return rows, shape, rf, spatial_alive


def _spatial_rank(shape: tuple, data_format: str) -> int:
    return max(len(shape) - 1, 1)


def _receptive_field(rf: Field) -> int | list | str:
    return f"n/a (after {rf.lost})" if rf.lost else rf.compact(rf.size)


def _check_rank(spec, layer, entry, shape: tuple, rows: list[LayerRow]) -> None:
    if entry.input_ranks is None or len(shape) in entry.input_ranks:
        return
    inside = getattr(layer, "where", "")  # the first layer of a block gets the block's input
    source = (
        f"from {rows[-1].type} (layers[{rows[-1].index}])"
        if rows
        else ("as the block's input" if inside else "as input_shape")
    )
    expected = entry.rank_meaning or " or ".join(f"{r}-D" for r in entry.input_ranks)
    hint = None
    if rows and len(shape) == 1:
        hint = f"a {layer.type} cannot follow a flattening layer; move Flatten/Dense after the conv blocks"
    elif not rows and not inside:
        hint = f"set input_shape to {expected}"
    raise SpecError(
        f"{layer.label} expects input of rank {entry.input_ranks[0]} {expected} but receives "
        f"{shape_text(shape)} (rank {len(shape)}) {source}",
        file=spec.file,
        line=layer.line,
        hint=hint,
    )

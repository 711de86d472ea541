"""A JSON Schema of the spec language, generated from the same registries the parser uses,
so an editor (e.g. VS Code's YAML extension) completes and checks what cnnkit accepts."""

from __future__ import annotations

from cnnkit.spec import blocks, datasets, options
from cnnkit.spec import layers as layer_registry
from cnnkit.spec.defaults import DATA_DEFAULTS, TRAIN_DEFAULTS


def spec_schema() -> dict:
    layer_items = []
    for name in layer_registry.all_names():
        entry = layer_registry.LAYERS[layer_registry.lookup(name)]
        props = {arg: {**a.type.schema(), "description": _default_doc(a)} for arg, a in entry.args.items()}
        args_schema = {"type": ["object", "null"], "properties": props, "additionalProperties": False}
        if entry.required:
            args_schema = {**args_schema, "type": "object", "required": entry.required}
        layer_items.append(
            {
                "type": "object",
                "properties": {name: args_schema},
                "required": [name],
                "additionalProperties": False,
                "description": f"keras.layers.{entry.keras_class}",
            }
        )
    bare = [n for n in layer_registry.all_names() if not layer_registry.LAYERS[layer_registry.lookup(n)].required]

    def named(names):
        return {
            "oneOf": [
                {"enum": list(names)},
                {"type": "object", "properties": {"name": {"enum": list(names)}}, "required": ["name"]},
            ]
        }

    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "cnnkit spec",
        "type": "object",
        "additionalProperties": False,
        "required": ["input_shape", "layers"],
        # one layer entry; blocks (spec/blocks.py) hold lists of them
        "$defs": {"layer": {"oneOf": [{"enum": bare}, *layer_items, *blocks.schema_items("#/$defs/layer")]}},
        "properties": {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "input_shape": {
                "type": "array",
                "items": {"type": "integer", "minimum": 1},
                "minItems": 1,
                "maxItems": 4,
                "description": "channels_last: (H, W, C); (steps, features) for 1D",
            },
            "layers": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/layer"}},
            "data": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    **{k: {"description": f"default: {v!r}"} for k, v in DATA_DEFAULTS.items()},
                    **{k: {**t.schema(), "description": f"default: {DATA_DEFAULTS.get(k)!r}"} for k, t in _data_keys()},
                    "dataset": {"enum": list(datasets.DATASETS)},
                },
            },
            "train": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    **{k: {"description": f"default: {v!r}"} for k, v in TRAIN_DEFAULTS.items()},
                    "optimizer": named(options.OPTIMIZERS),
                    "loss": named(options.LOSSES),
                    "metrics": {"type": "array", "items": named(options.METRICS)},
                    "epochs": {"type": "integer", "minimum": 1},
                    "batch_size": {"type": "integer", "minimum": 1},
                    "test_time_flip": {"enum": [*options.TEST_TIME_FLIPS, None], "default": None},
                },
            },
        },
    }


def _default_doc(arg) -> str:
    return "required" if arg.default is layer_registry.REQUIRED else f"default: {arg.default!r}"


def _data_keys():
    """(key, type) of every data: key; a key several datasets read has one type (tests/test_spec.py checks)."""
    seen = dict(datasets.COMMON_KEYS)
    for kind in datasets.DATASETS.values():
        seen.update(kind.keys)
    return seen.items()

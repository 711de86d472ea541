"""The spec: parse a YAML document into a typed, normalized, fully checked ``Spec``.

No TensorFlow here. Every problem becomes a ``SpecError`` with the file, the line of the
offending value, its field path (``layers[3].Conv2D.filtres``), what was expected, what came
in, and a suggestion where one exists.
"""

from __future__ import annotations

import copy
import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cnnkit.errors import SpecError
from cnnkit.spec import datasets, finetune, options, train_extras
from cnnkit.spec import layers as layer_registry
from cnnkit.spec.argtypes import ArgError, Bool, Enum, Float, Int, Shape, Str
from cnnkit.spec.defaults import DATA_DEFAULTS, TRAIN_DEFAULTS
from cnnkit.spec.summary import Summary, summarize
from cnnkit.spec.yamlio import Document, dotted_path, load_file, load_text
from cnnkit.text import did_you_mean, one_line

TOP_LEVEL_KEYS = ("name", "description", "input_shape", "layers", "data", "train")


@dataclass(frozen=True)
class LayerSpec:
    index: int
    type: str  # canonical Keras class name
    args: dict  # what the user wrote, normalized (passed to Keras as-is)
    full: dict  # args over Keras defaults (what the shape rules read)
    line: int | None
    where: str = ""  # the block a layer sits in: "layers[2].Residual." (spec/blocks.py)

    @property
    def label(self) -> str:
        return f"{self.where}layers[{self.index}] {self.type}"


@dataclass
class Spec:
    name: str
    input_shape: tuple
    layers: list[LayerSpec]
    data: dict
    train: dict
    file: str = "<string>"
    description: str = ""
    raw: dict = field(default_factory=dict)  # the document after --set overrides, for the run folder
    # Shapes, params, MACs and receptive field per layer: worked out once, by parse (shapes are part of validity).
    summary: Summary | None = field(default=None, repr=False, compare=False)

    def resolved_yaml(self) -> str:
        return yaml.safe_dump(self.raw, sort_keys=False, default_flow_style=None)


class _Checker:
    """Walks the document, remembering where each value came from for error messages."""

    def __init__(self, doc: Document):
        self.doc = doc

    def fail(self, path: tuple, message: str, hint: str | None = None):
        # keys and values are the user's text: a line break in one must not split the error line
        message, hint, where = one_line(message), hint and one_line(hint), one_line(dotted_path(path)) or None
        for depth in range(len(path), 0, -1):
            if path[:depth] in self.doc.overrides:
                raise SpecError(message, file=f"--set {self.doc.overrides[path[:depth]]}", path=where, hint=hint)
        raise SpecError(message, file=self.doc.file, line=self.doc.line(path), path=where, hint=hint)

    def arg(self, path: tuple, argtype, value):
        try:
            return argtype(str(path[-1]), value)
        except ArgError as err:
            self.fail(path, err.message, err.hint)

    def mapping(self, path: tuple, value, allowed, what: str) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(path, f"must be a mapping of {what}. Received: {value!r}.")
        for key in value:
            if key not in allowed:
                hint = did_you_mean(str(key), allowed) or _misplaced(path, key) or f"valid keys: {', '.join(allowed)}"
                self.fail(path + (key,), f"unknown key '{key}' in {what}", hint)
        return value


def _misplaced(path: tuple, key) -> str | None:
    """`epochs:` or `optimiser:` at the top level: point to the section it belongs in."""
    if path:
        return None
    for section, keys in (("train", TRAIN_DEFAULTS), ("data", DATA_DEFAULTS)):
        close = difflib.get_close_matches(str(key).lower(), list(keys), n=1, cutoff=0.8)
        if close:
            return f"`{close[0]}` belongs under `{section}:`, e.g. {section}: {{{close[0]}: ...}}"
    return None


def load_spec(path: str | Path, overrides: list[str] | None = None) -> Spec:
    """Read, override, validate and shape-check a spec file."""
    doc = load_file(path)
    apply_overrides(doc, overrides or [])
    return parse(doc)


def load_spec_text(text: str, name: str = "<string>") -> Spec:
    return parse(load_text(text, name))


def apply_overrides(doc: Document, overrides: list[str]) -> None:
    """``--set train.epochs=3``: the value is read as YAML (so 3 is an int, [1,2] a list)."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"--set expects KEY=VALUE (e.g. train.epochs=3). Received: {item!r}")
        if one_line(item) != item:
            raise SpecError(f"--set expects one line; this one has a line break. Received: {item!r}")
        try:
            value = load_text(f"v: {text}", "--set").data["v"]
        except SpecError:
            value = text
        parts: list[Any] = [int(p) if p.isascii() and p.isdigit() else p for p in key.strip().split(".")]
        node = doc.data
        for i, part in enumerate(parts[:-1]):
            nxt = (
                node.get(part)
                if isinstance(node, dict)
                else (node[part] if isinstance(node, list) and isinstance(part, int) and part < len(node) else None)
            )
            if nxt is None:
                if not isinstance(node, dict):
                    raise SpecError(f"--set {key}: '{'.'.join(map(str, parts[: i + 1]))}' is not in the spec")
                nxt = node[part] = {}
            node = nxt
        if isinstance(node, list) and isinstance(parts[-1], int) and parts[-1] < len(node):
            node[parts[-1]] = value
        elif isinstance(node, dict):
            node[parts[-1]] = value
        else:
            raise SpecError(f"--set {key}: cannot set a value inside {type(node).__name__}")
        doc.lines.pop(tuple(parts), None)
        doc.overrides[tuple(parts)] = item


def parse(doc: Document) -> Spec:
    check = _Checker(doc)
    data = doc.data
    check.mapping((), data, TOP_LEVEL_KEYS, "the spec")
    if "input_shape" not in data:
        check.fail((), "missing `input_shape`; expected e.g. input_shape: [28, 28, 1] (height, width, channels)")
    input_shape = check.arg(("input_shape",), Shape(), data["input_shape"])
    if len(input_shape) > 4:
        check.fail(
            ("input_shape",), f"must have 1 to 4 dimensions (no batch axis). Received: input_shape={list(input_shape)}."
        )
    if "layers" not in data:
        check.fail((), "missing `layers`; expected a list such as - Conv2D: {filters: 32, kernel_size: 3}")
    raw_layers = data["layers"]
    if not isinstance(raw_layers, list) or not raw_layers:
        check.fail(("layers",), f"must be a non-empty list of layers. Received: layers={raw_layers!r}.")
    name = data.get("name", Path(doc.file).stem)
    name = check.arg(("name",), Str(), name) if "name" in data else name
    description = check.arg(("description",), Str(), data["description"]) if data.get("description") else ""
    specs = [_parse_layer(check, i, item) for i, item in enumerate(raw_layers)]
    _check_unique_names(check, specs)
    spec = Spec(
        name=str(name),
        input_shape=input_shape,
        layers=specs,
        data=_parse_data(check, data.get("data")),
        train=_parse_train(check, data.get("train")),
        file=doc.file,
        description=description,
        raw=copy.deepcopy(data),
    )
    finetune.check_frozen(check, specs, spec.train.get("fine_tune"))
    if spec.train["test_time_flip"] and len(input_shape) != 3:
        check.fail(
            ("train", "test_time_flip"),
            f"flips images, so input_shape must be (height, width, channels). Received: input_shape="
            f"{list(input_shape)}.",
            "remove test_time_flip, or give the spec a 3-D image input",
        )
    # Shapes are part of validity: a Conv2D after Flatten or a pool that eats the image is a spec error.
    spec.summary = summarize(spec)
    return spec


def _parse_layer(check: _Checker, index: int, item, path: tuple | None = None) -> LayerSpec:
    path = path or ("layers", index)
    if isinstance(item, str):
        name, args = item, {}
    elif isinstance(item, dict) and len(item) == 1:
        ((name, args),) = item.items()
        if args is None:
            args = {}
    else:
        check.fail(
            path,
            "a layer is a name (- Flatten) or a one-key mapping (- Conv2D: {filters: 32, "
            f"kernel_size: 3}}). Received: {item!r}",
        )
    from cnnkit.spec import blocks  # blocks.py builds on LayerSpec, defined here

    if blocks.lookup(name):
        return blocks.parse_block(check, path + (name,), index, args, _parse_layer)
    keras_class = layer_registry.lookup(name)
    if keras_class is None:
        hint = (
            did_you_mean(str(name), layer_registry.all_names() + sorted(blocks.BLOCKS.values()))
            or "run `cnnkit layers` for the list"
        )
        check.fail(path, f"unknown layer type '{name}'", hint)
    layer_type = layer_registry.LAYERS[keras_class]
    path = path + (keras_class,)
    if not isinstance(args, dict):
        check.fail(
            path,
            f"arguments must be a mapping such as {{{', '.join(layer_type.required) or 'name'}: ...}}. "
            f"Received: {args!r}",
        )
    normalized = {}
    for key, value in args.items():
        if key not in layer_type.args:
            hint = did_you_mean(str(key), layer_type.args) or f"{keras_class} takes: {', '.join(layer_type.args)}"
            check.fail(path + (key,), f"unknown argument '{key}' for {keras_class}", hint)
        normalized[key] = check.arg(path + (key,), layer_type.args[key].type, value)
    for key in layer_type.required:
        if key not in normalized:
            check.fail(path, f"{keras_class} needs `{key}`; required: {', '.join(layer_type.required)}")
    full = {**layer_type.defaults, **normalized}
    _cross_checks(check, path, keras_class, layer_type, full)
    return LayerSpec(index, keras_class, normalized, full, check.doc.line(path))


def parse_block_entry(item: dict, where: str) -> LayerSpec:
    """One block entry (`{Residual: {...}}`) read back from a model file: the same checks as in a spec file."""
    return _parse_layer(_Checker(Document(item, where)), 0, item, ("layers", 0))


def _cross_checks(check: _Checker, path: tuple, keras_class: str, layer_type, full: dict) -> None:
    if full.get("padding") == "causal" and not layer_type.causal_ok:
        check.fail(
            path + ("padding",),
            f"padding 'causal' is only valid for Conv1D, not {keras_class}",
            "use padding: same or valid",
        )
    strides, dilation = full.get("strides"), full.get("dilation_rate")
    # Keras runs separable/depthwise convs with both; the registry marks the layers that refuse it.
    if layer_type.refuses_strided_dilation and strides and dilation and max(strides) > 1 and max(dilation) > 1:
        check.fail(
            path + ("strides",),
            f"strides > 1 cannot be combined with dilation_rate > 1 "
            f"(Keras refuses it). Received: strides={list(strides)}, "
            f"dilation_rate={list(dilation)}.",
            "set one of them to 1",
        )


def _check_unique_names(check: _Checker, specs: list[LayerSpec]) -> None:
    seen: dict[str, int] = {}
    for spec in specs:
        name = spec.args.get("name")
        if name in seen:
            check.fail(
                ("layers", spec.index, spec.type, "name"),
                f"layer name '{name}' is already used by layers[{seen[name]}]; names must be unique",
            )
        if name:
            seen[name] = spec.index


# --- data: -------------------------------------------------------------------------------------


def _parse_data(check: _Checker, value) -> dict:
    """The `data:` section: the dataset first, then only the keys that dataset reads (spec/datasets.py)."""
    raw = check.mapping(("data",), value, datasets.all_keys(), "data settings")
    name = check.arg(("data", "dataset"), Enum(tuple(datasets.DATASETS)), raw.get("dataset", DATA_DEFAULTS["dataset"]))
    kind = datasets.DATASETS[name]
    allowed = {**datasets.COMMON_KEYS, **kind.keys}
    out = {**DATA_DEFAULTS, **{key: DATA_DEFAULTS.get(key) for key in kind.keys}, "dataset": name}
    for key, val in raw.items():
        if key == "dataset":
            continue
        path = ("data", key)
        if key not in allowed:  # a key of another dataset (check.mapping refused the keys no dataset reads)
            readers = datasets.readers(key)
            by = (
                f"dataset {readers[0]}"
                if len(readers) == 1
                else f"datasets {', '.join(readers[:-1])} and {readers[-1]}"
            )
            check.fail(
                path,
                f"dataset {name} does not read `{key}`",
                f"`{key}` is read by {by}; {name} reads: {', '.join(allowed)}",
            )
        out[key] = check.arg(path, allowed[key], val)
    if kind.needs_path and not out.get("path"):
        check.fail(("data",), f"dataset '{name}' needs `path` (the file or folder to read)")
    return out


# --- train: ------------------------------------------------------------------------------------


def _named(check: _Checker, path: tuple, value, registry: dict, what: str) -> dict:
    """'adam' or {name: adam, learning_rate: 0.001} -> {"name": ..., "args": {...}}."""
    if isinstance(value, str):
        name, args = value, {}
    elif isinstance(value, dict):
        if "name" not in value:
            check.fail(path, f"a {what} mapping needs `name`, e.g. {{name: {next(iter(registry))}}}")
        args = {k: v for k, v in value.items() if k != "name"}
        name = value["name"]
    else:
        check.fail(path, f"must be a {what} name or a mapping with `name`. Received: {value!r}.")
    key = str(name).lower()
    if key not in registry:
        check.fail(
            path + (("name",) if isinstance(value, dict) else ()),
            f"unknown {what} '{name}'; valid: {', '.join(registry)}",
            did_you_mean(str(name), registry),
        )
    allowed = registry[key].args
    for arg, val in args.items():
        if arg not in allowed:
            check.fail(
                path + (arg,),
                f"unknown argument '{arg}' for {what} {key}",
                did_you_mean(arg, allowed) or f"valid: {', '.join(allowed) or 'none'}",
            )
        args[arg] = _plain_value(check, path + (arg,), val)
    return {"name": key, "args": args}


def _plain_value(check: _Checker, path: tuple, value):
    """Optimizer/loss/callback arguments: numbers (finite), bools, strings or lists of them."""
    if isinstance(value, list):
        return [_plain_value(check, path + (i,), v) for i, v in enumerate(value)]
    if isinstance(value, str):
        try:
            return float(value)  # `1e-3` in YAML 1.1 is text; the user meant the number
        except ValueError:
            return value
    if isinstance(value, float) and not math.isfinite(value):
        check.fail(path, f"must be a finite number. Received: {path[-1]}={value!r}.")
    if value is None or isinstance(value, (bool, int, float)):
        return value
    check.fail(path, f"must be a number, true/false or a name. Received: {value!r}.")


def _parse_train(check: _Checker, value) -> dict:
    raw = check.mapping(("train",), value, (*TRAIN_DEFAULTS, "mixed_precision"), "train settings")
    out = copy.deepcopy(TRAIN_DEFAULTS)
    out["optimizer"] = _named(
        check, ("train", "optimizer"), raw.get("optimizer", out["optimizer"]), options.OPTIMIZERS, "optimizer"
    )
    lr = out["optimizer"]["args"].get("learning_rate")
    if lr is not None and (not isinstance(lr, (int, float)) or isinstance(lr, bool) or lr <= 0):
        check.fail(
            ("train", "optimizer", "learning_rate"), f"must be a positive number. Received: learning_rate={lr!r}."
        )
    out["loss"] = _named(check, ("train", "loss"), raw.get("loss", out["loss"]), options.LOSSES, "loss")
    label_kind = options.LOSSES[out["loss"]["name"]].labels
    metrics = raw.get("metrics", out["metrics"])
    if not isinstance(metrics, list):
        check.fail(("train", "metrics"), f"must be a list of metric names. Received: {metrics!r}.")
    out["metrics"] = []
    for i, metric in enumerate(metrics):
        parsed = _named(check, ("train", "metrics", i), metric, options.METRICS, "metric")
        kinds = options.METRICS[parsed["name"]].labels
        if label_kind not in kinds:
            check.fail(
                ("train", "metrics", i),
                f"metric {parsed['name']} does not fit loss {out['loss']['name']} ({label_kind} labels)",
                "use accuracy, which Keras matches to the loss",
            )
        out["metrics"].append(parsed)
    for key in ("epochs", "batch_size"):
        if key in raw:
            out[key] = check.arg(("train", key), Int(), raw[key])
    out["top_k"] = check.arg(("train", "top_k"), Int(), raw.get("top_k", out["top_k"]))
    if raw.get("test_time_flip") is not None:
        out["test_time_flip"] = check.arg(
            ("train", "test_time_flip"), Enum(options.TEST_TIME_FLIPS), raw["test_time_flip"]
        )
    if "steps_per_execution" in raw:
        out["steps_per_execution"] = check.arg(("train", "steps_per_execution"), Int(), raw["steps_per_execution"])
    if raw.get("validation_batch_size", "auto") != "auto":
        out["validation_batch_size"] = check.arg(
            ("train", "validation_batch_size"), Int(), raw["validation_batch_size"]
        )
    if "seed" in raw:
        out["seed"] = check.arg(("train", "seed"), Int(0), raw["seed"])
    for key in ("deterministic", "shuffle"):
        if key in raw:
            out[key] = check.arg(("train", key), Bool(), raw[key])
    if "precision" in raw:
        out["precision"] = check.arg(("train", "precision"), Enum(options.PRECISIONS), raw["precision"])
    elif "mixed_precision" in raw:  # cnnkit 0.1's switch: mixed_float16 (on a GPU) or float32
        mixed = check.arg(("train", "mixed_precision"), Bool(), raw["mixed_precision"])
        out["precision"] = "mixed_float16" if mixed else "float32"
    if "monitor" in raw:
        out["monitor"] = check.arg(("train", "monitor"), Str(), raw["monitor"])
    if raw.get("lr_schedule") is not None:
        out["lr_schedule"] = _named(
            check, ("train", "lr_schedule"), raw["lr_schedule"], options.SCHEDULES, "learning-rate schedule"
        )
    for key, allowed in options.CALLBACK_ARGS.items():
        if raw.get(key) is not None:
            given = raw[key] if raw[key] is not True else {}
            args = check.mapping(("train", key), given, allowed, f"{key} arguments")
            out[key] = {k: _plain_value(check, ("train", key, k), v) for k, v in args.items()}
    if out["lr_schedule"] and out["reduce_lr_on_plateau"] is not None:
        check.fail(
            ("train", "reduce_lr_on_plateau"),
            "cannot be combined with lr_schedule: a schedule already sets the learning rate at every step",
            "keep one of lr_schedule and reduce_lr_on_plateau",
        )
    if "distribution" in raw:
        dist = check.mapping(
            ("train", "distribution"),
            raw["distribution"],
            ("strategy", "devices", "wait_timeout"),
            "distribution settings",
        )
        strategy = check.arg(
            ("train", "distribution", "strategy"), Enum(options.STRATEGIES), dist.get("strategy", "auto")
        )
        devices = dist.get("devices")
        if devices is not None and (not isinstance(devices, list) or not all(isinstance(d, str) for d in devices)):
            check.fail(
                ("train", "distribution", "devices"),
                f"must be a list of device names such as ['/gpu:0', '/gpu:1']. Received: {devices!r}.",
            )
        out["distribution"] = {"strategy": strategy, "devices": devices}
        if "wait_timeout" in dist:  # multi_worker only; default in defaults.WAIT_TIMEOUT_S
            out["distribution"]["wait_timeout"] = check.arg(
                ("train", "distribution", "wait_timeout"), Float(minimum=0, exclusive_min=True), dist["wait_timeout"]
            )
    if "class_weight" in raw:
        out["class_weight"] = train_extras.class_weight(check, ("train", "class_weight"), raw["class_weight"])
    if "tensorboard" in raw:
        out["tensorboard"] = train_extras.tensorboard(check, ("train", "tensorboard"), raw["tensorboard"])
    if raw.get("fine_tune") is not None:
        out["fine_tune"] = finetune.parse(check, ("train", "fine_tune"), raw["fine_tune"], out["epochs"])
    return out

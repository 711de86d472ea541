"""`cnnkit summary` == Keras: output shapes and parameter counts, proven on random specs.

A hypothesis strategy draws valid-looking specs over every entry of the layer registry
(1-D/2-D/3-D inputs, random kernels, strides, padding, dilation, groups, data formats, ...),
renders them as YAML and reads them back through ``load_spec_text``, so the whole parser is
exercised. Each spec is then built with ``build_model`` and held against ``summarize``:

* cnnkit accepts  -> Keras must build it, and every layer's output shape (without the batch
  axis), ``count_params()`` and trainable/non-trainable split must equal the summary's;
* cnnkit rejects  -> Keras must reject it too (else cnnkit refuses a model Keras can build).

A model whose output has a dimension < 1 counts as rejected by Keras: some Keras layers build
such a shape silently, and it fails as soon as data flows.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cnnkit.cli import app
from cnnkit.errors import SpecError
from cnnkit.spec import argtypes
from cnnkit.spec.argtypes import ACTIVATIONS, INITIALIZERS
from cnnkit.spec.layers import LAYERS
from cnnkit.spec.parse import load_spec, load_spec_text
from cnnkit.spec.summary import summarize

CONFIGS = sorted(Path(__file__).resolve().parent.parent.joinpath("configs").glob("*.yaml"))
SETTINGS = dict(
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]
)


# --- strategies ----------------------------------------------------------------------------------


def _small_float(lo=None, hi=None, exclusive_min=False, exclusive_max=False):
    """Multiples of 1/1000 within the bounds, the bounds themselves included unless exclusive."""
    low = round((-3.0 if lo is None else lo) * 1000) + (1 if exclusive_min else 0)
    high = round((3.0 if hi is None else hi) * 1000) - (1 if exclusive_max else 0)
    # the bounds get their own draw: off-by-one bounds are where cnnkit and Keras disagree
    return st.one_of(st.sampled_from([low, high]), st.integers(low, high)).map(lambda k: k / 1000)


def arg_values(layer: str, arg: str, argtype, shape: tuple, index: int):
    """A strategy of YAML values for one argument. Unknown argument types raise, so a new
    ArgType in the registry fails ``test_strategy_covers_every_argument_type``."""
    rank = len(shape)
    if arg == "name":
        # mostly unique; now and then a duplicate (cnnkit and Keras must both refuse it)
        return st.sampled_from([f"layer_{index}"] * 9 + ["layer_dup"])
    if layer == "Reshape" and arg == "target_shape":
        return _reshape_targets(shape)
    if layer == "Permute" and arg == "dims":
        return st.one_of(
            st.permutations(list(range(1, rank + 1))).map(list), st.permutations(list(range(1, rank + 2))).map(list)
        )
    if isinstance(argtype, argtypes.Int):
        top = {"filters": 6, "units": 6, "depth_multiplier": 3, "groups": 3}.get(arg, 9)
        return st.integers(argtype.minimum, max(argtype.minimum, top))
    if isinstance(argtype, argtypes.OptionalInt):
        return st.one_of(st.none(), st.integers(argtype.minimum, 1000))
    if isinstance(argtype, argtypes.IntTuple):
        top = {"kernel_size": 4, "pool_size": 3, "strides": 3, "dilation_rate": 3, "size": 3}.get(arg, 3)
        item = st.integers(argtype.minimum, top)
        return st.one_of(item, st.lists(item, min_size=argtype.rank, max_size=argtype.rank))
    if isinstance(argtype, argtypes.Padding):
        item = st.integers(0, 2)
        pair = st.lists(item, min_size=2, max_size=2)
        forms = [item, st.lists(st.one_of(item, pair), min_size=argtype.rank, max_size=argtype.rank)]
        if argtype.rank == 1:
            forms.append(pair)
        return st.one_of(*forms)
    if isinstance(argtype, argtypes.Float):
        return _small_float(argtype.minimum, argtype.maximum, argtype.exclusive_min, argtype.exclusive_max)
    if isinstance(argtype, argtypes.FloatOrPair):
        single = _small_float(argtype.minimum, argtype.maximum)
        return st.one_of(single, st.lists(single, min_size=2, max_size=2).map(sorted))
    if isinstance(argtype, argtypes.Bool):
        return st.booleans()
    if isinstance(argtype, argtypes.Enum):
        return st.sampled_from(list(argtype.choices) + ([None] if argtype.nullable else []))
    if isinstance(argtype, argtypes.Activation):
        return st.sampled_from([None, *ACTIVATIONS])
    if isinstance(argtype, argtypes.Initializer):
        return st.sampled_from(INITIALIZERS)
    if isinstance(argtype, argtypes.Regularizer):
        return st.sampled_from([None, "l1", "l2", "l1_l2", {"l2": 0.001}, {"l1": 0.01, "l2": 0.0}])
    if isinstance(argtype, argtypes.Constraint):
        return st.sampled_from(
            [
                None,
                "non_neg",
                "unit_norm",
                "max_norm",
                {"max_norm": 3},
                {"min_max_norm": {"min_value": 0.0, "max_value": 2.0}},
            ]
        )
    if isinstance(argtype, argtypes.Axis):
        # in range, the batch axis 0, and one past the end
        return st.integers(-(rank + 1), rank + 1)
    if isinstance(argtype, argtypes.Axes):
        # one axis, or a list of them (LayerNormalization over whole feature maps: [1, 2, 3]), now and then a repeat
        one = st.integers(-(rank + 1), rank + 1)
        return st.one_of(one, st.lists(one, min_size=1, max_size=rank + 1))
    if isinstance(argtype, argtypes.Number):
        return st.one_of(*([st.none()] if argtype.nullable else []), _small_float(), st.integers(-3, 3))
    if isinstance(argtype, argtypes.Shape):
        return st.lists(st.integers(1, 4), min_size=1, max_size=3)
    if isinstance(argtype, argtypes.Str):
        return st.text("abc_", min_size=1, max_size=5)
    raise NotImplementedError(f"no value strategy for {type(argtype).__name__} ({layer}.{arg})")


def _reshape_targets(shape: tuple):
    total = math.prod(shape)
    divisors = [d for d in range(1, total + 1) if total % d == 0]

    @st.composite
    def target(draw):
        first = draw(st.sampled_from(divisors))
        rest = total // first
        form = draw(st.sampled_from(["exact2", "exact1", "infer", "wrong"]))
        if form == "exact1":
            return [total]
        if form == "exact2":
            return [first, rest]
        if form == "infer":
            return draw(st.sampled_from([[first, -1], [-1, first], [first, 1, -1]]))
        return [first, rest + 1]

    return target()


# A layer type fits the current shape when the registry accepts its rank (None: any rank).
def _fits(layer: str, shape: tuple) -> bool:
    ranks = LAYERS[layer].input_ranks
    return ranks is None or len(shape) in ranks


@st.composite
def layer_entries(draw, layer: str, shape: tuple, index: int):
    entry = LAYERS[layer]
    args = {}
    for arg, spec_arg in entry.args.items():
        required = arg in entry.required
        if required or draw(st.integers(0, 3)) == 0:
            args[arg] = draw(arg_values(layer, arg, spec_arg.type, shape, index))
    if "padding" in args and args["padding"] == "causal" and draw(st.booleans()):
        args["padding"] = "same"  # keep causal rare: only Conv1D takes it
    spelled = draw(st.sampled_from([layer, layer.lower(), *entry.aliases]))
    if not args and draw(st.booleans()):
        return spelled  # the bare-name form: `- Flatten`
    return {spelled: args}


def _input_shapes(ranks):
    def shape_of(rank):
        top = {1: 16, 2: 16, 3: 10, 4: 6}[rank]
        spatial = st.lists(st.integers(1, top), min_size=rank - 1, max_size=rank - 1)
        return st.tuples(spatial, st.integers(1, 4)).map(lambda sc: [*sc[0], sc[1]])

    return st.sampled_from(sorted(ranks)).flatmap(shape_of)


def _to_plain(value):
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    return value


def _current_shape(input_shape, layers) -> tuple | None:
    try:
        spec = load_spec_text(yaml.safe_dump({"input_shape": input_shape, "layers": _to_plain(layers)}))
    except SpecError:
        return None
    return tuple(summarize(spec).layers[-1].output_shape)


@st.composite
def spec_dicts(draw, must_include: str | None = None):
    """A spec dict. Layer types are mostly picked to fit the current shape; 1 in 20 does not."""
    if must_include is not None:
        ranks = LAYERS[must_include].input_ranks or (1, 2, 3, 4)
    else:
        ranks = (1, 2, 3, 4) if draw(st.integers(0, 9)) == 0 else (2, 3, 4)
    input_shape = draw(_input_shapes(ranks))
    shape = tuple(input_shape)
    layers: list = []
    count = draw(st.integers(1, 4))
    for i in range(count):
        if i == 0 and must_include is not None:
            layer = must_include
        else:
            fitting = sorted(name for name in LAYERS if _fits(name, shape))
            misfit = draw(st.integers(0, 19)) == 0
            layer = draw(st.sampled_from(sorted(LAYERS) if misfit or not fitting else fitting))
        layers.append(draw(layer_entries(layer, shape, i)))
        shape = _current_shape(input_shape, layers)
        if shape is None:
            break  # this layer is refused; the spec as it stands is the test case
    spec = {"input_shape": input_shape, "layers": layers}
    if draw(st.booleans()):
        spec = {"name": "random spec", **spec}
    return _to_plain(spec)


def render(spec: dict, flow: bool) -> str:
    return yaml.safe_dump(spec, sort_keys=False, default_flow_style=None if flow else False)


# --- the comparison --------------------------------------------------------------------------------


def keras_layers(spec) -> list[dict] | Exception:
    """Per layer: output shape (no batch), params, trainable, non-trainable; or why Keras refused."""
    from cnnkit.run.build import build_model

    try:
        model = build_model(spec)
    except Exception as error:  # noqa: BLE001 - any refusal by Keras counts
        return error
    rows = []
    for layer in model.layers:
        shape = [int(d) for d in layer.output.shape[1:]]
        rows.append(
            {
                "output_shape": shape,
                "params": int(layer.count_params()),
                "trainable_params": sum(math.prod(w.shape) for w in layer.trainable_weights),
                "non_trainable_params": sum(math.prod(w.shape) for w in layer.non_trainable_weights),
            }
        )
    if any(d < 1 for row in rows for d in row["output_shape"]):
        return ValueError(f"Keras built a shape with an empty axis: {[r['output_shape'] for r in rows]}")
    return rows


def keras_refusal(spec_dict: dict) -> Exception | None:
    """Build the spec's layers directly from the dict, bypassing cnnkit's checks."""
    from types import SimpleNamespace

    from cnnkit.spec.layers import LAYERS as registry
    from cnnkit.spec.layers import lookup

    layers = []
    for index, item in enumerate(spec_dict["layers"]):
        name, args = (item, {}) if isinstance(item, str) else next(iter(item.items()))
        keras_class = lookup(name)
        if keras_class is None:
            return None
        normalized = {}
        for key, value in (args or {}).items():
            try:
                normalized[key] = registry[keras_class].args[key].type(key, value)
            except Exception:  # noqa: BLE001 - a bad value: fall back to what the user wrote
                normalized[key] = value
        layers.append(SimpleNamespace(index=index, type=keras_class, args=normalized))
    fake = SimpleNamespace(input_shape=tuple(spec_dict["input_shape"]), layers=layers, name="refusal_probe")
    result = keras_layers(fake)
    if isinstance(result, Exception):
        return result
    # Keras builds some layers symbolically on any rank (e.g. image augmentation on vectors);
    # a forward pass on zeros is the real test. TF cannot run channels_first on CPU: trust the build.
    if any(layer.args.get("data_format") == "channels_first" for layer in layers):
        return None
    import numpy as np

    from cnnkit.run.build import build_model

    try:
        build_model(fake)(np.zeros((2, *fake.input_shape), "float32"), training=True)
    except Exception as error:  # noqa: BLE001 - any refusal by Keras counts
        return error
    return None


_IMAGE_ONLY = re.compile(r"layers\[\d+\] (Random\w+|Resizing) expects input of rank 3 ")


def _stricter_on_purpose(error: SpecError) -> bool:
    """Refusals where Keras builds (and even runs) a model that mixes samples:
    * its image preprocessing layers build on any rank, and take an unbatched image too, so a
      batch of (steps, channels) even runs as one image, the batch axis read as its height;
    * a normalization over axis 0 (the batch axis) builds with no weights when center and
      scale are off, and normalizes across samples;
    * an orthogonal initializer for a vector (bias, beta, gamma) builds only while that vector
      is switched off (use_bias: false, center: false, ...)."""
    return (
        bool(_IMAGE_ONLY.search(error.message))
        or "is the batch axis" in error.message
        or "orthogonal needs a weight matrix" in error.message
    )


def assert_matches_keras(spec_dict: dict, text: str, *, in_hypothesis: bool = True) -> bool:
    """True when cnnkit accepted the spec (and matched Keras); False when both refuse it."""
    if in_hypothesis:
        note(text)
    try:
        spec = load_spec_text(text, "random.yaml")
    except SpecError as error:
        if _stricter_on_purpose(error):
            return False
        refusal = keras_refusal(spec_dict)
        assert refusal is not None, f"cnnkit refuses a spec that Keras builds:\n{text}\ncnnkit: {error}"
        return False
    summary = summarize(spec)
    rows = keras_layers(spec)
    assert not isinstance(rows, Exception), f"cnnkit accepts a spec that Keras refuses:\n{text}\nKeras: {rows!r}"
    assert len(rows) == len(summary.layers)
    for ours, theirs in zip(summary.layers, rows):
        where = f"layers[{ours.index}] {ours.type}"
        assert ours.output_shape == theirs["output_shape"], where
        assert ours.params == theirs["params"], where
        assert ours.trainable_params == theirs["trainable_params"], where
        assert ours.non_trainable_params == theirs["non_trainable_params"], where
    return True


_built = [0]


def _check(spec_dict: dict, flow: bool) -> bool:
    _built[0] += 1
    if _built[0] % 50 == 0:  # Keras keeps every layer name ever made; start afresh now and then
        from cnnkit.backend import keras

        keras().backend.clear_session()
    return assert_matches_keras(spec_dict, render(spec_dict, flow))


@pytest.mark.slow  # builds the Keras models
def test_random_specs_match_keras():
    """Random specs: each one matches Keras (the asserts in assert_matches_keras), and enough of them are
    accepted that the match is tested at all (a strategy that only drew refused specs would prove nothing)."""
    accepted = []

    @settings(max_examples=int(os.environ.get("CNNKIT_EXACTNESS_EXAMPLES", 150)), **SETTINGS)
    @given(spec=spec_dicts(), flow=st.booleans())
    def check(spec, flow):
        accepted.append(_check(spec, flow))
        event("accepted by cnnkit and Keras" if accepted[-1] else "refused by both")

    check()
    assert sum(accepted) >= len(accepted) / 10, f"only {sum(accepted)} of {len(accepted)} random specs accepted"


@pytest.mark.slow  # builds the Keras models
@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_every_registered_layer_is_generated_and_matches_keras(layer):
    """Loops over the registry: a new layer type is covered, or fails here if it cannot be drawn."""
    accepted = []

    @settings(max_examples=5, derandomize=True, database=None, **SETTINGS)
    @given(spec=spec_dicts(must_include=layer), flow=st.booleans())
    def check(spec, flow):
        if _check(spec, flow):
            accepted.append(spec)

    check()
    assert accepted, f"the strategy drew no spec with {layer} that cnnkit accepts"


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_strategy_covers_every_argument_type(layer):
    for arg, spec_arg in LAYERS[layer].args.items():
        arg_values(layer, arg, spec_arg.type, (8, 8, 3), 0)  # raises for an unknown ArgType


# --- configs/ ----------------------------------------------------------------------------------------


@pytest.mark.slow  # builds the Keras models
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_matches_keras(path):
    spec = load_spec(path)
    summary = summarize(spec)
    rows = keras_layers(spec)
    assert not isinstance(rows, Exception), rows
    for ours, theirs in zip(summary.layers, rows, strict=True):
        assert (ours.output_shape, ours.params, ours.trainable_params, ours.non_trainable_params) == (
            theirs["output_shape"],
            theirs["params"],
            theirs["trainable_params"],
            theirs["non_trainable_params"],
        ), f"{path.name} layers[{ours.index}] {ours.type}"


# --- the course notes' MNIST numbers ---------------------------------------------------------------

MNIST = Path(__file__).resolve().parent.parent / "configs" / "mnist.yaml"
MNIST_ROWS = [
    ("Conv2D", [26, 26, 32], 320),
    ("MaxPooling2D", [13, 13, 32], 0),
    ("Conv2D", [11, 11, 64], 18_496),
    ("MaxPooling2D", [5, 5, 64], 0),
    ("Flatten", [1600], 0),
    ("Dense", [64], 102_464),
    ("Dense", [10], 650),
]


def test_mnist_matches_the_notes():
    summary = summarize(load_spec(MNIST))
    assert [(r.type, r.output_shape, r.params) for r in summary.layers] == MNIST_ROWS
    assert summary.total_params == 121_930
    assert summary.trainable_params == 121_930


def test_mnist_macs():
    rows = summarize(load_spec(MNIST)).layers
    conv1, _, conv2, _, _, dense1, dense2 = rows
    assert conv1.macs == 26 * 26 * 32 * 3 * 3 * 1 == 194_688
    assert conv2.macs == 11 * 11 * 64 * 3 * 3 * 32
    assert dense1.macs == 1600 * 64
    assert dense2.macs == 64 * 10


def test_mnist_json_output():
    result = CliRunner().invoke(app, ["summary", str(MNIST), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {
        "name",
        "input_shape",
        "layers",
        "total_params",
        "trainable_params",
        "non_trainable_params",
        "total_macs",
    } <= set(data)
    assert data["name"] == "notes-mnist"
    assert data["input_shape"] == [28, 28, 1]
    assert (data["total_params"], data["trainable_params"], data["non_trainable_params"]) == (121_930, 121_930, 0)
    assert data["total_macs"] == sum(layer["macs"] for layer in data["layers"])
    for index, (layer, (kind, shape, params)) in enumerate(zip(data["layers"], MNIST_ROWS, strict=True)):
        assert {"index", "type", "output_shape", "params", "trainable_params", "macs", "receptive_field"} <= set(layer)
        assert (layer["index"], layer["type"], layer["output_shape"], layer["params"], layer["trainable_params"]) == (
            index,
            kind,
            shape,
            params,
            params,
        )
    assert data["layers"][0]["macs"] == 194_688
    assert [layer["receptive_field"] for layer in data["layers"]] == [3, 4, 8, 10, None, None, None]


# --- receptive field and normalisation cases an outside check found -------------------------------------------


def _rf_column(layers: list, input_shape=(8, 8, 1)) -> list:
    """Each layer's receptive field, after checking shapes and params against Keras."""
    spec_dict = {"input_shape": list(input_shape), "layers": layers}
    assert assert_matches_keras(spec_dict, render(spec_dict, flow=True), in_hypothesis=False)
    return [row.receptive_field for row in load_spec_text(render(spec_dict, flow=True)).summary.layers]


@pytest.mark.slow  # builds the Keras models
def test_receptive_field_after_upsampling_is_not_a_fractional_average():
    # Nearest upsampling copies each unit to f neighbours: a 3-wide window after it covers 2 or 3 input units
    # (depending on where it starts), so no single number is the receptive field.
    rf = _rf_column(
        [{"Conv2D": {"filters": 2, "kernel_size": 3}}, "UpSampling2D", {"Conv2D": {"filters": 2, "kernel_size": 3}}]
    )
    assert rf == [3, "n/a (after upsampling)", "n/a (after upsampling)"]


@pytest.mark.slow  # builds the Keras models
def test_receptive_field_after_a_reshape_that_merges_axes_is_not_restarted():
    rf = _rf_column(
        [
            {"Conv2D": {"filters": 2, "kernel_size": 3}},
            {"Reshape": {"target_shape": [36, 2]}},
            {"Conv1D": {"filters": 2, "kernel_size": 3}},
            "Flatten",
        ]
    )
    assert rf == [3, "n/a (after reshape)", "n/a (after reshape)", None]
    # a Reshape that changes nothing keeps the field
    assert _rf_column([{"Conv2D": {"filters": 2, "kernel_size": 3}}, {"Reshape": {"target_shape": [6, 6, 2]}}]) == [
        3,
        3,
    ]


@pytest.mark.slow  # builds the Keras models
def test_receptive_field_after_keepdims_global_pooling_is_the_whole_map():
    rf = _rf_column(
        [
            {"Conv2D": {"filters": 2, "kernel_size": 3}},
            {"GlobalAveragePooling2D": {"keepdims": True}},
            {"Conv2D": {"filters": 2, "kernel_size": 1}},
            "Flatten",
        ]
    )
    assert rf == [3, 8, 8, None]  # 3 + (6 − 1) · 1: one unit sees all 8 input pixels per axis


@pytest.mark.slow  # builds the Keras models
def test_layer_normalization_over_several_axes_matches_keras():
    spec_dict = {
        "input_shape": [6, 5, 3],
        "layers": [{"LayerNormalization": {"axis": [1, 2, 3]}}, {"LayerNormalization": {"axis": [-1, 1]}}],
    }
    assert assert_matches_keras(spec_dict, render(spec_dict, flow=True), in_hypothesis=False)
    rows = load_spec_text(render(spec_dict, flow=True)).summary.layers
    assert [r.params for r in rows] == [2 * 6 * 5 * 3, 2 * 6 * 3]
    # an axis named twice is refused (Keras fails on it when data flows)
    with pytest.raises(SpecError, match=r"names the same axis twice"):
        load_spec_text("input_shape: [6, 5, 3]\nlayers: [{LayerNormalization: {axis: [3, -1]}}]\n")

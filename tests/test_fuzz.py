"""Hostile configs never crash: the only outcomes of reading a spec are a Spec or a SpecError.

Hypothesis starts from the valid files in configs/ and damages them: values of random types
(huge numbers, NaN/inf, negatives, unicode, empty lists, deep nesting), unknown keys, deletions,
duplicated lines, YAML syntax damage (brackets, tabs, colons, anchors, tags), invalid UTF-8 and
random `--set` overrides. Each case must finish within CASE_SECONDS, and an error must be one
line that names the file. A smaller sample goes through the real CLI (`cnnkit validate`).

CNNKIT_FUZZ_EXAMPLES sets the number of cases (default 2000; `make fuzz` runs 20000).
No TensorFlow is imported here: reading a spec never needs it.
"""

from __future__ import annotations

import copy
import math
import os
import signal
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cnnkit.cli import app
from cnnkit.errors import SpecError
from cnnkit.spec.layers import LAYERS, all_names
from cnnkit.spec.parse import TOP_LEVEL_KEYS, Spec, load_spec, load_spec_text

EXAMPLES = int(os.environ.get("CNNKIT_FUZZ_EXAMPLES", "2000"))
CLI_EXAMPLES = 50
CASE_SECONDS = 2.0
HANG_SECONDS = 30.0
CONFIGS = sorted(Path(__file__).resolve().parent.parent.joinpath("configs").glob("*.yaml"))
TEXTS = [path.read_text(encoding="utf-8") for path in CONFIGS]
DOCUMENTS = [yaml.safe_load(text) for text in TEXTS]
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml: the pure-Python dumper would dominate
FUZZ_SETTINGS = dict(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)

# --- values and keys a hostile (or just careless) user might write ------------------------------

ARG_NAMES = sorted({arg for entry in LAYERS.values() for arg in entry.args})
NAMES = sorted(
    {
        *all_names(),
        *ARG_NAMES,
        *TOP_LEVEL_KEYS,
        "epochs",
        "optimizer",
        "loss",
        "metrics",
        "dataset",
        "learning_rate",
        "batch_size",
        "validation_split",
        "filtres",
        "conv2d",
    }
)
SPECIAL_NUMBERS = [
    0,
    -1,
    -0.0,
    1,
    2,
    10**30,
    -(10**30),
    2**63,
    2**64 + 1,
    1e308,
    1e-320,
    0.5,
    math.nan,
    math.inf,
    -math.inf,
]
SPECIAL_TEXT = [
    "",
    " ",
    "relu",
    "same",
    "valid",
    "causal",
    "channels_first",
    "Conv2D",
    "𝓒onv2D",
    "ÿ",
    "\u202e",
    "nan",
    ".inf",
    "1e-3",
    "0x10",
    "~",
    "null",
    "yes",
    "no",
    "a\nb",
    "tab\there",
    "日本語",
    "💥",
    "\x7f",
    "'",
    '"',
    "{",
    "[1, 2",
    "- x",
    "&a",
    "*a",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(SPECIAL_NUMBERS),
    st.integers(-(10**30), 10**30),
    st.integers(-3, 40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(SPECIAL_TEXT),
    st.sampled_from(NAMES),
    st.text(max_size=12),
)
keys = st.one_of(
    st.sampled_from(NAMES), st.sampled_from(SPECIAL_TEXT), st.text(max_size=10), st.integers(-2, 5), st.booleans()
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)),
    max_leaves=12,
)
layer_entries = st.one_of(
    st.sampled_from(sorted(all_names())),
    st.dictionaries(
        st.sampled_from(sorted(all_names())),
        st.one_of(st.none(), st.dictionaries(st.sampled_from(ARG_NAMES), values, max_size=4), values),
        min_size=1,
        max_size=2,
    ),
)


def _paths(node, path=()):
    """Every path into the document (the root included)."""
    yield path
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _paths(child, path + (key,))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from _paths(child, path + (i,))


def _get(node, path):
    for part in path:
        node = node[part]
    return node


@st.composite
def mutated_documents(draw):
    """A config's data with 1-4 structural mutations."""
    data = copy.deepcopy(draw(st.sampled_from(DOCUMENTS)))
    for _ in range(draw(st.integers(1, 4))):
        paths = list(_paths(data))
        path = draw(st.sampled_from(paths))
        kind = draw(st.sampled_from(["replace", "delete", "add_key", "add_layer", "wrap", "nest", "empty"]))
        if not path and kind in ("replace", "delete", "wrap", "nest", "empty"):
            data = draw(values) if kind == "replace" else data
            continue
        parent, last = (_get(data, path[:-1]), path[-1]) if path else (None, None)
        node = _get(data, path)
        if kind == "replace":
            parent[last] = draw(values)
        elif kind == "delete":
            del parent[last]
        elif kind == "add_key" and isinstance(node, dict):
            node[draw(keys)] = draw(values)
        elif kind == "add_layer" and isinstance(data, dict) and isinstance(data.get("layers"), list):
            layers = data["layers"]
            layers.insert(draw(st.integers(0, len(layers))), draw(layer_entries))
        elif kind == "wrap":
            parent[last] = draw(st.sampled_from([[node], {draw(keys): node}]))
        elif kind == "nest":
            for _ in range(draw(st.integers(1, 70))):
                node = [node] if draw(st.booleans()) else {"x": node}
            parent[last] = node
        elif kind == "empty":
            parent[last] = draw(st.sampled_from([[], {}, None, ""]))
    return data


TOKENS = [
    "[",
    "]",
    "{",
    "}",
    ":",
    ": ",
    "\t",
    "- ",
    "-",
    ",",
    "&a ",
    "*a",
    "*b",
    "<<: *a\n",
    "!!python/object/apply:os.system ['echo hi']",
    "!!binary aGk=",
    "!!timestamp ",
    "!!set ",
    "!!omap ",
    "!foo ",
    "%YAML 1.1\n---\n",
    "---\n",
    "...\n",
    "\x00",
    "\ufeff",
    "'",
    '"',
    "#",
    "|",
    ">",
    "? ",
    "@",
    "`",
    "\r",
    "\u2028",
    "\x85",
    "é",
    "🙂",
    "2001-01-01",
    "0b101",
    "0o17",
    "1_000",
    "=",
    "!",
    "\n",
    "\n  ",
    "    ",
    "1e400",
    ".nan",
    "-.inf",
    "10000000000000000000000000000000",
]


@st.composite
def damaged_texts(draw, source):
    """YAML text with 1-3 edits at the character or line level."""
    text = draw(source)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["insert", "delete", "dup_line", "swap_lines", "truncate", "replace"]))
        at = draw(st.integers(0, len(text)))
        lines = text.splitlines(keepends=True)
        if kind == "insert":
            token = draw(st.one_of(st.sampled_from(TOKENS), st.text(max_size=4)))
            text = text[:at] + token + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 20)) :]
        elif kind == "dup_line" and lines:
            i = draw(st.integers(0, len(lines) - 1))
            text = "".join(lines[: i + 1] + [lines[i]] + lines[i + 1 :])  # often a duplicate key
        elif kind == "swap_lines" and len(lines) > 1:
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
            text = "".join(lines)
        elif kind == "truncate":
            text = text[:at]
        elif kind == "replace":
            old = draw(st.sampled_from(["32", "3", "2", "relu", "same", "[", ":", "adam", "Dense", "Flatten"]))
            text = text.replace(old, draw(st.sampled_from(TOKENS + ["-1", "0", "1e-3", "nan"])), 1)
    return text


def _dump(data, flow: bool, unicode: bool) -> str:
    return yaml.dump(
        data, Dumper=DUMPER, sort_keys=False, allow_unicode=unicode, default_flow_style=None if flow else False
    )


rendered_documents = st.builds(_dump, mutated_documents(), st.booleans(), st.booleans())
config_texts = st.sampled_from(TEXTS)
hostile_texts = st.one_of(
    rendered_documents,
    damaged_texts(config_texts),
    damaged_texts(rendered_documents),
)
overrides = st.lists(
    st.builds(
        lambda k, v: f"{k}={v}",
        st.lists(
            st.one_of(st.sampled_from(NAMES), st.integers(-1, 9).map(str), st.text(max_size=4)), min_size=1, max_size=4
        ).map(".".join),
        st.one_of(
            st.sampled_from(TOKENS + SPECIAL_TEXT),
            st.integers(-5, 10**20).map(str),
            values.map(lambda v: yaml.dump(v, Dumper=DUMPER, default_flow_style=True).strip()),
        ),
    )
    | st.sampled_from(
        ["", "=", "noequals", "=3", ".=1", "layers.99.Conv2D.filters=3", "train=[1", "layers=[]", "input_shape=[0]"]
    ),
    max_size=3,
)


# --- the checks -------------------------------------------------------------------------------


class CaseTooSlow(Exception):
    pass


@contextmanager
def time_limit(seconds: float):
    """A case may use `seconds` of CPU (immune to a busy machine); a hang is interrupted after
    HANG_SECONDS of wall time, so it fails the test instead of stalling the suite."""

    def expire(signum, frame):
        raise CaseTooSlow(f"case still running after {HANG_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
    start = time.process_time()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    used = time.process_time() - start
    assert used < seconds, f"case used {used:.2f} s of CPU (limit {seconds} s)"


def check_outcome(read, name: str, tally: Counter):
    """`read()` must return a Spec or raise a one-line SpecError that names `name`."""
    try:
        with time_limit(CASE_SECONDS):
            spec = read()
    except SpecError as error:
        message = str(error)
        assert len(message.splitlines()) == 1 and message.strip() == message, repr(message)
        assert message.startswith((name, "--set")), message
        tally["SpecError"] += 1
        return
    assert isinstance(spec, Spec)
    spec.resolved_yaml()  # the run folder stores it: it must serialize
    tally["valid"] += 1


@pytest.mark.slow  # 2000 hypothesis cases: `make test` and `make fuzz` run it
def test_fuzz_load_spec_text(report):
    tally: Counter = Counter()

    @settings(max_examples=EXAMPLES, **FUZZ_SETTINGS)
    @given(text=hostile_texts)
    def run(text):
        tally["cases"] += 1
        check_outcome(lambda: load_spec_text(text, "fuzz.yaml"), "fuzz.yaml", tally)

    started = time.perf_counter()
    run()
    report.append(
        f"fuzz load_spec_text: {tally['cases']} cases ({tally['valid']} valid, "
        f"{tally['SpecError']} SpecError) in {time.perf_counter() - started:.1f} s"
    )
    print(report[-1])
    assert tally["SpecError"] and tally["valid"]  # both outcomes are reached


@pytest.mark.slow  # 500 hypothesis cases: `make test` and `make fuzz` run it
def test_fuzz_load_spec_files_and_overrides(tmp_path, report):
    """Through a real file: raw bytes (invalid UTF-8, BOMs) and random --set overrides."""
    tally: Counter = Counter()
    path = tmp_path / "fuzz.yaml"
    garbage = st.binary(max_size=6).filter(lambda b: b != b"")

    @settings(max_examples=max(EXAMPLES // 4, 50), **FUZZ_SETTINGS)
    @given(text=hostile_texts, raw=st.one_of(st.none(), garbage), at=st.integers(0, 10**6), sets=overrides)
    def run(text, raw, at, sets):
        tally["cases"] += 1
        data = text.encode("utf-8")
        if raw is not None:
            at %= len(data) + 1
            data = data[:at] + raw + data[at:]
        path.write_bytes(data)
        check_outcome(lambda: load_spec(path, sets), str(path), tally)

    started = time.perf_counter()
    run()
    report.append(
        f"fuzz load_spec (files, --set): {tally['cases']} cases ({tally['valid']} valid, "
        f"{tally['SpecError']} SpecError) in {time.perf_counter() - started:.1f} s"
    )
    print(report[-1])
    assert tally["SpecError"] and tally["valid"]


def test_fuzz_cli_validate(tmp_path, report):
    """The real CLI: exit 0 with `ok`, or exit 2 with exactly one `Error:` line; never a traceback."""
    runner = CliRunner()
    tally: Counter = Counter()
    path = tmp_path / "fuzz.yaml"

    @settings(max_examples=CLI_EXAMPLES, **FUZZ_SETTINGS)
    @given(text=hostile_texts)
    def run(text):
        tally["cases"] += 1
        path.write_text(text, encoding="utf-8")
        with time_limit(CASE_SECONDS):
            result = runner.invoke(app, ["validate", str(path)])
        assert "Traceback" not in result.output and "Traceback" not in result.stderr
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
        assert result.exit_code in (0, 2), (result.exit_code, result.output)
        if result.exit_code == 0:
            assert result.stdout == f"ok  {path}\n"
            assert result.stderr == ""
            tally["ok"] += 1
        else:
            assert result.stdout == ""
            lines = result.stderr.splitlines()
            assert len(lines) == 1 and lines[0].startswith(f"Error: {path}"), result.stderr
            tally["Error"] += 1

    run()
    report.append(f"fuzz cnnkit validate: {tally['cases']} cases ({tally['ok']} ok, {tally['Error']} Error)")
    print(report[-1])


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_fuzz_starts_from_valid_configs(path):
    """The seeds are valid: damage, not the starting point, is what makes a case hostile."""
    assert isinstance(load_spec(path), Spec)

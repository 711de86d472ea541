"""Argument types: each one validates a YAML value and normalizes it once, at the edge.

``IntTuple(2)("kernel_size", 3)`` returns ``(3, 3)``; everything after parsing sees
only the normalized form. A bad value raises ``ArgError`` whose message says what was
expected and what came in; the spec parser adds the file, line and field path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from cnnkit.text import did_you_mean


class ArgError(ValueError):
    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message, self.hint = message, hint


def _received(name: str, value: Any) -> str:
    return f"Received: {name}={value!r}."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class ArgType:
    """Base: ``__call__(name, value) -> normalized value``; ``schema()`` -> JSON Schema;
    ``to_keras(keras, value)`` -> what the Keras layer's constructor takes (run/build.py)."""

    # A null value is passed to Keras as None (where None means something, e.g. activation: null = linear);
    # otherwise the argument is left out and Keras uses its own default.
    none_to_keras = False

    def __call__(self, name: str, value: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def schema(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_keras(self, keras, value: Any) -> Any:
        return value


@dataclass(frozen=True)
class Int(ArgType):
    minimum: int = 1

    def __call__(self, name, value):
        if not _is_int(value) or value < self.minimum:
            kind = {1: "a positive integer", 0: "a non-negative integer"}.get(
                self.minimum, f"an integer >= {self.minimum}"
            )
            raise ArgError(f"must be {kind}. {_received(name, value)}")
        return value

    def schema(self):
        return {"type": "integer", "minimum": self.minimum}


@dataclass(frozen=True)
class IntTuple(ArgType):
    """An int or a list of ``rank`` ints, normalized to a tuple of ``rank`` ints."""

    rank: int
    minimum: int = 1

    def __call__(self, name, value):
        items = [value] * self.rank if _is_int(value) else value
        if (
            not isinstance(items, (list, tuple))
            or len(items) != self.rank
            or not all(_is_int(v) and v >= self.minimum for v in items)
        ):
            kind = "positive" if self.minimum == 1 else "non-negative"
            shape = "an integer" if self.rank == 1 else f"an integer or a list of {self.rank} integers"
            raise ArgError(f"must be {shape}, each {kind}. {_received(name, value)}")
        return tuple(items)

    def to_keras(self, keras, value):
        # 1-D layers take a plain int (UpSampling1D refuses a one-item tuple)
        return value[0] if self.rank == 1 and isinstance(value, tuple) else value

    def schema(self):
        item = {"type": "integer", "minimum": self.minimum}
        return {"oneOf": [item, {"type": "array", "items": item, "minItems": self.rank, "maxItems": self.rank}]}


@dataclass(frozen=True)
class Padding(ArgType):
    """ZeroPadding/Cropping amounts: int, per-axis ints, or per-axis (before, after) pairs."""

    rank: int

    def __call__(self, name, value):
        def pair(v):
            if _is_int(v) and v >= 0:
                return (v, v)
            if isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_int(x) and x >= 0 for x in v):
                return tuple(v)
            raise ArgError(
                f"must be a non-negative integer, a list of {self.rank} of them, or a list of "
                f"{self.rank} [before, after] pairs. {_received(name, value)}"
            )

        if self.rank == 1:
            # [n] and [[b, a]] are the "list of 1" forms; [b, a] itself is the one axis' pair
            one = isinstance(value, (list, tuple)) and len(value) == 1
            return (pair(value[0] if one else value),)
        if _is_int(value):
            return (pair(value),) * self.rank
        if isinstance(value, (list, tuple)) and len(value) == self.rank:
            return tuple(pair(v) for v in value)
        raise ArgError(
            f"must be a non-negative integer, a list of {self.rank} of them, or a list of "
            f"{self.rank} [before, after] pairs. {_received(name, value)}"
        )

    def to_keras(self, keras, value):
        return value[0] if self.rank == 1 else value  # 1-D layers take a single (before, after) pair

    def schema(self):
        nn = {"type": "integer", "minimum": 0}
        pair = {"type": "array", "items": nn, "minItems": 2, "maxItems": 2}
        return {"oneOf": [nn, pair, {"type": "array", "items": {"oneOf": [nn, pair]}}]}


@dataclass(frozen=True)
class Float(ArgType):
    minimum: float | None = None
    maximum: float | None = None
    exclusive_max: bool = False
    exclusive_min: bool = False

    def __call__(self, name, value):
        if isinstance(value, str):
            value = _number_from_string(name, value)
        ok = _is_number(value) and math.isfinite(value)
        if ok and self.minimum is not None:
            ok = value > self.minimum if self.exclusive_min else value >= self.minimum
        if ok and self.maximum is not None:
            ok = value < self.maximum if self.exclusive_max else value <= self.maximum
        if not ok:
            raise ArgError(f"must be {self.describe()}. {_received(name, value)}")
        return float(value)

    def describe(self) -> str:
        lo = "" if self.minimum is None else ("> " if self.exclusive_min else ">= ") + f"{self.minimum:g}"
        hi = "" if self.maximum is None else ("< " if self.exclusive_max else "<= ") + f"{self.maximum:g}"
        bounds = " and ".join(b for b in (lo, hi) if b)
        return "a finite number" + (f" {bounds}" if bounds else "")

    def schema(self):
        out: dict = {"type": "number"}
        if self.minimum is not None:
            out["exclusiveMinimum" if self.exclusive_min else "minimum"] = self.minimum
        if self.maximum is not None:
            out["exclusiveMaximum" if self.exclusive_max else "maximum"] = self.maximum
        return out


def _number_from_string(name: str, value: str):
    """YAML 1.1 reads '1.e-3'-style typos as text; take the number the user clearly meant."""
    try:
        number = float(value)
    except ValueError:
        raise ArgError(f"must be a number. {_received(name, value)}") from None
    return number


@dataclass(frozen=True)
class FloatOrPair(ArgType):
    """Augmentation factors: a number, or a [low, high] pair (Keras' own forms)."""

    minimum: float | None = None
    maximum: float | None = None
    exclusive_min: bool = False  # RandomZoom: a factor of -1 would zoom to nothing

    def __call__(self, name, value):
        single = Float(self.minimum, self.maximum, exclusive_min=self.exclusive_min)
        if isinstance(value, (list, tuple)):
            if len(value) != 2:
                raise ArgError(f"must be a number or a [low, high] pair. {_received(name, value)}")
            try:
                low, high = (single(name, v) for v in value)
            except ArgError:
                raise ArgError(
                    f"must be a [low, high] pair, each {single.describe()}. {_received(name, value)}"
                ) from None
            if low > high:
                raise ArgError(f"low must not exceed high. {_received(name, value)}")
            return (low, high)
        return single(name, value)

    def schema(self):
        number = Float(self.minimum, self.maximum, exclusive_min=self.exclusive_min).schema()
        return {"oneOf": [number, {"type": "array", "items": number, "minItems": 2, "maxItems": 2}]}


@dataclass(frozen=True)
class Bool(ArgType):
    def __call__(self, name, value):
        if not isinstance(value, bool):
            raise ArgError(f"must be true or false. {_received(name, value)}")
        return value

    def schema(self):
        return {"type": "boolean"}


@dataclass(frozen=True)
class Enum(ArgType):
    choices: tuple
    nullable: bool = False
    case_insensitive: bool = True

    def __call__(self, name, value):
        if value is None and self.nullable:
            return None
        if isinstance(value, str):
            for choice in self.choices:
                if value == choice or (self.case_insensitive and value.lower() == choice.lower()):
                    return choice
        valid = ", ".join(self.choices)
        raise ArgError(
            f"must be one of: {valid}. {_received(name, value)}",
            did_you_mean(value, self.choices) if isinstance(value, str) else None,
        )

    def schema(self):
        return {"enum": list(self.choices) + ([None] if self.nullable else [])}


@dataclass(frozen=True)
class Str(ArgType):
    def __call__(self, name, value):
        if not isinstance(value, str) or not value:
            raise ArgError(f"must be a non-empty string. {_received(name, value)}")
        return value

    def schema(self):
        return {"type": "string", "minLength": 1}


@dataclass(frozen=True)
class Axis(ArgType):
    """An axis index; negative counts from the end (Keras counts the batch axis as 0)."""

    def __call__(self, name, value):
        if not _is_int(value):
            raise ArgError(f"must be an integer axis such as -1 or 1. {_received(name, value)}")
        return value

    def schema(self):
        return {"type": "integer"}


@dataclass(frozen=True)
class Axes(ArgType):
    """One axis or a list of distinct axes (LayerNormalization: `axis: [1, 2, 3]`); kept as written."""

    def __call__(self, name, value):
        if isinstance(value, list) and value and all(_is_int(v) for v in value) and len(set(value)) == len(value):
            return tuple(value)
        if _is_int(value):
            return value
        raise ArgError(f"must be an integer axis such as -1, or a list of distinct axes. {_received(name, value)}")

    def to_keras(self, keras, value):
        return list(value) if isinstance(value, tuple) else value

    def schema(self):
        return {"oneOf": [{"type": "integer"}, {"type": "array", "items": {"type": "integer"}, "minItems": 1}]}


@dataclass(frozen=True)
class OptionalInt(ArgType):
    """An int, or null (Keras' "unset", e.g. a seed)."""

    minimum: int = 0

    def __call__(self, name, value):
        if value is None:
            return None
        return Int(self.minimum)(name, value)

    def schema(self):
        return {"oneOf": [{"type": "null"}, Int(self.minimum).schema()]}


@dataclass(frozen=True)
class Shape(ArgType):
    """A list of positive ints (``-1`` allowed once when ``allow_infer``)."""

    allow_infer: bool = False

    def __call__(self, name, value):
        ok = (
            isinstance(value, (list, tuple))
            and len(value) > 0
            and all(_is_int(v) and (v > 0 or (self.allow_infer and v == -1)) for v in value)
        )
        if ok and list(value).count(-1) > 1:
            ok = False
        if not ok:
            extra = " (one -1 allowed to infer a size)" if self.allow_infer else ""
            raise ArgError(f"must be a list of positive integers{extra}. {_received(name, value)}")
        return tuple(value)

    def schema(self):
        return {"type": "array", "items": {"type": "integer"}, "minItems": 1}


@dataclass(frozen=True)
class Number(ArgType):
    """A finite number (int or float), kept as written; e.g. ReLU.max_value, Rescaling.offset."""

    nullable: bool = False
    minimum: float | None = None

    @property
    def none_to_keras(self):  # ReLU(max_value=None): no upper bound
        return self.nullable

    def __call__(self, name, value):
        if value is None and self.nullable:
            return None
        if isinstance(value, str):
            value = _number_from_string(name, value)
        if not _is_number(value) or not math.isfinite(value) or (self.minimum is not None and value < self.minimum):
            bound = "" if self.minimum is None else f" >= {self.minimum:g}"
            raise ArgError(f"must be a finite number{bound}. {_received(name, value)}")
        return value

    def schema(self):
        out: dict = {"type": ["number", "null"]} if self.nullable else {"type": "number"}
        if self.minimum is not None:
            out["minimum"] = self.minimum
        return out


# --- Keras names: activations, initializers, regularizers, constraints -------------------------

ACTIVATIONS = (
    "linear",
    "relu",
    "relu6",
    "leaky_relu",
    "elu",
    "selu",
    "celu",
    "gelu",
    "silu",
    "swish",
    "mish",
    "sigmoid",
    "hard_sigmoid",
    "log_sigmoid",
    "tanh",
    "hard_tanh",
    "softmax",
    "log_softmax",
    "softplus",
    "softsign",
    "exponential",
    "hard_silu",
    "hard_swish",
)
INITIALIZERS = (
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "lecun_uniform",
    "lecun_normal",
    "zeros",
    "ones",
    "random_uniform",
    "random_normal",
    "truncated_normal",
    "orthogonal",
    "variance_scaling",
)
REGULARIZERS = ("l1", "l2", "l1_l2")
CONSTRAINTS = {  # name -> Keras class and the arguments it takes
    "max_norm": ("MaxNorm", ("max_value", "axis")),
    "min_max_norm": ("MinMaxNorm", ("min_value", "max_value", "rate", "axis")),
    "non_neg": ("NonNeg", ()),
    "unit_norm": ("UnitNorm", ("axis",)),
}


@dataclass(frozen=True)
class Activation(ArgType):
    none_to_keras = True  # activation: null is Keras' linear

    def __call__(self, name, value):
        if value is None:
            return None
        return Enum(ACTIVATIONS)(name, value)

    def schema(self):
        return {"enum": list(ACTIVATIONS) + [None]}


@dataclass(frozen=True)
class Initializer(ArgType):
    # Bias, beta and gamma are vectors; Keras' orthogonal initializer needs a matrix.
    vector: bool = False

    def __call__(self, name, value):
        value = Enum(INITIALIZERS)(name, value)
        if self.vector and value == "orthogonal":
            raise ArgError(
                f"orthogonal needs a weight matrix, but {name} initializes a vector. {_received(name, value)}",
                "use zeros, ones or random_normal",
            )
        return value

    def schema(self):
        return {"enum": [i for i in INITIALIZERS if not (self.vector and i == "orthogonal")]}


@dataclass(frozen=True)
class Regularizer(ArgType):
    """``l2``, ``{l2: 0.001}``, ``{l1: 0.01, l2: 0.01}``; normalized to {"l1": x, "l2": y}."""

    def __call__(self, name, value):
        if value is None:
            return None
        default = 0.01  # Keras' own default factor for the string forms
        if isinstance(value, str):
            kind = Enum(REGULARIZERS)(name, value)
            return {"l1": default if "l1" in kind else 0.0, "l2": default if "l2" in kind else 0.0}
        if isinstance(value, dict) and value and set(value) <= {"l1", "l2"}:
            return {k: Float(0.0)(f"{name}.{k}", value.get(k, 0.0)) for k in ("l1", "l2")}
        raise ArgError(f"must be l1, l2, l1_l2, or a mapping like {{l2: 0.001}}. {_received(name, value)}")

    def to_keras(self, keras, value):
        return keras.regularizers.L1L2(l1=value["l1"], l2=value["l2"])

    def schema(self):
        return {
            "oneOf": [
                {"enum": list(REGULARIZERS) + [None]},
                {
                    "type": "object",
                    "properties": {"l1": {"type": "number", "minimum": 0}, "l2": {"type": "number", "minimum": 0}},
                    "additionalProperties": False,
                    "minProperties": 1,
                },
            ]
        }


@dataclass(frozen=True)
class Constraint(ArgType):
    """``non_neg``, ``max_norm``, or ``{max_norm: {max_value: 3}}`` / ``{max_norm: 3}``."""

    def __call__(self, name, value):
        if value is None:
            return None
        if isinstance(value, str):
            return {"name": Enum(tuple(CONSTRAINTS))(name, value), "args": {}}
        if isinstance(value, dict) and len(value) == 1:
            ((kind, args),) = value.items()
            kind = Enum(tuple(CONSTRAINTS))(name, kind)
            allowed = CONSTRAINTS[kind][1]
            if _is_number(args) and allowed:
                args = {allowed[0]: args}
            if not isinstance(args, dict):
                raise ArgError(f"arguments of {kind} must be a mapping. {_received(name, value)}")
            for key, arg in args.items():
                if key not in allowed:
                    raise ArgError(f"{kind} takes {', '.join(allowed) or 'no arguments'}. {_received(name, value)}")
                Number()(f"{name}.{key}", arg)
            return {"name": kind, "args": dict(args)}
        raise ArgError(
            f"must be one of {', '.join(CONSTRAINTS)}, or a mapping like {{max_norm: 3}}. {_received(name, value)}"
        )

    def to_keras(self, keras, value):
        return getattr(keras.constraints, CONSTRAINTS[value["name"]][0])(**value["args"])

    def schema(self):
        return {"oneOf": [{"enum": list(CONSTRAINTS) + [None]}, {"type": "object", "maxProperties": 1}]}

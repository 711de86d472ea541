"""train.class_weight and train.tensorboard: checked here, applied by cnnkit.run.class_weights / run.tensorboard.

`check` is parse.py's checker: `check.fail(path, message, hint)` raises the SpecError with file, line and field.
"""

from __future__ import annotations

import math

BALANCED = "balanced"
TENSORBOARD_KEYS = ("graph", "histograms")


def class_weight(check, path: tuple, value):
    """None, "balanced", or {class id: positive weight}; the ids are checked against the data when it is loaded."""
    if value is None or value == BALANCED:
        return value
    if not isinstance(value, dict) or not value:
        check.fail(
            path,
            f"must be 'balanced' or a mapping of class id to weight such as {{0: 1.0, 3: 4.0}}. Received: {value!r}.",
        )
    weights = {}
    for key, weight in value.items():
        if isinstance(key, bool) or not isinstance(key, int) or key < 0:
            check.fail(path + (key,), f"class ids are integers from 0 on. Received: {key!r}.")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
            check.fail(path + (key,), f"a class weight must be a positive number. Received: {key}: {weight!r}.")
        weights[key] = float(weight)
    return dict(sorted(weights.items()))


def tensorboard(check, path: tuple, value):
    """true (the defaults), false (no event files), or {graph: bool, histograms: bool}."""
    from cnnkit.spec.defaults import TRAIN_DEFAULTS

    if value is True or value is None:
        return dict(TRAIN_DEFAULTS["tensorboard"])
    if value is False:
        return False
    given = check.mapping(path, value, TENSORBOARD_KEYS, "tensorboard settings")
    out = dict(TRAIN_DEFAULTS["tensorboard"])
    for key, flag in given.items():
        if not isinstance(flag, bool):
            check.fail(path + (key,), f"must be true or false. Received: {flag!r}.")
        out[key] = flag
    return out

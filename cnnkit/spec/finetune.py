"""train.fine_tune: the freeze-then-unfreeze schedule, checked here (no TensorFlow); cnnkit.run.finetune applies it.

    train:
      fine_tune: {unfreeze_at_epoch: 4, learning_rate: 1.0e-4, layers: all | last_2}

The frozen parts of a spec are its layers with `trainable: false`: FromRun (frozen unless told otherwise), a
frozen Residual block, or any layer. At the start of epoch `unfreeze_at_epoch` (counted from 1, as the progress
display does) the last K of their layers (`last_K`; a frozen block counts its own layers) or all of them become
trainable, and training goes on with a fresh optimizer at `learning_rate` (default: the learning rate reached
at that moment). BatchNormalization layers stay frozen, so they keep running in inference mode with their
learned statistics: updating them on a small new dataset is what wrecks fine-tuning (keras#4762, #6570).
"""

from __future__ import annotations

import math
import re

KEYS = ("unfreeze_at_epoch", "learning_rate", "layers")
_LAST = re.compile(r"last_([1-9][0-9]*)")


def parse(check, path: tuple, value, epochs: int) -> dict:
    given = check.mapping(path, value, KEYS, "fine_tune settings")
    if "unfreeze_at_epoch" not in given:
        check.fail(path, "fine_tune needs `unfreeze_at_epoch`: the epoch (from 1) at whose start layers unfreeze")
    at = given["unfreeze_at_epoch"]
    if isinstance(at, bool) or not isinstance(at, int) or not 2 <= at <= epochs:
        check.fail(
            path + ("unfreeze_at_epoch",),
            f"must be an epoch from 2 to train.epochs ({epochs}). Received: unfreeze_at_epoch={at!r}.",
            "epoch 1 trains the new layers on top of the frozen ones first",
        )
    lr = given.get("learning_rate")
    if isinstance(lr, str):
        try:
            lr = float(lr)
        except ValueError:
            pass
    if lr is not None and (
        isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0
    ):
        check.fail(path + ("learning_rate",), f"must be a positive number. Received: learning_rate={lr!r}.")
    layers = given.get("layers", "all")
    match = _LAST.fullmatch(str(layers))
    if layers != "all" and not match:
        check.fail(path + ("layers",), f"must be all or last_K (e.g. last_2). Received: layers={layers!r}.")
    return {
        "unfreeze_at_epoch": at,
        "learning_rate": None if lr is None else float(lr),
        "last": int(match.group(1)) if match else None,
    }


def frozen_units(layers) -> list[tuple[int, int | None]]:
    """The frozen parts' layers, in order: (top-level index, index inside the block or None)."""
    units = []
    for i, layer in enumerate(layers):
        if layer.full.get("trainable") is not False:
            continue
        inner = getattr(layer, "layers", None)
        units += [(i, j) for j in range(len(inner))] if inner else [(i, None)]
    return units


def check_frozen(check, layers, fine_tune: dict | None) -> None:
    if not fine_tune:
        return
    units = frozen_units(layers)
    if not units:
        check.fail(
            ("train", "fine_tune"),
            "nothing to unfreeze: no layer of the spec is frozen",
            "FromRun is frozen by default; freeze others with trainable: false",
        )
    if fine_tune["last"] is not None and fine_tune["last"] > len(units):
        check.fail(
            ("train", "fine_tune", "layers"),
            f"the frozen parts hold {len(units)} layers. Received: layers=last_{fine_tune['last']}.",
            "use all",
        )

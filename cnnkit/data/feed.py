"""Before training: does the data fit the spec? Input shape, number of classes, head and loss."""

from __future__ import annotations

from dataclasses import dataclass, replace

from cnnkit.errors import DataError
from cnnkit.spec import options
from cnnkit.text import shape_text


@dataclass(frozen=True)
class Feed:
    """How data arrays are fed to the model."""

    squeeze_channel: bool  # (H, W, 1) images into a 1-D spec of shape (H, W)
    channels_first: bool  # (H, W, C) images into a (C, H, W) spec
    labels: str  # one of options.LABEL_KINDS (the loss's Loss.labels)


def feed_for(want: tuple, sample: tuple, source: str, labels: str = options.SPARSE) -> Feed:
    """How samples of shape `sample` reach a model input of shape `want`, or a DataError."""
    if sample == want:
        return Feed(False, False, labels)
    if sample[-1:] == (1,) and sample[:-1] == want:
        return Feed(True, False, labels)
    if len(sample) == 3 and want == (sample[2], sample[0], sample[1]):
        return Feed(False, True, labels)
    raise DataError(
        f"the data's samples are {shape_text(sample)} ({source}) but the model's input_shape is {list(want)}",
        hint=f"set input_shape: {list(sample)} (or data.image_size / color_mode to convert)",
    )


def check_fit(spec, summary, splits) -> Feed:
    sample = tuple(int(d) for d in splits.x_train.shape[1:])
    feed = feed_for(tuple(spec.input_shape), sample, splits.source)
    loss = spec.train["loss"]["name"]
    labels = options.LOSSES[loss].labels
    head = spec.layers[-1]
    units = summary.layers[-1].output_shape
    head_txt = f"{head.type}({', '.join(str(v) for v in units)}" + (
        f", {head.full.get('activation')})" if head.full.get("activation") else ")"
    )
    classes = splits.num_classes
    if len(units) != 1:
        raise DataError(
            f"the last layer {head_txt} outputs {shape_text(units)}, not one score per class",
            hint="end the spec with Flatten or global pooling and a Dense layer",
        )
    if labels == options.BINARY:
        if classes != 2 or units[0] != 1:
            raise DataError(
                f"loss {loss} needs 2 classes and a single output unit; the data has {classes} "
                f"classes and the last layer is {head_txt}",
                hint=_head_hint(classes),
            )
    elif units[0] != classes:
        raise DataError(
            f"the data has {classes} classes but the last layer is {head_txt} with loss {loss}",
            hint=_head_hint(classes),
        )
    return replace(feed, labels=labels)


def _head_hint(classes: int) -> str:
    if classes == 2:
        return "use Dense: {units: 1, activation: sigmoid} with loss binary_crossentropy"
    return f"use Dense: {{units: {classes}, activation: softmax}} with loss categorical_crossentropy"


def keep_classes(splits, classes):
    """data.classes: [0, 1] keeps those classes, renumbered 0..k-1 in the given order."""
    if not classes:
        return splits
    import numpy as np

    missing = [c for c in classes if c >= splits.num_classes]
    if missing:
        raise DataError(
            f"data.classes names class {missing[0]}, but {splits.source} has classes 0..{splits.num_classes - 1}"
        )
    lookup = np.full(splits.num_classes, -1, dtype=np.int64)
    lookup[np.asarray(classes)] = np.arange(len(classes))

    def keep(x, y):
        if x is None:
            return None, None
        mask = lookup[y] >= 0
        return x[mask], lookup[y[mask]]

    (xt, yt), (xv, yv), (xs, ys) = (
        keep(splits.x_train, splits.y_train),
        keep(splits.x_val, splits.y_val),
        keep(splits.x_test, splits.y_test),
    )
    return replace(
        splits,
        x_train=xt,
        y_train=yt,
        x_val=xv,
        y_val=yv,
        x_test=xs,
        y_test=ys,
        class_names=[splits.class_names[c] for c in classes],
    )


def arrange(x, feed):
    """Data arrays in the layout the spec's input expects (views/copies of uint8, never float)."""
    if feed.squeeze_channel:
        return x.reshape(x.shape[:-1])
    if feed.channels_first:
        import numpy as np

        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return x

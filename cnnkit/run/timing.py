"""`cnnkit time`: Caffe's `caffe time` for a spec - forward and backward milliseconds per layer, and the whole step.

Each layer is timed on its own, on a random batch of its real input shape, inside a compiled
tf.function (eager per-op dispatch would time Python, not the layer). Backward is the gradient of
the output's sum with respect to the layer's input and weights; the timed function re-runs the
forward pass, so the forward time is subtracted from it.

The whole training step is then timed on the model `cnnkit train` compiles (the spec's optimizer, loss and
metrics) through `train_on_batch`: the same compiled train function `fit()` runs, plus its per-step dispatch.
Its gap to the sum of the layers is what the layers alone do not show: loss, metrics, the optimizer's update
and the framework's dispatch.
"""

from __future__ import annotations

import time

from cnnkit.run import devices, precision
from cnnkit.spec import options


def time_layers(spec, *, batch_size: int = 64, iterations: int = 20, device: str = "auto") -> dict:
    devices.hide_gpus_if_cpu(device)
    from cnnkit.backend import tensorflow
    from cnnkit.run.build import build_model

    tf = tensorflow()
    info = devices.describe(tf, device)
    policy, _ = precision.resolve(tf, spec.train["precision"], info["used"])  # as `cnnkit train` would train it
    model = build_model(spec, policy=policy)
    rows = []
    shapes = [tuple(spec.input_shape)] + [tuple(r.output_shape) for r in spec.summary.layers]
    for index, layer in enumerate(model.layers):
        x = tf.random.uniform((batch_size, *shapes[index]))
        forward = tf.function(lambda t, layer=layer: layer(t, training=True))

        @tf.function
        def backward(t, layer=layer):
            with tf.GradientTape() as tape:
                tape.watch(t)
                y = layer(t, training=True)
                total = tf.reduce_sum(tf.cast(y, tf.float32))
            grads = tape.gradient(total, [t, *layer.trainable_weights])
            return [g for g in grads if g is not None]

        fwd_ms = _median_ms(forward, x, iterations)
        bwd_ms = max(_median_ms(backward, x, iterations) - fwd_ms, 0.0)  # backward() re-runs the forward pass
        rows.append(
            {
                "index": index,
                "type": type(layer).__name__,
                "output_shape": list(shapes[index + 1]),
                "forward_ms": fwd_ms,
                "backward_ms": bwd_ms,
            }
        )
    step_ms = _whole_step_ms(tf, spec, batch_size, iterations, policy)
    layers_ms = sum(r["forward_ms"] + r["backward_ms"] for r in rows)
    total = layers_ms or 1.0
    for row in rows:
        row["share"] = (row["forward_ms"] + row["backward_ms"]) / total
    return {
        "name": spec.name,
        "device": info["used"],
        "precision": policy,
        "batch_size": batch_size,
        "iterations": iterations,
        "layers": sorted(rows, key=lambda r: -(r["forward_ms"] + r["backward_ms"])),
        "forward_ms": sum(r["forward_ms"] for r in rows),
        "backward_ms": sum(r["backward_ms"] for r in rows),
        "layers_ms": layers_ms,
        "step_ms": step_ms,
        "images_per_s": batch_size * 1000 / step_ms,
        # Negative when the layers timed one by one (each its own tf.function call) cost more than the fused step.
        "overhead_ms": step_ms - layers_ms,
        "overhead_share": (step_ms - layers_ms) / step_ms,
    }


def _whole_step_ms(tf, spec, batch_size: int, iterations: int, policy: str = "float32") -> float:
    """Median ms of one real training step at `batch_size`: random images, random labels in the loss's format."""
    from cnnkit.run.compiled import compiled_model

    keras = tf.keras
    # steps_per_epoch only sizes a learning-rate schedule's decay, which one step's time does not depend on.
    model = compiled_model(keras, spec, 1, policy)
    x = tf.random.uniform((batch_size, *spec.input_shape))
    y = _random_labels(tf, spec, batch_size)
    # train_on_batch returns the logs as Python numbers: reading them waits for the step to finish (synced).
    # (_sync finds nothing left to wait for in them.)
    return _median_ms(lambda _: model.train_on_batch(x, y), None, iterations)


def _random_labels(tf, spec, batch_size: int):
    """Labels as the data pipeline feeds them to this loss (cnnkit/data/pipeline.py, Loss.labels)."""
    kind = options.LOSSES[spec.train["loss"]["name"]].labels
    classes = int(spec.summary.layers[-1].output_shape[-1])
    if kind == options.BINARY:
        return tf.random.uniform((batch_size, 1), maxval=2, dtype=tf.int32)
    ids = tf.random.uniform((batch_size,), maxval=classes, dtype=tf.int32)
    return tf.one_hot(ids, classes, dtype=tf.float32) if kind == options.ONE_HOT else ids


def _median_ms(fn, x, iterations: int) -> float:
    for _ in range(3):  # trace and warm up caches
        _sync(fn(x))
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        _sync(fn(x))
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return times[len(times) // 2]


def _sync(result):
    # Reading one value forces the computation to finish (GPU kernels run asynchronously).
    first = result[0] if isinstance(result, (list, tuple)) else result
    if first is not None and hasattr(first, "numpy"):
        first.numpy()

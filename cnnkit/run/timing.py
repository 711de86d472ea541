"""`cnnkit time`: Caffe's `caffe time` for a spec - forward and backward milliseconds per layer.

Each layer is timed on its own, on a random batch of its real input shape, inside a compiled
tf.function (eager per-op dispatch would time Python, not the layer). Backward is the gradient of
the output's sum with respect to the layer's input and weights; the timed function re-runs the
forward pass, so the forward time is subtracted from it.
"""

from __future__ import annotations

import time

from cnnkit.run import devices


def time_layers(spec, *, batch_size: int = 64, iterations: int = 20, device: str = "auto") -> dict:
    devices.hide_gpus_if_cpu(device)
    from cnnkit.backend import tensorflow
    from cnnkit.run.build import build_model

    tf = tensorflow()
    info = devices.describe(tf, device)
    model = build_model(spec)
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
    total = sum(r["forward_ms"] + r["backward_ms"] for r in rows) or 1.0
    for row in rows:
        row["share"] = (row["forward_ms"] + row["backward_ms"]) / total
    return {
        "name": spec.name,
        "device": info["used"],
        "batch_size": batch_size,
        "iterations": iterations,
        "layers": sorted(rows, key=lambda r: -(r["forward_ms"] + r["backward_ms"])),
        "forward_ms": sum(r["forward_ms"] for r in rows),
        "backward_ms": sum(r["backward_ms"] for r in rows),
    }


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

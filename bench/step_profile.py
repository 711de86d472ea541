"""Where one training step of the notes' MNIST net goes, kernel by kernel, and what a faster weight gradient is worth.

Usage: python bench/step_profile.py [--steps 60] [--rounds 7] [--quick]

Three child processes, each with cnnkit's own model (configs/mnist.yaml compiled as `cnnkit train` compiles it)
and cnnkit's CPU kernels (cnnkit/backend.py), batch 64, on an in-memory tf.data set of random images:
1. steps: ms per training step, `rounds` fits of `steps` steps each after a warm-up fit (which pays the tracing),
   median and range. Alternating with each fit, the lever's side: the same net and weights whose second conv takes
   its weight gradient from nine matrix products, one per kernel position (input window^T x output gradient),
   instead of TensorFlow's Conv2DBackpropFilter (a custom gradient; the two nets' gradients are checked to agree).
2. kernels: 3 more fits with oneDNN's own timing switched on (ONEDNN_VERBOSE=1: every kernel execution is
   printed with its milliseconds), each kernel's time summed per step and grouped by what it computes (each conv's
   forward, backward-data and backward-weights pass; pooling; matrix products; reorders), the median of the fits
   kept. A convolution's GFLOP/s = 2 x batch x out channels x out height x out width x in channels x kernel area /
   its time. With TensorFlow's own kernels (TF_ENABLE_ONEDNN_OPTS=0 set outside) there is nothing to print, and
   this part says so.
3. weight_gradient: that weight gradient alone (batch 64, 13x13x32 in, 3x3, 64 out), TensorFlow's kernel against
   the nine products, interleaved round by round and checked to agree. From it, an estimate of what the step would
   gain (the isolated saving taken off the step, or the isolated speed-up applied to the kernel's in-step time);
   part 1 measures what the step does gain.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from _common import MNIST_SPEC, REPO, emit, log, median, spread, verdict

BATCH = 64
MEASURE_MARK = "@@cnnkit-step-profile measure"
END_MARK = "@@cnnkit-step-profile end"
# onednn_verbose,v1,primitive,exec,cpu,<kind>,<implementation>,<propagation>,<memory formats>,<attributes>,
# <algorithm>,<problem>,<milliseconds>
VERBOSE_EXEC = "onednn_verbose,v1,primitive,exec,cpu,"
PROBLEM_FIELD = re.compile(r"(mb|ic|oc|ih|oh|kh|sh|dh|ph|iw|ow|kw|sw|dw|pw)(\d+)")
# The second conv of the notes' net: 13x13x32 after the first pool, 3x3 valid, 64 filters.
CONV2_INPUT = (BATCH, 13, 13, 32)
CONV2_KERNEL = (3, 3, 32, 64)
CONV2_OUTPUT = (BATCH, 13 - 3 + 1, 13 - 3 + 1, 64)
# 2 FLOP per multiply-add, one per output value and kernel tap: as conv_flops counts it from oneDNN's problem text
CONV2_FLOPS = 2 * math.prod(CONV2_OUTPUT) * math.prod(CONV2_KERNEL[:3])


# ---- child side: imports TensorFlow -------------------------------------------------------------------------------


def _model_and_data(steps: int):
    from cnnkit.backend import keras as load_keras
    from cnnkit.run.compiled import compiled_model
    from cnnkit.spec.parse import load_spec

    keras = load_keras()
    import numpy as np
    import tensorflow as tf

    spec = load_spec(MNIST_SPEC)
    model = compiled_model(keras, spec, steps)
    rng = np.random.default_rng(0)
    x = (rng.integers(0, 256, (BATCH * steps, 28, 28, 1)) / 255.0).astype("float32")
    y = np.eye(10, dtype="float32")[rng.integers(0, 10, BATCH * steps)]
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH).cache().prefetch(2)
    model.fit(data, epochs=1, verbose=0)  # traces the step
    return model, data


def child_kernels(steps: int, fits: int) -> dict:
    model, data = _model_and_data(steps)
    for _ in range(fits):
        print(MEASURE_MARK, flush=True)
        model.fit(data, epochs=1, verbose=0)
        print(END_MARK, flush=True)
    return {"steps": steps, "fits": fits}


def weight_gradient_as_products(tf, x, dy, kernel_shape):
    """A stride-1 'valid' conv's weight gradient as one matrix product per kernel position: the input window under
    that position, (positions, in channels), transposed, times the output gradient, (positions, out channels)."""
    kh, kw, _, _ = kernel_shape
    oh, ow = dy.shape[1], dy.shape[2]
    rows = tf.reshape(dy, (-1, dy.shape[-1]))
    taps = [
        tf.matmul(tf.reshape(x[:, i : i + oh, j : j + ow, :], (-1, x.shape[-1])), rows, transpose_a=True)
        for i in range(kh)
        for j in range(kw)
    ]
    return tf.reshape(tf.stack(taps), kernel_shape)


def products_conv_layer(keras, tf, filters: int, kernel_size: tuple[int, int]):
    """A Conv2D (stride 1, 'valid', relu) whose weight gradient is weight_gradient_as_products: the lever's side."""

    class ProductsConv2D(keras.layers.Layer):
        def build(self, input_shape):
            shape = (*kernel_size, input_shape[-1], filters)
            self.kernel = self.add_weight(shape=shape, initializer="glorot_uniform")
            self.bias = self.add_weight(shape=(filters,), initializer="zeros")

        def call(self, x):
            @tf.custom_gradient
            def conv(x, kernel):
                def gradient(dy):
                    dx = tf.raw_ops.Conv2DBackpropInput(
                        input_sizes=tf.shape(x), filter=kernel, out_backprop=dy, strides=[1, 1, 1, 1], padding="VALID"
                    )
                    return dx, weight_gradient_as_products(tf, x, dy, kernel.shape)

                return tf.nn.conv2d(x, kernel, 1, "VALID"), gradient

            return tf.nn.relu(tf.nn.bias_add(conv(x, tf.convert_to_tensor(self.kernel)), self.bias))

    return ProductsConv2D()


def child_step_with_products(steps: int, rounds: int) -> dict:
    """The notes' net as Keras builds it against the same net whose second conv takes its weight gradient from nine
    products; same weights, same batches, fits alternating."""
    model, data = _model_and_data(steps)
    import keras
    import numpy as np
    import tensorflow as tf

    conv = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)][1]
    layers = [
        products_conv_layer(keras, tf, conv.filters, conv.kernel_size)
        if layer is conv
        else layer.__class__.from_config(layer.get_config())
        for layer in model.layers
    ]
    lever = keras.Sequential([keras.Input(model.input_shape[1:]), *layers])
    lever.set_weights(model.get_weights())
    x, y = next(iter(data))
    gradients = []
    for net in (model, lever):
        with tf.GradientTape() as tape:
            loss = keras.losses.categorical_crossentropy(y, net(x))
        gradients.append(tape.gradient(loss, net.trainable_variables))
    max_diff = max(float(np.abs(a - b).max()) for a, b in zip(*gradients))
    lever.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    lever.fit(data, epochs=1, verbose=0)  # traces its step
    keras_ms, products_ms = [], []
    for r in range(rounds):
        order = ((model, keras_ms), (lever, products_ms)) if r % 2 == 0 else ((lever, products_ms), (model, keras_ms))
        for net, times in order:
            start = time.perf_counter()
            net.fit(data, epochs=1, verbose=0)
            times.append((time.perf_counter() - start) / steps * 1000)
    return {"keras_step_ms": keras_ms, "products_step_ms": products_ms, "max_gradient_diff": max_diff}


def child_weight_gradient(reps: int, rounds: int) -> dict:
    from cnnkit.backend import tensorflow

    tf = tensorflow()
    import numpy as np

    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal(CONV2_INPUT, dtype="float32"))
    dy = tf.constant(rng.standard_normal(CONV2_OUTPUT, dtype="float32"))

    @tf.function
    def tensorflow_kernel(x, dy):
        return tf.raw_ops.Conv2DBackpropFilter(
            input=x, filter_sizes=list(CONV2_KERNEL), out_backprop=dy, strides=[1, 1, 1, 1], padding="VALID"
        )

    @tf.function
    def nine_products(x, dy):
        return weight_gradient_as_products(tf, x, dy, CONV2_KERNEL)

    reference, candidate = tensorflow_kernel(x, dy).numpy(), nine_products(x, dy).numpy()
    scale = float(np.abs(reference).max())
    max_abs_diff = float(np.abs(reference - candidate).max())

    def per_call_ms(fn) -> float:
        start = time.perf_counter()
        for _ in range(reps):
            out = fn(x, dy)
        out.numpy()  # waits for the last one
        return (time.perf_counter() - start) / reps * 1000

    for fn in (tensorflow_kernel, nine_products):
        per_call_ms(fn)  # warm: first calls allocate and pick kernels
    kernel_ms, products_ms = [], []
    for r in range(rounds):  # alternating which goes first
        first, second = (tensorflow_kernel, nine_products) if r % 2 == 0 else (nine_products, tensorflow_kernel)
        times = {first: per_call_ms(first), second: per_call_ms(second)}
        kernel_ms.append(times[tensorflow_kernel])
        products_ms.append(times[nine_products])
    return {
        "tensorflow_ms": kernel_ms,
        "nine_products_ms": products_ms,
        "agree": max_abs_diff <= 1e-4 * scale,
        "max_abs_diff": max_abs_diff,
        "max_abs_value": scale,
    }


# ---- parent side: no TensorFlow -----------------------------------------------------------------------------------


def run_child(args: list[str], env: dict | None = None) -> tuple[dict, list[str]]:
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=900,
    )
    if done.returncode != 0:
        raise RuntimeError(f"child {args} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    lines = done.stdout.splitlines()
    return json.loads(lines[-1]), lines


def kernel_lines(lines: list[str]) -> list[list[str]]:
    """The verbose lines of each measured fit (printed between the two marks), one list per fit."""
    fits, current = [], None
    for line in lines:
        if line == MEASURE_MARK:
            current = []
        elif line == END_MARK and current is not None:
            fits.append(current)
            current = None
        elif current is not None and line.startswith(VERBOSE_EXEC):
            current.append(line)
    return fits


def median_breakdown(fits: list[list[str]], steps: int) -> list[dict]:
    """Each kernel group's median over the fits (one fit can stall): ms per step, largest first."""
    per_fit = [{(row["what"], row["problem"]): row for row in kernel_breakdown(lines, steps)} for lines in fits]
    rows = []
    for key in {key for fit in per_fit for key in fit}:
        seen = [fit[key] for fit in per_fit if key in fit]
        row = dict(seen[0])
        ms = median([r["ms_per_step"] for r in seen])
        if "flop_per_call" in row:
            row["gflops"] = gflops(row["flop_per_call"], ms, row["calls_per_step"])
        row["ms_per_step"] = round(ms, 3)
        rows.append(row)
    return sorted(rows, key=lambda r: -r["ms_per_step"])


def conv_flops(problem: str) -> int | None:
    """2 x batch x oc x oh x ow x ic x kh x kw, from oneDNN's problem text (mb64_ic32oc64_ih13oh11kh3..._iw13ow11kw3...)."""
    dims = {k: int(v) for k, v in PROBLEM_FIELD.findall(problem)}
    if not {"mb", "ic", "oc", "oh", "ow", "kh", "kw"} <= dims.keys():
        return None
    return 2 * dims["mb"] * dims["oc"] * dims["oh"] * dims["ow"] * dims["ic"] * dims["kh"] * dims["kw"]


def conv_label(problem: str) -> str:
    dims = {k: int(v) for k, v in PROBLEM_FIELD.findall(problem)}
    return (
        f"conv {dims.get('ic')}→{dims.get('oc')} channels, {dims.get('kh')}×{dims.get('kw')}, "
        f"{dims.get('ih')}×{dims.get('iw')}→{dims.get('oh')}×{dims.get('ow')}"
    )


def gflops(flop_per_call: int, ms_per_step: float, calls_per_step: float) -> float:
    return round(flop_per_call / (ms_per_step / calls_per_step) / 1e6, 1)


def kernel_breakdown(lines: list[str], steps: int) -> list[dict]:
    """Milliseconds per step by what a kernel computes, largest first; convolutions with their GFLOP/s."""
    totals: dict[tuple, float] = defaultdict(float)
    calls: dict[tuple, int] = defaultdict(int)
    for line in lines:
        fields = line.split(",")
        kind, propagation, problem, ms = fields[5], fields[7], fields[-2], float(fields[-1])
        key = (kind, propagation, problem if kind == "convolution" else "")
        totals[key] += ms
        calls[key] += 1
    rows = []
    for (kind, propagation, problem), total in totals.items():
        ms = total / steps
        row = {
            "what": f"{conv_label(problem)}: {propagation.replace('_', ' ')}" if problem else f"{kind} {propagation}",
            "problem": problem,  # oneDNN's whole shape text: two convs alike in the label stay apart
            "ms_per_step": round(ms, 3),
            "calls_per_step": round(calls[(kind, propagation, problem)] / steps, 2),
        }
        flops = conv_flops(problem) if problem else None
        if flops:
            row["flop_per_call"] = flops
            row["gflops"] = gflops(flops, ms, row["calls_per_step"])
        rows.append(row)
    return sorted(rows, key=lambda r: -r["ms_per_step"])


def _faster_by(step_ms: float | None, saved_ms: float) -> float:
    """step / (step - saving); 1.0 where nothing is saved: no gain to claim."""
    return round(step_ms / (step_ms - saved_ms), 3) if step_ms and saved_ms > 0 else 1.0


def summarise(steps_run: dict, kernels: list[dict] | None, gradient: dict) -> dict:
    step = spread(steps_run["keras_step_ms"])
    kernel_ms = round(sum(r["ms_per_step"] for r in kernels), 2) if kernels else None
    alone = [k / p for k, p in zip(gradient["tensorflow_ms"], gradient["nine_products_ms"])]
    in_step = [k / p for k, p in zip(steps_run["keras_step_ms"], steps_run["products_step_ms"])]
    saved_ms = median(gradient["tensorflow_ms"]) - median(gradient["nine_products_ms"])
    step_ms = step["median"]
    # The same kernel inside the step, where it shares the cores with the conv's backward-data pass.
    in_step_kernel = next(
        (k for k in kernels or [] if k.get("flop_per_call") == CONV2_FLOPS and k["what"].endswith("backward weights")),
        None,
    )
    scaled_ms = in_step_kernel["ms_per_step"] * (1 - 1 / median(alone)) if in_step_kernel else None
    return {
        "step_ms": step,
        "samples_per_s_in_step": round(BATCH / step_ms * 1000) if step_ms else None,
        "kernels_ms_per_step": kernel_ms,
        "kernels": kernels,
        "weight_gradient": {
            "tensorflow_ms": spread(gradient["tensorflow_ms"]),
            "nine_products_ms": spread(gradient["nine_products_ms"]),
            "speedup_per_round": [round(r, 3) for r in alone],
            "speedup_spread": spread(alone),
            "verdict": verdict(alone),
            "results_agree": gradient["agree"],
            "max_abs_diff": gradient["max_abs_diff"],
            # What the step would gain if the kernel's saving carried over: the isolated saving taken off the step,
            # or the isolated speed-up applied to the kernel's time inside the step (longer there than alone).
            "step_speedup_estimate": {
                "from_isolated_saving": _faster_by(step_ms, saved_ms),
                "from_in_step_kernel_time": _faster_by(step_ms, scaled_ms) if scaled_ms is not None else None,
                "in_step_kernel_ms": in_step_kernel["ms_per_step"] if in_step_kernel else None,
            },
            "in_step": {
                "products_step_ms": spread(steps_run["products_step_ms"]),
                "speedup_per_round": [round(r, 3) for r in in_step],
                "speedup_spread": spread(in_step),
                "verdict": verdict(in_step),
                "max_gradient_diff": steps_run["max_gradient_diff"],
            },
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="training steps per fit")
    parser.add_argument("--rounds", type=int, default=7, help="timed fits, and weight-gradient rounds")
    parser.add_argument("--quick", action="store_true", help="a smoke test: 10 steps, 2 rounds")
    parser.add_argument("--data-dir", default=None, help="unused: the step runs on random images of MNIST's shape")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.steps, args.rounds = 10, 2
    if args.child:
        what, *numbers = args.child
        numbers = [int(n) for n in numbers]
        result = {
            "steps": lambda: child_step_with_products(*numbers),
            "kernels": lambda: child_kernels(*numbers),
            "weight_gradient": lambda: child_weight_gradient(*numbers),
        }[what]()
        print(json.dumps(result), flush=True)
        return 0

    from cnnkit.backend import ONEDNN_VARIABLE

    onednn = os.environ.get(ONEDNN_VARIABLE, "1") != "0"  # cnnkit's default on x86-64 (cnnkit/backend.py)
    log(f"step_profile: {args.rounds} fits of {args.steps} steps ...")
    steps_run, _ = run_child(["steps", str(args.steps), str(args.rounds)])
    kernels = None
    if onednn:
        fits = 3 if not args.quick else 1
        log(f"step_profile: {fits} fits with oneDNN's kernel timing ...")
        _, lines = run_child(["kernels", str(args.steps), str(fits)], env={"ONEDNN_VERBOSE": "1"})
        kernels = median_breakdown(kernel_lines(lines), args.steps)
    log("step_profile: the second conv's weight gradient, two ways ...")
    gradient, _ = run_child(["weight_gradient", str(50 if not args.quick else 5), str(args.rounds)])
    emit(
        {
            "benchmark": "step_profile",
            "config": {"spec": str(MNIST_SPEC.relative_to(REPO)), "batch": BATCH, "steps": args.steps},
            "cpu_kernels": "oneDNN" if onednn else "TensorFlow's own (TF_ENABLE_ONEDNN_OPTS=0)",
            **summarise(steps_run, kernels, gradient),
            "notes": [
                "kernel times are oneDNN's own (ONEDNN_VERBOSE=1), summed per step, median of 3 fits; TensorFlow "
                "runs independent kernels side by side (a conv's two backward passes), so their sum can exceed the "
                "step, and two kernels sharing the two cores each take longer than alone",
                "step_speedup_estimate: what the step would gain if the nine products' saving carried over, "
                "taken as the isolated saving (medians of the isolated calls) or as the isolated speed-up applied "
                "to the kernel's time inside the step; an estimate, not a bound: in_step measures the step itself",
                "in_step: fits of the two nets alternate round by round; a fit on this VM runs either ~14 or "
                "~21 ms a step throughout, so a difference of a few percent is below what the rounds can resolve",
            ],
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The batch size of passes that only predict: validation after each epoch, the test set at the end.

Inference keeps no activations for a backward pass and updates no weights, so a bigger batch only amortises the
per-step cost (dispatch, the callbacks' checks); results do not depend on it (BatchNormalization and Dropout act in
inference mode). But memory taken by a pass is not given back: with the oneDNN kernels (cnnkit's default on x86-64,
cnnkit/backend.py) TensorFlow's CPU allocator keeps its pools at their high-water mark for the life of the process.
The cap below keeps the inference batch within what the training step already uses.

Measured on the notes' MNIST net (2026-12-02, 2-core AMD EPYC, oneDNN kernels): at batch 512 (the cap was 128 MiB
then) validation grew a 128 MiB pool, 86 MB resident until the process ended, on top of training's ~720 MB; at 128
it grew none. 12,000 validation images took 1.00 s at 512, 1.27 s at 128, 1.54 s at 64 (median of 5), so on all of
MNIST an epoch pays ~0.3 s (~1.3 %) for the 86 MB. bench/train_throughput.py measures a side at 512 in every run.
"""

from __future__ import annotations

from math import prod

ACTIVATION_BUDGET = 16 * 2**20  # bytes of one layer's float32 output for the whole batch
MAX_INFERENCE_BATCH = 512


def inference_batch(spec, train_batch: int) -> int:
    """train.validation_batch_size, or for `auto` a power of two in [train_batch, MAX_INFERENCE_BATCH] whose widest
    activation fits ACTIVATION_BUDGET; `train_batch` itself for a Backbone (its inner layers are not in the
    summary, so their width is unknown)."""
    chosen = spec.train.get("validation_batch_size", "auto")
    if chosen != "auto":
        return chosen
    if any(layer.type == "Backbone" for layer in spec.layers):
        return train_batch
    widest = max([prod(spec.input_shape)] + [prod(row.output_shape) for row in spec.summary.all_rows()])
    batch = train_batch
    while batch * 2 <= MAX_INFERENCE_BATCH and batch * 2 * widest * 4 <= ACTIVATION_BUDGET:
        batch *= 2
    return batch

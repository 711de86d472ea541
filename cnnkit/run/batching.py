"""The batch size of passes that only predict: validation after each epoch, the test set at the end.

Inference keeps no activations for a backward pass and updates no weights, so a bigger batch only amortises the
per-step cost (dispatch, the callbacks' checks); results do not depend on it (BatchNormalization and Dropout act in
inference mode). Measured on the notes' MNIST net (bench/train_throughput.py, 2026-12-01, 2-core AMD EPYC, oneDNN
kernels): validation at batch 64 instead of `auto` (512 there) was slower in every round, x0.84 [0.81-0.99] over 5
rounds. The batch is capped so the widest layer's activations stay within ACTIVATION_BUDGET, which keeps a 224x224
net's validation as small in memory as its training step.
"""

from __future__ import annotations

from math import prod

ACTIVATION_BUDGET = 128 * 2**20  # bytes of one layer's float32 output for the whole batch
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

"""From uint8 arrays to a tf.data pipeline. Which label format a loss wants is `Loss.labels` (spec/options.py)."""

from __future__ import annotations

import numpy as np


def to_tf_dataset(
    x: np.ndarray,
    y: np.ndarray,
    *,
    batch_size: int,
    num_classes: int,
    one_hot: bool,
    shuffle: bool,
    seed: int,
    drop_remainder: bool = False,
):
    """A tf.data.Dataset of (float32 images in [0, 1], labels) batches.

    Labels are one-hot float32 (N, num_classes) if `one_hot`, else int32 class indices (N,).

    Design, measured on the project's 2-core CPU box (MNIST 48,000 x 28x28x1, batch 64, one
    epoch iterated from Python, warm):
      * from_tensor_slices((x, y)).shuffle(N).batch(64).map(cast/scale/one-hot)  ~0.30 s
      * range(N).shuffle(N).batch(64).map(gather from one tensor + the same)     ~0.15 s
    Both are a small fraction of a training epoch; the second wins. So only the int64 indices
    go through the per-element shuffle; images are gathered a whole batch at a time from one
    in-memory uint8 tensor, then cast, scaled and one-hot encoded once per batch (vectorized),
    and prefetched so the next batch is ready while the model trains.
    """
    from cnnkit.backend import tensorflow

    tf = tensorflow()  # lazy: `import cnnkit.data` must stay TensorFlow-free

    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
    n = len(x)
    make_batch = batch_maker(tf, x, y, num_classes=num_classes, one_hot=one_hot)
    ds = tf.data.Dataset.range(n)
    if shuffle:
        # A full-size buffer is a true uniform shuffle; it only holds int64 indices.
        ds = ds.shuffle(max(n, 1), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return finish(tf, ds.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True))


def batch_maker(tf, x: np.ndarray, y: np.ndarray, *, num_classes: int, one_hot: bool):
    """index batch -> (float32 images in [0, 1], labels): the images stay one uint8 tensor (4x smaller than
    float32) and are gathered, cast, scaled and one-hot encoded a whole batch at a time."""
    images = tf.constant(np.ascontiguousarray(x))
    labels = tf.constant(np.asarray(y, dtype=np.int32))

    def make_batch(idx):
        batch_x = tf.cast(tf.gather(images, idx), tf.float32) * (1.0 / 255.0)
        batch_y = tf.gather(labels, idx)
        if one_hot:
            batch_y = tf.one_hot(batch_y, num_classes, dtype=tf.float32)
        return batch_x, batch_y

    # Nothing here branches on a tensor, so AutoGraph's rewrite of the source (~0.1 s per dataset) buys nothing.
    return tf.autograph.experimental.do_not_convert(make_batch)


def finish(tf, ds):
    """Sharding and prefetch, the same for every pipeline.

    Under MultiWorkerMirroredStrategy each worker takes its share of every global batch. The default (AUTO) would
    try to shard by file, find none (the data is in memory) and fall back to DATA with a warning. Every worker
    orders the data with the same seed, so the shares never overlap. No effect without a strategy.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)

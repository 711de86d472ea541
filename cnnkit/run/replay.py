"""What makes a resumed run replay the uninterrupted one: per-epoch data order and per-epoch seeds.

* The training data order of epoch E is a stateless shuffle seeded by (seed, E): it depends on nothing that a
  restart loses (tf.data's `reshuffle_each_iteration` would start again from epoch 1's order).
* At the start of epoch E, Python's, NumPy's and TensorFlow's global seeds are set to seed + E.
* The model's own random state (dropout's seed generators) and the optimizer's state are saved with each
  checkpoint (cnnkit.run.checkpoint), so they continue where they were.
"""

from __future__ import annotations


def epoch_batches(
    x, y, *, batch_size: int, num_classes: int, one_hot: bool, shuffle: bool, seed: int, first_epoch: int, epochs: int
):
    """A tf.data.Dataset of epochs first_epoch..epochs-1, each ceil(N / batch_size) batches in its own order.

    fit() reads it with steps_per_epoch = ceil(N / batch_size), so one iterator spans every epoch. Images stay
    uint8 in one tensor and are gathered, scaled and one-hot encoded a batch at a time (see data.pipeline)."""
    from cnnkit.backend import tensorflow
    from cnnkit.data.pipeline import batch_maker, finish

    tf = tensorflow()
    n = len(x)
    make_batch = batch_maker(tf, x, y, num_classes=num_classes, one_hot=one_hot)

    def order(epoch):
        indices = tf.range(n, dtype=tf.int64)
        if shuffle:
            key = tf.stack([tf.constant(seed, tf.int64), epoch])
            indices = tf.random.experimental.stateless_shuffle(indices, seed=key)
        return tf.data.Dataset.from_tensor_slices(indices).batch(batch_size)

    ds = tf.data.Dataset.range(first_epoch, max(first_epoch, epochs)).flat_map(order)
    return finish(tf, ds.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True))


def epoch_start(keras, seed: int, stop, learning_rates: dict):
    """The first callback: seeds each epoch, stops after the current batch when a signal came (see
    cnnkit.run.stopping), and notes the learning rate the epoch ended with before any callback changes it."""

    class EpochStart(keras.callbacks.Callback):
        async_safe = True  # reads a flag and the optimizer; nothing that needs the batch's results

        def on_epoch_begin(self, epoch, logs=None):
            keras.utils.set_random_seed(seed + epoch)

        def on_train_batch_end(self, batch, logs=None):
            stop.check()

        def on_test_batch_end(self, batch, logs=None):  # validation: the epoch is not saved, so it is redone
            stop.check()

        def on_epoch_end(self, epoch, logs=None):
            lr = getattr(self.model.optimizer, "learning_rate", None)
            if lr is not None:
                learning_rates[epoch] = as_float(keras, lr)

    return EpochStart()


def as_float(keras, value) -> float:
    """A scalar Variable or tensor as a Python float, under Keras 3 and tf-keras alike."""
    from cnnkit.backend import is_tf_keras

    if is_tf_keras(keras):  # tf-keras has no keras.ops
        return float(keras.backend.get_value(value))
    if hasattr(value, "numpy"):  # a Variable: convert_to_numpy(Variable) trips NumPy 2's copy-keyword warning
        return float(value.numpy())
    return float(keras.ops.convert_to_numpy(value))

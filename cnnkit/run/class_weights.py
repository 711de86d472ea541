"""train.class_weight: one weight per class, applied as a per-sample weight column of the training pipeline.

Why not `model.fit(class_weight=...)`: Keras applies it only to some input forms, and users found it silently
ignored with tf.data (tensorflow#33550, Ludwig #615/#1188). A dataset of (x, y, sample_weight) is weighted by every
Keras version and under every distribution strategy, and a test shows the effect (tests/test_class_weight.py).
"""

from __future__ import annotations

import numpy as np

from cnnkit.errors import DataError
from cnnkit.spec.train_extras import BALANCED


def class_weights(setting, y_train: np.ndarray, num_classes: int) -> np.ndarray | None:
    """The weight of each class id 0..num_classes-1, or None when every sample weighs 1."""
    if setting is None:
        return None
    counts = np.bincount(np.asarray(y_train, dtype=np.int64), minlength=num_classes)[:num_classes]
    if setting == BALANCED:
        # scikit-learn's "balanced": n_samples / (n_classes * n_samples_of_class); every class then adds up to
        # the same total weight. A class without training samples has nothing to weigh: 1.
        present = counts > 0
        weights = np.ones(num_classes)
        weights[present] = len(y_train) / (int(present.sum()) * counts[present])
        return weights
    unknown = [c for c in setting if c >= num_classes]
    if unknown:
        raise DataError(
            f"train.class_weight names class {unknown[0]}, but the data has classes 0..{num_classes - 1}",
            hint="use the class ids after data.classes renumbering" if num_classes else None,
        )
    weights = np.ones(num_classes)
    for class_id, weight in setting.items():
        weights[class_id] = weight
    return weights


def with_sample_weights(dataset, weights: np.ndarray | None, labels: str):
    """(x, y) batches -> (x, y, w): w is each sample's class weight. `labels`: onehot | sparse | binary."""
    if weights is None or dataset is None:
        return dataset
    from cnnkit.backend import tensorflow

    tf = tensorflow()
    table = tf.constant(weights, tf.float32)

    def add_weight(x, y):
        if labels == "onehot":
            w = tf.reduce_sum(tf.cast(y, tf.float32) * table, axis=-1)
        else:
            w = tf.gather(table, tf.cast(tf.reshape(y, [-1]), tf.int32))
        return x, y, w

    return dataset.map(add_weight, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)


def weighted_training(train_cfg: dict, dataset, splits, feed):
    """The training dataset with its weight column, and what run.json records (None when unweighted)."""
    weights = class_weights(train_cfg.get("class_weight"), splits.y_train, splits.num_classes)
    if weights is None:
        return dataset, None
    record = {
        "setting": train_cfg["class_weight"],
        "weights": {name: round(float(w), 6) for name, w in zip(splits.class_names, weights)},
    }
    return with_sample_weights(dataset, weights, feed.labels), record

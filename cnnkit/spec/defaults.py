"""Every default of a spec, in one commented place. A spec file holds only its differences.

Names and values are Keras' own; the comments say why a default was chosen.
"""

DATA_DEFAULTS = {
    # digits ships with scikit-learn: real images that need no download, so a spec without
    # `data:` trains offline on any machine.
    "dataset": "digits",
    "path": None,  # file/folder for npz, csv, image_folder (or an explicit Keras dataset file)
    "test_path": None,  # separate test file/folder; else `test_split` is held out
    "validation_split": 0.2,  # the course notes' value (model.fit(..., validation_split=0.2))
    "test_split": 0.2,  # only used by sources without a test set (digits, folders, csv)
    "image_size": None,  # image_folder: [H, W]; None = the spec's input_shape
    "color_mode": None,  # grayscale|rgb|rgba; None = from input_shape's channels
    "header": "auto",  # csv: first row is a header if it is not numeric
    "label_column": 0,  # csv: Kaggle MNIST puts the label first
    "image_shape": None,  # csv: pixels per row reshaped to this; None = input_shape
    "classes": None,  # keep only these class ids, renumbered 0..k-1 (e.g. [0, 1]: a binary task)
    "max_samples": None,  # keep only N training samples (quick experiments, scaling benchmarks)
}

TRAIN_DEFAULTS = {
    # The course notes' MNIST recipe: Adam, categorical cross-entropy, accuracy, 5 epochs, batch 64.
    "optimizer": "adam",
    "loss": "categorical_crossentropy",
    "metrics": ["accuracy"],
    "epochs": 5,
    "batch_size": 64,  # the global batch; split across replicas under a distribution strategy
    "seed": 0,  # seeds Python, NumPy, TF and the data shuffle
    "deterministic": False,  # true: TF op determinism (bit-identical CPU runs, somewhat slower)
    "shuffle": True,
    "monitor": "val_loss",  # picks best.keras and is the default for early stopping / plateau
    "lr_schedule": None,  # {name: cosine_decay, ...}; decay_steps default to the whole run
    "early_stopping": None,  # {patience: 3, ...}: Keras EarlyStopping arguments
    "reduce_lr_on_plateau": None,  # {factor: 0.5, patience: 2, ...}: Keras ReduceLROnPlateau arguments
    # float32 | mixed_bfloat16 | mixed_float16 | auto. auto: mixed_float16 on a GPU with tensor cores (compute
    # capability >= 7.0), mixed_bfloat16 on a CPU with AMX (measured x1.9 there), float32 elsewhere
    # (cnnkit/run/precision.py). Variables stay float32 and model files are always float32, so a run's files
    # evaluate and export alike on any machine. (`mixed_precision: true`, the 0.1 key, is read as mixed_float16.)
    "precision": "auto",
    # Batches per compiled call (Keras' compile(steps_per_execution=)): fewer trips from Python into the graph;
    # the progress bar and Ctrl-C then act every N batches. 1 = every batch, Keras' default (see bench/README.md
    # for what larger values measured).
    "steps_per_execution": 1,
    # Batch of the validation and test passes (Keras' fit(validation_batch_size=)). auto: the largest power of two
    # up to 512 whose widest layer output stays within 16 MiB (cnnkit/run/batching.py); results do not depend on it.
    "validation_batch_size": "auto",
    "top_k": 5,  # evaluate reports top-k accuracy when there are more than k classes
    # Test-time augmentation for the test pass of `train` and `evaluate`: horizontal | vertical |
    # horizontal_and_vertical (RandomFlip's modes) averages the class probabilities of the image and its flips.
    # Only for data whose classes survive the flip (clothes, not digits); None: one view, the image as it is.
    "test_time_flip": None,
    "distribution": {"strategy": "auto"},  # auto: MirroredStrategy when > 1 GPU, else none
    # balanced (n_samples / (n_classes * n_class), as scikit-learn) or {class id: weight}; unlisted classes weigh 1.
    # None: every sample weighs 1. Applied as a per-sample weight column of the tf.data pipeline.
    "class_weight": None,
    # Event files under RUN/tensorboard/ for `tensorboard --logdir runs`: per-epoch scalars always, the model's
    # graph, weight histograms only on request (they grow the files by every weight, every epoch). false: none.
    "tensorboard": {"graph": True, "histograms": False},
    # {unfreeze_at_epoch: N, learning_rate: x, layers: all | last_K}: unfreeze the frozen layers (FromRun, trainable:
    # false) at the start of epoch N; BatchNormalization stays frozen (cnnkit/spec/finetune.py). None: no schedule.
    "fine_tune": None,
}
# train.distribution.wait_timeout (multi_worker): seconds a worker waits for the others to start before it gives
# up with an error. Ten minutes cover a scheduler that starts pods one by one; TensorFlow alone would wait an hour
# in silence.
WAIT_TIMEOUT_S = 600

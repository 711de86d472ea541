"""The model as `cnnkit train` compiles it: the spec's layers, optimizer (with its learning-rate schedule), loss
and metrics, by their registry names (cnnkit/spec/options.py). `cnnkit time` and the benchmarks compile the same."""

from __future__ import annotations

from cnnkit.spec import options


def compiled_model(keras, spec, steps_per_epoch: int, policy: str = "float32"):
    from cnnkit.run.build import build_model

    model = build_model(spec, keras, policy)
    model.compile(
        optimizer=make_optimizer(keras, spec.train, steps_per_epoch),
        loss=loss_for(keras, spec.train["loss"]),
        metrics=[metric_for(keras, m) for m in spec.train["metrics"]],
        steps_per_execution=spec.train["steps_per_execution"],
    )
    return model


def make_optimizer(keras, train_cfg: dict, steps_per_epoch: int):
    opt = train_cfg["optimizer"]
    args = dict(opt["args"])
    schedule = train_cfg.get("lr_schedule")
    if schedule:
        entry = options.SCHEDULES[schedule["name"]]
        sched_args = dict(schedule["args"])
        total = steps_per_epoch * train_cfg["epochs"]
        if "decay_steps" in entry.args:
            sched_args.setdefault("decay_steps", total)
        if "first_decay_steps" in entry.args:
            sched_args.setdefault("first_decay_steps", total)
        if entry.keras_class != "PiecewiseConstantDecay":
            sched_args["initial_learning_rate"] = args.pop("learning_rate", 0.001)
        args["learning_rate"] = getattr(keras.optimizers.schedules, entry.keras_class)(**sched_args)
    return getattr(keras.optimizers, options.OPTIMIZERS[opt["name"]].keras_class)(**args)


def loss_for(keras, loss: dict):
    return getattr(keras.losses, options.LOSSES[loss["name"]].keras_class)(**loss["args"])


def metric_for(keras, metric: dict):
    cls = options.METRICS[metric["name"]].keras_class
    if cls == "accuracy":
        return "accuracy"  # Keras picks binary/categorical/sparse accuracy to match the loss
    return getattr(keras.metrics, cls)(**metric["args"])

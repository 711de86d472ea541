"""Device choice and the tf.distribute strategy. `hide_gpus` must run before TensorFlow is imported."""

from __future__ import annotations

import contextlib
import os

from cnnkit.errors import DeviceError

DEVICES = ("auto", "cpu", "gpu")


def hide_gpus_if_cpu(device: str) -> None:
    if device not in DEVICES:
        raise DeviceError(f"--device must be one of {', '.join(DEVICES)}. Received: {device!r}")
    if device == "cpu":
        # Only effective before TF initialises CUDA; afterwards TF would still see the GPUs.
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"


def describe(tf, device: str) -> dict:
    gpus = tf.config.list_physical_devices("GPU")
    if device == "gpu" and not gpus:
        raise DeviceError("--device gpu: TensorFlow sees no GPU on this machine",
                          hint="use --device cpu or auto; check `nvidia-smi` and the CUDA-enabled tensorflow package")
    names = [g.name for g in gpus]
    return {"requested": device, "gpus": names, "used": "gpu" if gpus and device != "cpu" else "cpu"}


def strategy_for(tf, train_cfg: dict, device_info: dict):
    """(strategy or None, description). auto: MirroredStrategy when more than one GPU is visible."""
    dist = train_cfg.get("distribution") or {"strategy": "auto"}
    name, devices = dist.get("strategy", "auto"), dist.get("devices")
    gpus = device_info["gpus"]
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 and device_info["used"] == "gpu" else "none"
    if name == "none":
        return None, "none"
    if name == "mirrored":
        if devices:
            logical = {d.name for d in tf.config.list_logical_devices()}
            missing = [d for d in devices if _device_name(d) not in logical]
            if missing:
                raise DeviceError(f"mirrored strategy: no device {', '.join(missing)}; this machine has "
                                  f"{', '.join(sorted(logical))}")
        elif not gpus:
            raise DeviceError("mirrored strategy found no GPUs to mirror over",
                              hint="list devices explicitly (train.distribution.devices) or use strategy: none")
        strategy = tf.distribute.MirroredStrategy(devices=devices)
        return strategy, f"mirrored over {strategy.num_replicas_in_sync} replicas"
    raise DeviceError(f"distribution strategy '{name}' is not available in this build of cnnkit",
                      hint="use none, auto or mirrored")


def _device_name(device: str) -> str:
    kind, _, index = device.strip("/").lower().partition(":")
    return f"/job:localhost/replica:0/task:0/device:{kind.upper()}:{index or 0}"


def scope(strategy):
    return strategy.scope() if strategy is not None else contextlib.nullcontext()

"""Device choice and the tf.distribute strategy.

Two steps sit before the TensorFlow import, because TensorFlow fixes them when it loads:
  `hide_gpus_if_cpu`   --device cpu hides the GPUs from CUDA;
  `cluster_for`        strategy multi_worker: TF_CONFIG is checked and tf-keras is selected (see below).
The rest runs after the import, before TensorFlow initialises its devices:
  `split_cpus`         mirrored over named /cpu:N devices: one logical CPU device per name;
  `describe`, `strategy_for`, `report`, `check_workers_agree`.

Why multi_worker trains on tf-keras: Keras 3's `fit()` fails under MultiWorkerMirroredStrategy
(keras-team/keras#20585, still so on TF 2.21 / Keras 3.15.1: `_maybe_symbolic_build` hands a per-replica batch
to `convert_to_tensor`, and past that `reduce_per_replica` fails). tf-keras 2.21 (Keras 2) trains the same model
in sync across workers. TensorFlow picks its Keras once, from TF_USE_LEGACY_KERAS, when `tf.keras` is first
used; the spec is parsed without TensorFlow, so `cluster_for` can set it in time. Every module keeps reaching
Keras through `tf.keras` (cnnkit.backend), so building and training stay one code path; a few small helpers branch
where tf-keras' API differs (run/workers.py, recording.nan_guard), and model files are written in Keras 3's format.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import sys
import time
from dataclasses import dataclass

from cnnkit.errors import DeviceError, WorkerLost
from cnnkit.spec.defaults import WAIT_TIMEOUT_S
from cnnkit.text import slug

DEVICES = ("auto", "cpu", "gpu")
TF_CONFIG_EXAMPLE = (
    'TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}\''
)


def hide_gpus_if_cpu(device: str) -> None:
    if device not in DEVICES:
        raise DeviceError(f"--device must be one of {', '.join(DEVICES)}. Received: {device!r}")
    if device == "cpu":
        # Only effective before TF initialises CUDA; afterwards TF would still see the GPUs.
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"


# --- multi_worker: the cluster from TF_CONFIG -------------------------------------------------------------


@dataclass(frozen=True)
class Cluster:
    """This process's place in a TF_CONFIG cluster (the jobs `chief` and `worker` only)."""

    jobs: dict  # {"chief": ["host:port"], "worker": ["host:port", ...]}, as in TF_CONFIG
    task_type: str
    task_index: int

    @property
    def size(self) -> int:
        return len(self.jobs.get("chief", [])) + len(self.jobs.get("worker", []))

    @property
    def rank(self) -> int:
        """0 for the chief; TensorFlow's own order (chief first, then the workers)."""
        return self.task_index if self.task_type == "chief" else len(self.jobs.get("chief", [])) + self.task_index

    @property
    def is_chief(self) -> bool:
        # TensorFlow's rule (multi_worker_util.is_chief): the chief task, else worker 0 when there is no chief.
        return self.rank == 0

    @property
    def task(self) -> str:
        return f"{self.task_type} {self.task_index}"

    def run_name(self, spec_name: str, spec_yaml: str) -> str:
        """The run folder's name: the same on every worker and after a restart, so a restarted cluster finds its
        unfinished run. It hashes the resolved spec and the number of workers, not their addresses: a Slurm
        requeue or a rescheduled pod may come back on other hosts and must still resume."""
        digest = hashlib.sha256(f"{self.size}\n{spec_yaml}".encode()).hexdigest()[:10]
        return f"{slug(spec_name)}-mw{self.size}-{digest}"


def cluster_for(train_cfg: dict, environ=os.environ) -> Cluster | None:
    """strategy multi_worker: this worker's Cluster from TF_CONFIG, with tf-keras selected. Otherwise None.

    Must run before TensorFlow is imported (or at least before `tf.keras` is first used)."""
    if (train_cfg.get("distribution") or {}).get("strategy") != "multi_worker":
        return None
    cluster = parse_tf_config(environ.get("TF_CONFIG"))
    # Keras 3's fit() fails under MultiWorkerMirroredStrategy (keras-team/keras#20585); tf-keras trains in sync.
    environ["TF_USE_LEGACY_KERAS"] = "1"
    return cluster


def parse_tf_config(text: str | None) -> Cluster:
    def fail(problem: str):
        raise DeviceError(
            f"strategy multi_worker: {problem}",
            hint=f"set TF_CONFIG on every worker, e.g. {TF_CONFIG_EXAMPLE} (see README, 'Distributed training')",
        )

    if text is None or not text.strip():
        fail("the TF_CONFIG environment variable is not set; it names the cluster's workers and this worker's task")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        fail(f"TF_CONFIG is not valid JSON ({err.msg} at character {err.pos})")
    if not isinstance(config, dict):
        fail(f"TF_CONFIG must be a JSON object with `cluster` and `task`. Received: {_short(config)}")
    for key in ("cluster", "task"):
        if not isinstance(config.get(key), dict):
            fail(f"TF_CONFIG has no `{key}` object. Received keys: {', '.join(map(repr, config)) or 'none'}")
    jobs = config["cluster"]
    others = sorted(set(jobs) - {"chief", "worker", "evaluator"})
    if others:
        fail(
            f"TF_CONFIG cluster has job(s) {', '.join(others)}; multi_worker trains with `chief` and `worker` "
            f"tasks only (parameter servers are a different strategy)"
        )
    for job in ("chief", "worker"):
        addresses = jobs.get(job, [])
        if not isinstance(addresses, list) or not all(isinstance(a, str) and _HOST_PORT.match(a) for a in addresses):
            fail(f'TF_CONFIG cluster.{job} must be a list of "host:port" strings. Received: {_short(addresses)}')
    if len(jobs.get("chief", [])) > 1:
        fail(f"TF_CONFIG cluster.chief may hold one address. Received: {len(jobs['chief'])}")
    if not jobs.get("worker") and not jobs.get("chief"):
        fail("TF_CONFIG cluster lists no workers")
    task = config["task"]
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in ("chief", "worker"):
        fail(f"TF_CONFIG task.type must be 'chief' or 'worker'. Received: {task_type!r}")
    count = len(jobs.get(task_type, []))
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < count:
        fail(
            f"TF_CONFIG task.index must be 0..{count - 1} (cluster.{task_type} has {count} address"
            f"{'es' if count != 1 else ''}). Received: {index!r}"
        )
    return Cluster({job: list(jobs[job]) for job in ("chief", "worker") if jobs.get(job)}, task_type, index)


_HOST_PORT = re.compile(r"^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$")


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --- after the TensorFlow import ---------------------------------------------------------------------------


def split_cpus(tf, train_cfg: dict) -> None:
    """mirrored over ["/cpu:0", "/cpu:1"]: give the one physical CPU as many logical devices as are named.

    A try-out of data parallelism on a machine without GPUs (the replicas share the same cores: no speed-up).
    TensorFlow allows this only before it initialises its devices; afterwards `strategy_for` reports the
    missing devices."""
    dist = train_cfg.get("distribution") or {}
    if dist.get("strategy") != "mirrored" or not dist.get("devices"):
        return
    wanted = 1 + max((index for kind, index in map(_parse_device, dist["devices"]) if kind == "CPU"), default=0)
    cpus = tf.config.list_physical_devices("CPU")
    if wanted < 2 or not cpus or tf.config.get_logical_device_configuration(cpus[0]):
        return
    with contextlib.suppress(RuntimeError):  # already initialised: strategy_for names what is missing
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * wanted)


def describe(tf, device: str) -> dict:
    gpus = tf.config.list_physical_devices("GPU")
    if device == "gpu" and not gpus:
        raise DeviceError(
            "--device gpu: TensorFlow sees no GPU on this machine",
            hint="use --device cpu or auto; check `nvidia-smi` and the CUDA-enabled tensorflow package",
        )
    names = [g.name for g in gpus]
    return {"requested": device, "gpus": names, "used": "gpu" if gpus and device != "cpu" else "cpu"}


def strategy_for(tf, train_cfg: dict, device_info: dict, cluster: Cluster | None = None, say=None):
    """(strategy or None, distribution facts for run.json). auto: MirroredStrategy when more than one GPU is used."""
    dist = train_cfg.get("distribution") or {"strategy": "auto"}
    name, devices = dist.get("strategy", "auto"), dist.get("devices")
    gpus = device_info["gpus"]
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 and device_info["used"] == "gpu" else "none"
    if name == "none":
        return None, {"strategy": "none", "replicas": 1, "workers": 1}
    if name == "mirrored":
        if devices:
            logical = sorted(_parse_device(d.name) for d in tf.config.list_logical_devices())
            missing = [d for d in devices if _parse_device(d) not in logical]
            if missing:
                raise DeviceError(
                    f"strategy mirrored: no device {', '.join(missing)}; TensorFlow sees "
                    f"{', '.join(f'/{kind.lower()}:{index}' for kind, index in logical)}",
                    hint="name devices this machine has (/gpu:N), or /cpu:0../cpu:N in a fresh process "
                    "(logical CPUs are made when TensorFlow starts)",
                )
        elif not gpus or device_info["used"] != "gpu":
            raise DeviceError(
                "strategy mirrored found no GPUs to mirror over",
                hint="name the devices in train.distribution.devices (e.g. ['/cpu:0', '/cpu:1'] for a "
                "CPU try-out) or use strategy: none",
            )
        strategy = tf.distribute.MirroredStrategy(devices=[_tf_name(d) for d in devices] if devices else None)
        return strategy, {
            "strategy": "mirrored",
            "replicas": strategy.num_replicas_in_sync,
            "workers": 1,
            "devices": [_short_name(d) for d in strategy.extended.worker_devices],
        }
    if name == "multi_worker":
        if cluster is None:  # train() always passes it; a library caller may not
            raise DeviceError("strategy multi_worker needs the cluster from TF_CONFIG (devices.cluster_for)")
        if not tf.keras.__name__.startswith("tf_keras"):
            raise DeviceError(
                "strategy multi_worker trains with tf-keras, but this process already loaded Keras 3",
                hint="run `cnnkit train` for multi_worker in a fresh process",
            )
        try:
            strategy = _join(tf, cluster, float(dist.get("wait_timeout") or WAIT_TIMEOUT_S), say)
        except (tf.errors.OpError, RuntimeError, ValueError) as err:
            raise DeviceError(
                f"strategy multi_worker: {cluster.task} could not join the cluster "
                f"{json.dumps(cluster.jobs)}: {_first_line(err)}",
                hint="check that this worker's port is free and every address is reachable",
            ) from None
        return strategy, {
            "strategy": "multi_worker",
            "replicas": strategy.num_replicas_in_sync,
            "workers": cluster.size,
            "task": cluster.task,
            "chief": cluster.is_chief,
        }
    raise DeviceError(
        f"distribution strategy '{name}' is not available", hint="use auto, none, mirrored or multi_worker"
    )


WAIT_LINES_S = (5, 30)  # the first "waiting for ..." line after 5 s, then one every 30 s


def _join(tf, cluster: Cluster, timeout: float, say=None):
    """MultiWorkerMirroredStrategy() without its silence. TensorFlow's constructor blocks until every worker has
    started, for up to an hour, holding the GIL (so not even a signal handler runs). So the workers first meet in
    Python: each listens on its own address and waits until every peer's address accepts a connection (a peer's
    listener, or already its TensorFlow server), naming the ones it waits for, giving up after `timeout` seconds,
    and answering Ctrl-C and SIGTERM at once. Only then does it hand its port to TensorFlow."""
    _meet_peers(cluster, timeout, say)
    return tf.distribute.MultiWorkerMirroredStrategy()


def _meet_peers(cluster: Cluster, timeout: float, say=None) -> None:
    own = cluster.jobs[cluster.task_type][cluster.task_index]
    host, _, port = own.rpartition(":")
    family = socket.AF_INET6 if host.startswith("[") else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("", int(port)))
        listener.listen(64)  # never accepted: a peer's connect is all it needs; close() resets them
    except OSError as err:
        listener.close()
        raise DeviceError(
            f"strategy multi_worker: {cluster.task} cannot listen on {own}: {err.strerror or err}",
            hint="check that this worker's port is free (another cnnkit or TensorFlow process may hold it)",
        ) from None
    try:
        started = time.monotonic()
        first, every = WAIT_LINES_S
        next_line = first
        while True:
            awaited = _awaited(cluster)
            if not awaited:
                return
            waited = time.monotonic() - started
            if waited >= timeout:
                raise DeviceError(
                    f"strategy multi_worker: {cluster.task} gave up after {timeout:g} s waiting for {awaited}",
                    hint="start every worker in TF_CONFIG (same command, own task index), or raise "
                    "train.distribution.wait_timeout",
                )
            if waited >= next_line and say is not None:
                say(f"waiting for {awaited} … {int(waited)} s")
                next_line += every if next_line >= every else every - first
            time.sleep(0.25)
    finally:
        listener.close()


def _awaited(cluster: Cluster) -> str:
    """The workers whose address does not accept a connection yet ("worker 1 at host2:12345")."""
    missing = []
    for job in ("chief", "worker"):
        for index, address in enumerate(cluster.jobs.get(job, [])):
            if (job, index) == (cluster.task_type, cluster.task_index):
                continue
            host, _, port = address.rpartition(":")
            try:
                with socket.create_connection((host.strip("[]"), int(port)), timeout=0.5):
                    pass
            except OSError:
                missing.append(f"{job} {index} at {address}")
    return ", ".join(missing)


def report(distribution: dict, batch_size: int) -> tuple[dict, str]:
    """run.json's `distribution` and the line printed when training starts.

    `batch_size` stays the global batch: each step splits it over the replicas. cnnkit does not scale the learning
    rate with the replicas (the linear-scaling rule is a recipe, not a law): the run reports what it used."""
    replicas = distribution["replicas"]
    per_replica = batch_size / replicas
    info = {
        **distribution,
        "global_batch": batch_size,
        "per_replica_batch": int(per_replica) if per_replica.is_integer() else round(per_replica, 2),
        "learning_rate_scaled": False,
    }
    where = {
        "mirrored": lambda d: f"mirrored over {replicas} replicas ({', '.join(d['devices'])})",
        "multi_worker": lambda d: (
            f"multi_worker: {d['task']} of {d['workers']} workers"
            f"{' (chief)' if d['chief'] else ''}, {replicas} replicas in sync"
        ),
    }
    text = where.get(distribution["strategy"], lambda d: "no distribution strategy")(distribution)
    line = f"{text}: global batch {batch_size} = {info['per_replica_batch']} per replica; learning rate not scaled"
    return info, line


def check_workers_agree(
    tf, strategy, workers: int, facts: dict[str, int], hints: dict[str, str], chief_facts: dict[str, int] | None = None
) -> dict[str, int]:
    """MultiWorkerMirroredStrategy only checks tensor shapes. Workers started with different specs or data, or a
    restarted worker that cannot see the chief's backup, would train apart silently or deadlock. One all-gather
    before training compares what every worker has, so all of them raise the same error; it also hands every
    worker the chief's `chief_facts` (returned), for decisions only the chief can make."""
    chief_facts = chief_facts or {}
    names = list(facts) + list(chief_facts)
    local = tf.constant([[{**facts, **chief_facts}[name] for name in names]], dtype=tf.int64)
    # In a tf.function: TensorFlow warns that eager collectives are slow.
    seen = tf.function(lambda: strategy.gather(strategy.run(tf.identity, args=(local,)), axis=0))().numpy()
    per_worker = max(1, len(seen) // workers)  # replicas are numbered worker by worker, the chief's first
    for column, name in enumerate(facts):
        values = seen[::per_worker, column]
        if (values != values[0]).any():
            by_worker = ", ".join(f"worker {i}: {int(v)}" for i, v in enumerate(values))
            raise DeviceError(
                f"strategy multi_worker: the workers disagree on {name} ({by_worker})", hint=hints.get(name)
            )
    return {name: int(seen[0, len(facts) + i]) for i, name in enumerate(chief_facts)}


def scope(strategy):
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


# --- device names -------------------------------------------------------------------------------------------


def _parse_device(device: str) -> tuple[str, int]:
    """'/cpu:1', 'GPU:0', '/device:CPU:1', '/job:localhost/replica:0/task:0/device:CPU:1' -> ('CPU', 1)."""
    match = re.fullmatch(
        r"(?:/job:\w+/replica:\d+/task:\d+)?/?(?:device:)?(cpu|gpu)(?::(\d+))?", device.strip(), flags=re.I
    )
    if not match:
        raise DeviceError(
            f"train.distribution.devices: {device!r} is not a device name",
            hint="use names such as /gpu:0, /gpu:1 or /cpu:0, /cpu:1",
        )
    return match.group(1).upper(), int(match.group(2) or 0)


def _tf_name(device: str) -> str:
    kind, index = _parse_device(device)
    return f"/device:{kind}:{index}"


def _short_name(full: str) -> str:
    return full.rsplit("device:", 1)[-1]


def _first_line(err: BaseException) -> str:
    text = getattr(err, "message", None) or str(err)
    return text.strip().splitlines()[0] if text.strip() else type(err).__name__


def weights_sha256(model) -> str:
    """A fingerprint of the trained weights (every array's bytes, in order): equal on all workers of a
    multi-worker run, and recorded in run.json so two runs can be compared without loading them."""
    digest = hashlib.sha256()
    for array in model.get_weights():
        digest.update(array.tobytes())
    return digest.hexdigest()


def lost_worker(err: BaseException):
    """The TensorFlow error a worker gets when a peer of a multi-worker run goes away, as a WorkerLost; else None.

    TF 2.21's MultiWorkerMirroredStrategy runs TF's coordination service: a peer whose process dies is noticed at
    once (its connections drop) and a silent one after its heartbeats stop (10 s); the collectives of every
    other worker are then aborted with UnavailableError, so no worker hangs waiting for a dead one."""
    tf = sys.modules.get("tensorflow")
    if tf is None or not isinstance(err, tf.errors.OpError):
        return None
    text = getattr(err, "message", "") or str(err)
    peer_errors = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError)
    if not isinstance(err, peer_errors) and not any(m in text for m in _PEER_MARKS):
        return None
    tasks = []
    for job, index in re.findall(_PEER_TASK, text):
        if f"{job} {index}" not in tasks:
            tasks.append(f"{job} {index}")
    reason = (
        next((why for mark, why in _PEER_REASONS if mark in text), None)
        or re.sub(r"^\{\{[^}]*\}\}\s*", "", text.strip().splitlines()[0])[:200]
    )
    return WorkerLost(
        f"strategy multi_worker: lost contact with {' and '.join(tasks) or 'another worker'} "
        f"({reason}); this worker cannot go on alone",
        hint="restart every worker with the same command: training continues from the last completed epoch",
    )


_PEER_TASK = r"(?:unhealthy|remote target|reported from)[^/]*/job:(\w+)(?:/replica:\d+)?/task:(\d+)"
_PEER_MARKS = ("Collective ops is aborted", "unhealthy", "heartbeat", "coordination service")
_PEER_REASONS = (
    ("stopped sending heartbeats", "it stopped sending heartbeats"),
    ("Connection reset", "its connection was reset"),
    ("Socket closed", "its connection closed"),
    ("failed to connect", "it cannot be reached"),
    ("Deadline Exceeded", "it did not answer in time"),
)

"""tf.distribute: mirrored over logical CPUs, multi_worker across localhost processes, a worker killed mid-run,
and the errors for a missing or malformed TF_CONFIG.

Training runs in subprocesses (`python -m cnnkit train`): logical CPUs and the tf-keras switch of multi_worker
must happen before TensorFlow starts, and a worker is a process of its own. Every subprocess has a timeout, so a
hung cluster fails the test instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cnnkit.cli import app
from cnnkit.errors import DeviceError
from cnnkit.run.devices import parse_tf_config

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300
runner = CliRunner()


def _env(tmp_path: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", "TF_USE_LEGACY_KERAS")}
    # TMPDIR: a worker's scratch folder must be gone when it exits; the test looks there.
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return {**env, "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp_path / "tmp"), **extra}


def _train_args(spec: str, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cnnkit",
        "train",
        str(ROOT / "configs" / spec),
        "--device",
        "cpu",
        "--no-pictures",
        *args,
    ]


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _tf_config(ports: list[int], index: int) -> str:
    return json.dumps(
        {"cluster": {"worker": [f"localhost:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}
    )


class Cluster:
    """Worker processes on localhost, each logging to its own file; stop() kills whatever is still running."""

    def __init__(self, tmp_path: Path, ports: list[int]):
        self.tmp_path, self.ports, self.procs, self.logs = tmp_path, ports, {}, {}

    def start(self, index: int, args: list[str], tag: str = "") -> None:
        log = self.tmp_path / f"worker{index}{tag}.log"
        self.logs[index] = log
        with open(log, "w") as handle:
            self.procs[index] = subprocess.Popen(
                args,
                cwd=self.tmp_path,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=_env(self.tmp_path, TF_CONFIG=_tf_config(self.ports, index)),
            )

    def wait(self, index: int, deadline: float) -> int:
        try:
            return self.procs[index].wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail(f"worker {index} still running after {TIMEOUT_S} s:\n{self.output(index)}")

    def output(self, index: int) -> str:
        return self.logs[index].read_text()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def cluster(tmp_path):
    workers = Cluster(tmp_path, _free_ports(2))
    yield workers
    workers.stop()


def _sha(output: str) -> str:
    found = re.findall(r"^weights sha256: ([0-9a-f]{64})$", output, flags=re.M)
    assert len(found) == 1, output
    return found[0]


# --- mirrored ---------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.data
def test_mirrored_over_two_logical_cpus_matches_single_device(tmp_path):
    """The notes' MNIST net, 1 epoch on 4,000 samples (50 steps; Adam at 0.003 so that few reach the band, ~0.95):
    one device, then mirrored over /cpu:0 and /cpu:1 (one CPU split in two logical devices). Both land in the
    same accuracy band: the global batch of 64 is split 32 + 32 and the gradients are summed, so it is the same
    training up to float reduction order."""
    data_dir = os.environ.get("CNNKIT_DATA_DIR")
    if not data_dir or not (Path(data_dir) / "mnist.npz").exists():
        pytest.skip("CNNKIT_DATA_DIR with mnist.npz not set: point it at ../shared/data (make test does)")
    common = ["--epochs", "1", "--set", "data.max_samples=4000", "--data-dir", data_dir]
    common += ["--set", "train.optimizer={name: adam, learning_rate: 0.003}"]
    accuracy = {}
    two_cpus = ["--strategy", "mirrored", "--set", "train.distribution.devices=[/cpu:0, /cpu:1]"]
    for name, extra in (("single", ["--strategy", "none"]), ("mirrored", two_cpus)):
        out = tmp_path / name
        result = subprocess.run(
            _train_args("mnist.yaml", *common, *extra, "--out", str(out)),
            cwd=tmp_path,
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        run = json.loads((out / "latest" / "run.json").read_text())
        accuracy[name] = json.loads((out / "latest" / "metrics.json").read_text())["test"]["accuracy"]
        if name == "mirrored":
            assert (
                "mirrored over 2 replicas (CPU:0, CPU:1): global batch 64 = 32 per replica; learning rate not scaled"
            ) in result.stdout
            assert run["distribution"] == {
                "strategy": "mirrored",
                "replicas": 2,
                "workers": 1,
                "devices": ["CPU:0", "CPU:1"],
                "global_batch": 64,
                "per_replica_batch": 32,
                "learning_rate_scaled": False,
            }
    assert min(accuracy.values()) > 0.94, accuracy
    assert abs(accuracy["single"] - accuracy["mirrored"]) < 0.03, accuracy


# --- multi_worker -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_two_workers_train_in_sync_and_only_the_chief_writes(tmp_path, cluster):
    """2 epochs of digits on 2 localhost workers. Worker 1 gets its own --out, as on a second machine without a
    shared filesystem: it must leave nothing there (nor in its TMPDIR)."""
    deadline = time.monotonic() + TIMEOUT_S
    chief_out, other_out = tmp_path / "runs", tmp_path / "elsewhere"
    for index, out in enumerate((chief_out, other_out)):
        cluster.start(
            index, _train_args("digits.yaml", "--epochs", "2", "--strategy", "multi_worker", "--out", str(out))
        )
    codes = [cluster.wait(i, deadline) for i in (0, 1)]
    assert codes == [0, 0], cluster.output(0) + cluster.output(1)
    chief, other = cluster.output(0), cluster.output(1)
    assert "multi_worker: worker 0 of 2 workers (chief), 2 replicas in sync: global batch 32 = 16 per replica" in chief
    assert "multi_worker: worker 1 of 2 workers, 2 replicas in sync" in other

    run_dir = (chief_out / "latest").resolve()
    run = json.loads((run_dir / "run.json").read_text())
    assert _sha(chief) == _sha(other) == run["weights_sha256"]
    assert run["status"] == "completed" and run["epochs_run"] == 2 and run["keras"].startswith("tf-keras ")
    assert run["distribution"]["workers"] == 2 and run["distribution"]["per_replica_batch"] == 16
    assert sorted(p.name for p in chief_out.iterdir()) == sorted(["latest", run_dir.name])
    assert not (run_dir / "checkpoint").exists()
    assert not other_out.exists() and not any((tmp_path / "tmp").iterdir())

    # The chief's model files are Keras 3 files: evaluate (Keras 3, safe loading) reads them as any run's.
    result = runner.invoke(app, ["evaluate", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["accuracy"] == pytest.approx(
        json.loads((run_dir / "metrics.json").read_text())["test"]["accuracy"], abs=1e-6
    )


# --- errors -----------------------------------------------------------------------------------------------

HINT = (
    '(hint: set TF_CONFIG on every worker, e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", '
    '"host2:12345"]}, "task": {"type": "worker", "index": 0}}\' (see README, \'Distributed training\'))'
)


def test_multi_worker_without_tf_config_is_one_clear_line(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    result = runner.invoke(app, ["train", "configs/digits.yaml", "--strategy", "multi_worker"])
    assert result.exit_code == 2
    assert result.output == (
        "Error: strategy multi_worker: the TF_CONFIG environment variable is not set; it "
        f"names the cluster's workers and this worker's task {HINT}\n"
    )
    assert "TF_USE_LEGACY_KERAS" not in os.environ or os.environ["TF_USE_LEGACY_KERAS"] != "1"


@pytest.mark.parametrize(
    "tf_config, problem",
    [
        (
            "{cluster: 1}",
            "TF_CONFIG is not valid JSON (Expecting property name enclosed in double quotes at character 1)",
        ),
        ("[1, 2]", "TF_CONFIG must be a JSON object with `cluster` and `task`. Received: [1, 2]"),
        ('{"task": {"type": "worker", "index": 0}}', "TF_CONFIG has no `cluster` object. Received keys: 'task'"),
        ('{"cluster": {"worker": ["a:1"]}}', "TF_CONFIG has no `task` object. Received keys: 'cluster'"),
        (
            '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}',
            "TF_CONFIG task.index must be 0..1 (cluster.worker has 2 addresses). Received: 2",
        ),
        (
            '{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}',
            "TF_CONFIG task.type must be 'chief' or 'worker'. Received: 'ps'",
        ),
        (
            '{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}',
            'TF_CONFIG cluster.worker must be a list of "host:port" strings. Received: ["a"]',
        ),
        (
            '{"cluster": {"worker": ["a:1"], "ps": ["b:1"]}, "task": {"type": "worker", "index": 0}}',
            "TF_CONFIG cluster has job(s) ps; multi_worker trains with `chief` and `worker` tasks only (parameter "
            "servers are a different strategy)",
        ),
        ('{"cluster": {}, "task": {"type": "worker", "index": 0}}', "TF_CONFIG cluster lists no workers"),
    ],
)
def test_malformed_tf_config_says_what_is_wrong(tf_config, problem):
    with pytest.raises(DeviceError) as caught:
        parse_tf_config(tf_config)
    assert str(caught.value) == f"strategy multi_worker: {problem} {HINT}"


def test_tf_config_chief_rule_and_run_name():
    chief = parse_tf_config(
        '{"cluster": {"chief": ["c:1"], "worker": ["a:1", "b:1"]}, "task": {"type": "chief", "index": 0}}'
    )
    worker0 = parse_tf_config(
        '{"cluster": {"chief": ["c:1"], "worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}'
    )
    assert (chief.is_chief, worker0.is_chief, chief.size, worker0.rank) == (True, False, 3, 1)
    no_chief = parse_tf_config('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}')
    moved = parse_tf_config('{"cluster": {"worker": ["x:2", "y:2"]}, "task": {"type": "worker", "index": 1}}')
    assert no_chief.is_chief and not moved.is_chief
    # Same spec, same number of workers: the same folder, even on other hosts (a requeued job resumes).
    assert no_chief.run_name("my net", "a: 1\n") == moved.run_name("my net", "a: 1\n")
    assert no_chief.run_name("my net", "a: 1\n").startswith("my-net-mw2-")
    assert no_chief.run_name("my net", "a: 2\n") != moved.run_name("my net", "a: 1\n")


@pytest.mark.slow
def test_a_keras3_only_argument_under_multi_worker_is_refused_before_any_folder(tmp_path):
    """A one-worker cluster is enough: tf-keras cannot build LeakyReLU(negative_slope=...) (Keras 2 calls it alpha)."""
    spec = (
        (ROOT / "configs" / "digits.yaml")
        .read_text()
        .replace("  - Flatten\n", "  - LeakyReLU: {negative_slope: 0.1}\n  - Flatten\n")
    )
    (tmp_path / "leaky.yaml").write_text(spec)
    args = _train_args("digits.yaml", "--strategy", "multi_worker", "--out", str(tmp_path / "runs"))
    args[4] = str(tmp_path / "leaky.yaml")
    result = subprocess.run(
        args,
        cwd=tmp_path,
        env=_env(tmp_path, TF_CONFIG=_tf_config(_free_ports(1), 0)),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert (
        f"Error: strategy multi_worker trains with tf-keras {version('tf-keras')}, which cannot build this "
        "spec: ('Keyword argument not understood:', 'negative_slope') (hint: use layers and arguments tf-keras "
        "(Keras 2) has, or train with strategy none/mirrored)"
    ) in result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow  # asks TensorFlow for its devices
def test_mirrored_without_gpus_or_named_devices_is_a_clear_error():
    result = runner.invoke(
        app,
        [
            "train",
            "configs/digits.yaml",
            "--strategy",
            "mirrored",
            "--device",
            "cpu",
            "--no-pictures",
            "--out",
            "/nonexistent/never-written",
        ],
    )
    assert result.exit_code == 2
    assert result.output == (
        "Error: strategy mirrored found no GPUs to mirror over (hint: name the devices in "
        "train.distribution.devices (e.g. ['/cpu:0', '/cpu:1'] for a CPU try-out) or use strategy: none)\n"
    )


@pytest.mark.slow  # asks TensorFlow for its devices
def test_mirrored_over_a_device_that_is_not_there():
    result = runner.invoke(
        app,
        [
            "train",
            "configs/digits.yaml",
            "--strategy",
            "mirrored",
            "--device",
            "cpu",
            "--set",
            "train.distribution.devices=[/gpu:0, /gpu:1]",
            "--no-pictures",
        ],
    )
    assert result.exit_code == 2
    assert result.output.startswith("Error: strategy mirrored: no device /gpu:0, /gpu:1; TensorFlow sees /cpu:0")


@pytest.mark.slow
def test_a_worker_without_its_peer_says_who_it_waits_for_and_gives_up(tmp_path, cluster):
    """Worker 1 never comes: worker 0 names it while waiting, gives up after train.distribution.wait_timeout with
    one line, and a second try answers SIGTERM at once (TensorFlow alone would wait an hour, deaf to signals)."""
    deadline = time.monotonic() + TIMEOUT_S
    args = _train_args(
        "digits.yaml", "--strategy", "multi_worker", "--set", "train.distribution.wait_timeout=8", "--out", "runs"
    )
    cluster.start(0, args)
    assert cluster.wait(0, deadline) == 2, cluster.output(0)
    peer = f"localhost:{cluster.ports[1]}"
    lines = cluster.output(0).splitlines()
    assert f"waiting for worker 1 at {peer} … 5 s" in lines, lines
    assert lines[-1] == (
        f"Error: strategy multi_worker: worker 0 gave up after 8 s waiting for worker 1 at {peer} (hint: start "
        "every worker in TF_CONFIG (same command, own task index), or raise train.distribution.wait_timeout)"
    )
    assert not (tmp_path / "runs").exists()  # no run folder for a run that never started

    cluster.start(0, args, tag="-sigterm")
    while "waiting for worker 1" not in cluster.output(0):
        assert time.monotonic() < deadline and cluster.procs[0].poll() is None, cluster.output(0)
        time.sleep(0.05)
    sent = time.monotonic()
    cluster.procs[0].terminate()
    assert cluster.wait(0, deadline) == 143 and time.monotonic() - sent < 3, cluster.output(0)
    assert cluster.output(0).splitlines()[-1] == "Error: interrupted"


def _checkpoint_write_seen(out: Path) -> bool:
    return any(out.glob("*/checkpoint/.*.tmp"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "victim, moment",
    [
        (1, "start-up"),  # 1 s after both started: before the workers met
        (1, "just after the chief's epoch 1 line"),
        (1, "mid-epoch 2"),
        (0, "during a checkpoint write"),  # the chief, while a checkpoint file is half-written under a temp name
        (1, "just after the last epoch"),  # model files and the test evaluation
    ],
)
def test_one_restart_after_a_worker_dies_at_any_moment_completes_in_sync(victim, moment, tmp_path, cluster):
    """Every worker takes its decisions (epoch, history, best model) from the chief's checkpoint, so both
    restarted workers agree, and the run completes in ONE restart with identical weights and no temp files.

    Mid-epoch 2 (worker 1 killed once the chief has backed up epoch 1) also pins what the user sees: the chief
    stops within a minute with WorkerLost (exit 138, the retryable code of Kubeflow's training operator) instead
    of hanging, run.json says so, and the restart (the same command, as a scheduler would) continues from
    epoch 2 rather than starting over."""
    deadline = time.monotonic() + TIMEOUT_S
    out = tmp_path / "runs"
    args = _train_args("digits.yaml", "--epochs", "3", "--strategy", "multi_worker", "--out", str(out))
    for index in (0, 1):
        cluster.start(index, args)

    def until(condition) -> None:
        while not condition():
            assert time.monotonic() < deadline and cluster.procs[0].poll() is None, cluster.output(0)
            time.sleep(0.005)

    if moment == "start-up":
        time.sleep(1.0)
    elif moment == "just after the chief's epoch 1 line":
        until(lambda: "epoch 1/3" in cluster.output(0))
        time.sleep(0.2)
    elif moment == "just after the last epoch":
        until(lambda: "epoch 3/3" in cluster.output(0))
    elif moment == "mid-epoch 2":
        until(lambda: list(out.glob("*/checkpoint/manifest.json")))
        time.sleep(0.3)
    else:
        until(lambda: _checkpoint_write_seen(out) or "epoch 2/3" in cluster.output(0))
    cluster.procs[victim].kill()
    killed = time.monotonic()
    survivor = 1 - victim
    if moment == "start-up":
        # The survivor waits for its peer (up to train.distribution.wait_timeout), naming it; a scheduler
        # restarting the job restarts both.
        while "waiting for worker" not in cluster.output(survivor):
            assert time.monotonic() < deadline and cluster.procs[survivor].poll() is None, cluster.output(survivor)
            time.sleep(0.05)
        cluster.procs[survivor].terminate()
        assert cluster.wait(survivor, deadline) == 143
    elif moment == "just after the last epoch":
        # The chief may finish on its own (nothing collective left) or notice the lost peer: either way the
        # restart below must complete the same run.
        code = cluster.wait(survivor, deadline)
        assert code in (0, 138), cluster.output(survivor)
        if code == 0:  # the chief completed the run by itself: a restart would (truthfully) say so and stop
            run = json.loads(((out / "latest").resolve() / "run.json").read_text())
            assert run["status"] == "completed" and run["weights_sha256"] == _sha(cluster.output(0))
            cluster.procs.clear()
            for index in (0, 1):
                cluster.start(index, args, tag="-restarted")
            assert [cluster.wait(i, deadline) for i in (0, 1)] == [2, 2]
            assert all("already holds this spec's completed run" in cluster.output(i) for i in (0, 1))
            return
    else:
        assert cluster.wait(survivor, deadline) == 138, cluster.output(survivor)  # lost contact with its peer
    if moment == "mid-epoch 2":
        assert time.monotonic() - killed < 60  # TF's coordination service: heartbeats stop -> collectives abort
        assert "Error: strategy multi_worker: lost contact with worker 1" in cluster.output(0)
        assert json.loads(((out / "latest").resolve() / "run.json").read_text())["status"] == "failed: worker lost"

    cluster.procs.clear()
    for index in (0, 1):
        cluster.start(index, args, tag="-restarted")
    codes = [cluster.wait(i, deadline) for i in (0, 1)]
    assert codes == [0, 0], f"{moment}:\n" + cluster.output(0) + cluster.output(1)
    run_dir = (out / "latest").resolve()
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "completed" and run["epochs_run"] == 3
    if moment == "mid-epoch 2":
        assert "epoch 1/3" not in cluster.output(0) and "epoch 3/3" in cluster.output(0)  # from the checkpoint
        assert len(run["resumed"]) == 1
        assert all(len(values) == 3 for values in json.loads((run_dir / "history.json").read_text()).values())
    assert _sha(cluster.output(0)) == _sha(cluster.output(1)) == run["weights_sha256"]
    assert not (run_dir / "checkpoint").exists()
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".")]  # no temp files left behind
    # Nor a non-chief scratch folder, even one a SIGKILLed worker left (the restart removes it). TensorFlow's own
    # temp files in TMPDIR after a fault are not checked here.
    left = [p.name for p in (tmp_path / "tmp").glob("cnnkit-worker-*")]
    assert not left, left

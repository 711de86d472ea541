"""multi_worker runs, which train on tf-keras (see cnnkit/run/devices.py for why): the few places where tf-keras'
API differs from Keras 3's, and the run-folder rules of a cluster (the chief writes the run folder, other workers
write nothing that outlives them)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

from cnnkit.backend import is_tf_keras, keras_version
from cnnkit.errors import RunError, SpecError
from cnnkit.run import checkpoint, devices
from cnnkit.run.folder import new_run_dir, read_json, unwritable


def shared_run(cluster, out: Path, spec, resume_dir: Path | None):
    """(the run folder every worker names alike, the folder to continue, its run.json).

    A restarted cluster finds its unfinished run under the same name and continues it from the chief's checkpoint,
    which every worker reads. Only the chief continues a folder; a completed one is refused after all workers have met
    (check_cluster), so that no worker waits for a chief that has already left."""
    shared = resume_dir or Path(out) / cluster.run_name(spec.name, spec.resolved_yaml())
    if not cluster.is_chief:
        return shared, None, {}
    previous = read_json(shared / "run.json")
    if previous is None or not (shared / "spec.yaml").exists():
        return shared, None, {}
    return shared, shared, previous


def run_dir_for(out: Path, name: str, cluster, shared_dir: Path | None, cleanup: contextlib.ExitStack) -> Path:
    if cluster is None:
        return new_run_dir(out, name)
    if cluster.is_chief:
        try:
            shared_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise unwritable(shared_dir, err) from None
        return shared_dir
    # A non-chief worker runs the same code into a scratch folder that goes when train() returns; it writes no
    # checkpoint. The empty folders naming the shared run (when --out is not shared with the chief) go too.
    made = [d for d in (shared_dir, Path(out)) if not d.exists()]
    cleanup.callback(_remove_empty, made)
    # Named after the run and the task, so a restart removes what a killed predecessor (SIGKILL) left behind.
    scratch = Path(tempfile.gettempdir()) / f"cnnkit-worker-{shared_dir.name}-{cluster.task_type}{cluster.task_index}"
    shutil.rmtree(scratch, ignore_errors=True)
    cleanup.callback(shutil.rmtree, scratch, ignore_errors=True)
    try:
        (scratch / "run").mkdir(parents=True)
    except OSError as err:
        raise unwritable(scratch, err) from None
    return scratch / "run"


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        with contextlib.suppress(OSError):  # not empty (the chief's, on a shared filesystem) or already gone
            folder.rmdir()


def check_cluster(tf, strategy, cluster, spec, splits, shared_dir: Path, previous: dict, manifest) -> None:
    import hashlib

    saved = "the checkpoint (epoch, finished)"
    facts = {
        "the spec": int(hashlib.sha256(spec.resolved_yaml().encode()).hexdigest()[:12], 16),
        "the number of training samples": len(splits.x_train),
        # Every worker must have read the same manifest: the same epoch, history and best value.
        saved: int(manifest["epoch"]) * 2 + bool(manifest.get("finished")) if manifest else -1,
    }
    hints = {
        "the spec": "start every worker with the same spec file and --set values",
        "the number of training samples": "give every worker the same dataset (data.* and --data-dir)",
        saved: f"a restarted run continues from the chief's checkpoint in {shared_dir / checkpoint.FOLDER}: put "
        f"--out on a filesystem all workers share",
    }
    chief = devices.check_workers_agree(
        tf, strategy, cluster.size, facts, hints, chief_facts={"completed": int(previous.get("status") == "completed")}
    )
    if chief["completed"]:
        raise RunError(
            f"{shared_dir} already holds this spec's completed run on {cluster.size} workers",
            hint="pass another --out (or --seed) to train again, or remove that folder",
        )


@contextlib.contextmanager
def tf_keras_limits(keras):
    """Under tf-keras a Keras-3-only layer, argument, loss or optimizer fails with a bare TypeError/ValueError."""
    try:
        yield
    except (TypeError, ValueError, AttributeError) as err:
        if not is_tf_keras(keras):
            raise
        raise SpecError(
            f"strategy multi_worker trains with tf-keras {keras_version(keras).split()[-1]}, which cannot "
            f"build this spec: {err}",
            hint="use layers and arguments tf-keras (Keras 2) has, or train with strategy none/mirrored",
        ) from None

"""Typed errors. Library code raises these; only cli.py prints them and exits.

Every message is one line a user can act on: where (file:line and field path),
what was expected, what was received, and a hint where one exists.
"""

from __future__ import annotations


class CnnkitError(Exception):
    """Base class: a user-facing problem (exit code 2), never a bug."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message + (f" (hint: {self.hint})" if self.hint else "")


class SpecError(CnnkitError):
    """A problem in a spec file: carries the file, line and field path."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        path: str | None = None,
        hint: str | None = None,
    ):
        self.file, self.line, self.path = file, line, path
        where = ""
        if file:
            where = f"{file}:{line}: " if line else f"{file}: "
        field = f"{path}: " if path else ""
        super().__init__(f"{where}{field}{message}", hint)


class DataError(CnnkitError):
    """A dataset that cannot be found, read, or does not fit the spec."""


class ModelFileError(CnnkitError):
    """A model file that is missing, not a .keras zip, or refused as unsafe."""


class RunError(CnnkitError):
    """A run folder that is missing or incomplete (e.g. for --resume or evaluate)."""


class DeviceError(CnnkitError):
    """A requested device or distribution strategy that this machine cannot give."""


class TrainingDiverged(CnnkitError):
    """The loss became NaN/inf; the last good checkpoint was kept."""

    exit_code = 3


class ParityError(CnnkitError):
    """An exported model (SavedModel, .tflite, .onnx) does not compute what the trained .keras model computes, within
    the documented tolerance. The artefact and its export.json are kept, for a look at what differs."""

    exit_code = 4


class MissingDependency(CnnkitError):
    """An optional package (an extra such as cnnkit[export]) is needed and not installed."""


class Interrupted(CnnkitError):
    """Ctrl-C during training: the last completed epoch is saved; resume with --resume."""

    exit_code = 130


class WorkerLost(DeviceError):
    """multi_worker: another worker stopped (killed, crashed, unreachable), so this one cannot go on alone.
    Restarting every worker with the same command continues the run from its last completed epoch."""

    # 138 (128 + SIGUSR1) is the exit code Kubeflow's training operator reserves for user-defined retryable
    # errors (restartPolicy: ExitCode restarts the pod); OnFailure and Slurm's --requeue restart on any failure.
    exit_code = 138

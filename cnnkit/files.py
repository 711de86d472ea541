"""Writing files so that a reader (or a kill) never sees half of one: the one atomic write every module uses.

Below every sub-package: imports only the standard library and cnnkit.errors.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

from cnnkit.errors import RunError

_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK  # what open() would give: mkstemp's 0600 would hide run files from others


def atomic_write(path: Path, data: str | bytes | Callable[[BinaryIO], object]) -> Path:
    """Write to a temp file in the same folder, fsync, then rename: readers never see half a file.

    `data` is the content, or a function that writes it to the open binary file (a figure's savefig).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise unwritable(path, err) from None
    try:
        os.chmod(tmp, FILE_MODE)  # mkstemp makes 0600; run files are ordinary files
        with os.fdopen(fd, "wb") as handle:
            if callable(data):
                data(handle)
            else:
                handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise unwritable(path, err) from None
        raise
    return path


def unwritable(path: Path, err: OSError) -> RunError:
    """A full disk, a read-only folder...: one line naming the file, not a traceback."""
    return RunError(
        f"cannot write {path}: {err.strerror or err}", hint="free disk space or check the folder's permissions"
    )

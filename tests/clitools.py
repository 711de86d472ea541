"""Helpers the test files share (pytest puts tests/ on sys.path): running the CLI in-process, the tiny spec most
training tests start from, and the checks many of them make on what a command answered or drew."""

from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from cnnkit.cli import app

# A small conv net on the offline digits (1,797 8x8 images): an epoch takes well under a second. Files that need
# a variant derive it with str.replace, so what differs from this net is visible at the call site.
TINY = """\
name: tiny
input_shape: [8, 8, 1]
layers:
  - Conv2D: {filters: 8, kernel_size: 3, padding: same, activation: relu}
  - MaxPooling2D: {pool_size: 2}
  - Flatten
  - Dense: {units: 10, activation: softmax}
data: {dataset: digits}
train: {optimizer: {name: adam, learning_rate: 0.01}, epochs: 3, batch_size: 32}
"""


def cli(*args, ok: bool = True):
    """Invoke `cnnkit ARGS...`; with ok=True a non-zero exit fails the test with the output."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    if ok and result.exit_code != 0:
        raise AssertionError(f"exit {result.exit_code}\n{result.output}") from result.exception
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback is never a user-facing answer
    return result


def refused(*args) -> str:
    """The stderr of a command that must fail with exit code 2, nothing on stdout and one line on stderr."""
    result = cli(*args, ok=False)
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


def assert_picture(path: Path) -> None:
    """A PNG that is not a blank canvas."""
    with Image.open(path) as img:
        assert img.format == "PNG"
        grey = np.asarray(img.convert("L"), dtype=np.float64)
    assert grey.std() > 3, f"{path.name} looks blank"


def write_spec(folder: Path, text: str, name: str = "spec.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def train(spec: Path, out: Path, *args) -> Path:
    """`cnnkit train SPEC --no-pictures --out OUT ARGS...`; returns the run folder (OUT/latest, resolved)."""
    cli("train", spec, "--no-pictures", "--out", out, *args)
    return (out / "latest").resolve()

"""Draw the pictures that need no model in a second process while `cnnkit train` draws the ones that do.

After training, a run's pictures cost ~5 CPU-seconds of matplotlib, all on one core, while the machine's other cores
sit idle and the user waits. The curves, the confusion matrix and the misclassified grid need only arrays, so a child
process (`python -m cnnkit.viz.side_process`) draws them while the parent runs Grad-CAM through the model and draws
the filters and feature maps (the filter mosaic could go either way; in the parent, both finish at about the same
time). The child is started first, so that its Python and matplotlib imports (~1 s) overlap the parent's own work.

The job goes over as one .npz file (no pickle: the child loads it with allow_pickle=False) holding the arrays and a
JSON list of what to draw. If the child cannot start or fails, the parent draws the same pictures itself, so no
picture is lost and an error in a drawing surfaces exactly as when everything was drawn in one process.

No TensorFlow here or in the child (an import contract in pyproject.toml): the child starts in about a second.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from cnnkit.viz import plots

# What the child may draw: a name in the job selects one of these, never arbitrary code.
DRAWERS: dict[str, Callable[..., Path]] = {
    "curves": plots.plot_curves,
    "confusion": plots.plot_confusion,
    "mistakes": plots.plot_mistakes,
    "filters": plots.plot_filters,
}
JOB_KEY = "job.json"
WAIT_S = 600  # a child that has not finished by then is stopped, and the parent draws its pictures itself


@dataclass
class Drawing:
    """One picture: DRAWERS[kind](**arrays, **options, out_path=out). `options` must be JSON-serialisable."""

    kind: str
    out: Path
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    options: dict = field(default_factory=dict)

    def draw(self) -> Path:
        return DRAWERS[self.kind](**self.arrays, **self.options, out_path=self.out)


def write_job(drawings: list[Drawing], path: Path) -> Path:
    arrays = {f"{i}/{name}": np.asarray(a) for i, d in enumerate(drawings) for name, a in d.arrays.items()}
    listing = [{"kind": d.kind, "out": str(d.out), "arrays": sorted(d.arrays), "options": d.options} for d in drawings]
    with open(path, "wb") as handle:  # a handle: np.savez would add ".npz" to a name without it
        np.savez(handle, **arrays, **{JOB_KEY: np.array(json.dumps(listing))})
    return path


def read_job(path: Path) -> list[Drawing]:
    with np.load(path, allow_pickle=False) as job:
        listing = json.loads(str(job[JOB_KEY]))
        return [
            Drawing(
                item["kind"],
                Path(item["out"]),
                {name: job[f"{i}/{name}"] for name in item["arrays"]},
                item["options"],
            )
            for i, item in enumerate(listing)
        ]


class SideProcess:
    """`with SideProcess() as side: side.submit(drawings); ...the parent's own drawing...; side.finish()`.

    finish() returns the drawings' paths once they exist, drawn by the child or, when it failed, by the parent.
    Leaving the block early (an error, Ctrl-C) stops the child and removes the job file.
    """

    command = (sys.executable, "-m", "cnnkit.viz.side_process")

    def __init__(self) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix="cnnkit-pictures-"))
        self._drawings: list[Drawing] = []
        self.drawn_by_child = False
        try:
            with open(self._folder / "stderr.txt", "wb") as stderr:  # a file, not a pipe: it never fills and blocks
                self._child = subprocess.Popen(
                    self.command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr, text=True
                )
        except OSError:  # no usable interpreter (an embedded Python): everything is drawn here
            self._child = None

    def __enter__(self) -> SideProcess:
        return self

    def __exit__(self, *exc) -> None:
        if self._child is not None and self._child.poll() is None:
            self._child.terminate()  # SIGTERM: the child's half-written picture removes its temp file
            try:
                self._child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._child.kill()
                self._child.wait()
        shutil.rmtree(self._folder, ignore_errors=True)

    def submit(self, drawings: list[Drawing]) -> None:
        self._drawings = list(drawings)
        if self._child is None:
            return
        job = write_job(self._drawings, self._folder / "job.npz")
        try:
            self._child.stdin.write(f"{job}\n")
            self._child.stdin.close()
        except BrokenPipeError:  # the child died while starting: finish() sees its exit code and draws here
            self._child.wait()

    def finish(self) -> list[Path]:
        if self._child is not None:
            try:
                self.drawn_by_child = self._child.wait(timeout=WAIT_S) == 0
            except subprocess.TimeoutExpired:
                self._child.kill()
                self._child.wait()
        if not self.drawn_by_child:
            return [d.draw() for d in self._drawings]
        return [d.out for d in self._drawings]


def main() -> int:
    """The child: pay for matplotlib's import while the parent prepares the job, then draw it."""
    import io
    import signal

    # The parent stops a child it no longer needs with SIGTERM; as SystemExit, it lets atomic_write remove the
    # temp file of a picture in progress.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    from matplotlib.figure import Figure

    warm = Figure(figsize=(1, 1))
    warm.text(0.5, 0.5, "0")
    warm.savefig(io.BytesIO(), format="png")  # loads Agg, the fonts and PNG writing now, not in the first picture
    line = sys.stdin.readline().strip()
    if not line:
        return 0  # the parent went on without us
    for drawing in read_job(Path(line)):
        drawing.draw()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The command line. The only module that prints or exits.

Library code raises ``CnnkitError`` subclasses; ``_run`` turns them into one ``Error:`` line on
stderr and the error's exit code (2 for a user's mistake). TensorFlow is imported only inside
the commands that train or run a model.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from cnnkit import __version__
from cnnkit.errors import CnnkitError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="cnnkit: design, train and look inside convolutional networks from a YAML file.\n\n"
    "Example: cnnkit summary configs/mnist.yaml",
)
# Tables need ~120 columns; when piped, rich would otherwise assume 80 and wrap every row.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 130)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _run(command):
    """Turn library errors into `Error: ...` + exit code; Ctrl-C into exit 130."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except CnnkitError as error:
            err.print(f"Error: {error}", markup=False)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt as stop:
            # Ctrl-C or SIGTERM before a run folder exists (TF import, data loading): nothing to save yet.
            err.print("Error: interrupted", markup=False)
            raise typer.Exit(128 + getattr(stop, "signum", 2)) from None

    return wrapper


def _version(value: bool):
    if value:
        out.print(f"cnnkit {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
):
    pass


def _print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


@app.command()
@_run
def summary(
    spec_file: Path = typer.Argument(..., help="The spec YAML file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for programs."),
    with_keras: bool = typer.Option(False, "--keras", help="Also build the real tf.keras model and compare."),
    set_: List[str] = typer.Option([], "--set", help="Override a spec value, e.g. --set layers.0.Conv2D.filters=16"),
):
    """Show every layer's output shape, params, MACs and receptive field (no TensorFlow).

    Example: cnnkit summary configs/mnist.yaml --json
    """
    from cnnkit.spec.parse import load_spec
    from cnnkit.spec.summary import summarize

    spec = load_spec(spec_file, set_)
    result = summarize(spec)
    keras_rows = None
    if with_keras:
        from cnnkit.run.keras_check import compare_with_keras

        keras_rows = compare_with_keras(spec, result)
    if as_json:
        data = result.to_dict()
        if keras_rows is not None:
            data["keras"] = keras_rows
        _print_json(data)
        return
    from cnnkit.viz.tables import summary_table, summary_totals

    out.print(summary_table(result))
    out.print(summary_totals(result))
    if keras_rows is not None:
        from cnnkit.viz.tables import keras_table

        out.print(keras_table(keras_rows))
        out.print("Keras agrees: every output shape and parameter count matches.")


@app.command()
@_run
def validate(spec_files: List[Path] = typer.Argument(..., help="One or more spec files.")):
    """Check spec files (names, arguments, shapes); exit 0 only if all are valid.

    Example: cnnkit validate configs/*.yaml
    """
    from cnnkit.spec.parse import load_spec

    failures = 0
    for path in spec_files:
        try:
            load_spec(path)
            out.print(f"ok  {path}")
        except CnnkitError as error:
            failures += 1
            err.print(f"Error: {error}", markup=False)
    if failures:
        raise typer.Exit(2)


@app.command()
@_run
def schema():
    """Print the JSON Schema of the spec language (for editor completion).

    Example: cnnkit schema > cnnkit.schema.json
    """
    from cnnkit.spec.schema import spec_schema

    _print_json(spec_schema())


@app.command("layers")
@_run
def list_layers():
    """List every layer type a spec can use, with its arguments.

    Example: cnnkit layers
    """
    from rich.table import Table

    from cnnkit.spec.layers import LAYERS, REQUIRED

    table = Table(title="Layer types (names are case-insensitive)")
    table.add_column("Layer")
    table.add_column("Also")
    table.add_column("Arguments (required in bold)")
    for name, entry in LAYERS.items():
        args = ", ".join(
            f"[bold]{a}[/bold]" if spec.default is REQUIRED else a
            for a, spec in entry.args.items()
            if a not in ("name", "trainable")
        )
        table.add_row(name, ", ".join(entry.aliases), args)
    out.print(table)


@app.command()
@_run
def train(
    spec_file: Optional[Path] = typer.Argument(None, help="The spec YAML file (omit with --resume)."),
    set_: List[str] = typer.Option([], "--set", help="Override a spec value, e.g. --set train.epochs=3"),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Override train.epochs."),
    data_dir: Optional[str] = typer.Option(
        None, "--data-dir", help="Folder with dataset files (default: $CNNKIT_DATA_DIR, then the Keras cache)."
    ),
    device: str = typer.Option("auto", "--device", help="cpu, gpu or auto."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, help="Override train.seed."),
    out_dir: Path = typer.Option(Path("runs"), "--out", help="Parent folder of run folders."),
    resume: Optional[Path] = typer.Option(
        None,
        "--resume",
        help="Continue an unfinished run: its folder, runs/latest or runs. With --set/--epochs: train.epochs, "
        "train.optimizer.learning_rate, train.early_stopping.*, train.reduce_lr_on_plateau.*",
    ),
    strategy: Optional[str] = typer.Option(None, "--strategy", help="auto, none, mirrored or multi_worker."),
    no_pictures: bool = typer.Option(False, "--no-pictures", help="Skip drawing the run's pictures."),
):
    """Train a spec on its dataset and write a new run folder.

    Example: cnnkit train configs/digits.yaml --epochs 10
    """
    from cnnkit.run.progress import Reporter, history_table
    from cnnkit.run.train import TrainRequest
    from cnnkit.run.train import train as run_training

    request = TrainRequest(
        spec_file=spec_file,
        overrides=tuple(set_),
        epochs=epochs,
        data_dir=data_dir,
        device=device,
        seed=seed,
        out=out_dir,
        resume=resume,
        strategy=strategy,
        after_training=None if no_pictures else _draw_run_pictures,
    )
    reporter = Reporter(out)
    try:
        result = run_training(request, reporter)
    finally:
        reporter.close()
    out.print(history_table(result.history))
    for split, values in result.metrics.items():
        if values:
            out.print(f"{split:5s}  " + "  ".join(f"{k} {v:.4f}" for k, v in values.items()))
    if result.worker is None:
        out.print(f"Run folder: {result.run_dir}")
        return
    # multi_worker: every worker prints the fingerprint of its final weights (equal on all: they trained in sync).
    out.print(f"weights sha256: {result.weights_sha256}")
    out.print(f"Run folder{'' if result.run_dir.exists() else ' (on the chief)'}: {result.run_dir}")


@app.command()
@_run
def evaluate(
    target: Path = typer.Argument(..., help="A run folder (or its parent with `latest`) or a .keras file."),
    data: Optional[str] = typer.Option(
        None, "--data", help="Dataset name or .npz/.csv file/image folder (default: the run's own test split)."
    ),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Folder with dataset files."),
    top_k: Optional[int] = typer.Option(None, "--top-k", min=1, help="k for top-k accuracy (default train.top_k)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for programs."),
):
    """Report test loss, metrics, top-k accuracy, a confusion matrix and per-class scores.

    Example: cnnkit evaluate runs/latest
    """
    from cnnkit.run.evaluate import evaluate as run_evaluation

    _say_which_model(target)
    result = run_evaluation(target, data=data, data_dir=data_dir, top_k=top_k)
    result.pop("_arrays")
    if as_json:
        _print_json(result)
        return
    from cnnkit.viz.tables import confusion_table, per_class_table

    out.print(f"{result['model']} on {result['data']} ({result['samples']:,} test samples)")
    out.print("  ".join(f"{k} {v:.4f}" for k, v in result["metrics"].items()) or f"accuracy {result['accuracy']:.4f}")
    for key in result:
        if key.startswith("top_"):
            out.print(f"top-{key.split('_')[1]} accuracy {result[key]:.4f}")
    out.print(confusion_table(result["confusion_matrix"], result["class_names"]))
    out.print(per_class_table(result["per_class"]))


@app.command()
@_run
def predict(
    target: Path = typer.Argument(..., help="A run folder or a .keras file."),
    inputs: List[Path] = typer.Argument(..., help="Image files (PNG/JPEG/...) or .npz files."),
    top: int = typer.Option(3, "--top", min=1, help="How many classes to show per input."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for programs."),
):
    """Classify images or the arrays of an .npz file with a trained model.

    Example: cnnkit predict runs/latest digit.png --top 3
    """
    from cnnkit.run.predict import predict as run_prediction

    _say_which_model(target)
    results = run_prediction(target, inputs, top=top)
    if as_json:
        _print_json(results)
        return
    for row in results:
        ranked = ", ".join(f"{t['class']} {t['probability']:.1%}" for t in row["top"])
        out.print(f"{row['input']}: [bold]{row['class']}[/bold]  ({ranked})")


@app.command("time")
@_run
def time_command(
    spec_file: Path = typer.Argument(..., help="The spec YAML file."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Batch size to time."),
    iterations: int = typer.Option(20, "--iterations", min=1, help="Timed iterations per layer (median)."),
    device: str = typer.Option("auto", "--device", help="cpu, gpu or auto."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for programs."),
):
    """Average forward and backward milliseconds per layer, sorted by cost (like `caffe time`).

    Example: cnnkit time configs/mnist.yaml --batch-size 64
    """
    from cnnkit.run.timing import time_layers
    from cnnkit.spec.parse import load_spec

    result = time_layers(load_spec(spec_file), batch_size=batch_size, iterations=iterations, device=device)
    if as_json:
        _print_json(result)
        return
    from cnnkit.viz.tables import timing_table

    out.print(timing_table(result))


plot_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Draw pictures (PNG): training curves, confusion matrix, filters, feature maps, "
    "architecture, kernel playground.\n\nExample: cnnkit plot curves runs/latest",
)
app.add_typer(plot_app, name="plot")


def _printed(paths) -> None:
    for path in paths if isinstance(paths, list) else [paths]:
        out.print(f"wrote {path}")


@plot_app.command("curves")
@_run
def plot_curves(
    run: Path = typer.Argument(..., help="A run folder."),
    out_file: Optional[Path] = typer.Option(None, "--out", help="PNG path (default RUN/plots/)."),
):
    """Loss and metrics per epoch, train vs validation, best epoch marked.

    Example: cnnkit plot curves runs/latest
    """
    from cnnkit.viz import pictures

    _printed(pictures.curves(run, out_file))


@plot_app.command("confusion")
@_run
def plot_confusion(
    run: Path = typer.Argument(..., help="A run folder or .keras file."),
    out_file: Optional[Path] = typer.Option(None, "--out", help="PNG path (default RUN/plots/)."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset name or file."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Folder with dataset files."),
):
    """Confusion matrix (counts and row-normalised) and the most confident mistakes.

    Example: cnnkit plot confusion runs/latest
    """
    from cnnkit.viz import pictures

    _printed(pictures.confusion(run, out_file, data=data, data_dir=data_dir))


@plot_app.command("filters")
@_run
def plot_filters(
    run: Path = typer.Argument(..., help="A run folder or .keras file."),
    layer: Optional[int] = typer.Option(None, "--layer", help="Layer index (default: first conv)."),
    out_file: Optional[Path] = typer.Option(None, "--out", help="PNG path (default RUN/plots/)."),
):
    """The learned kernels of a conv layer as a grid of small images.

    Example: cnnkit plot filters runs/latest --layer 0
    """
    from cnnkit.viz import pictures

    _printed(pictures.filters(run, out_file, layer=layer))


@plot_app.command("feature-maps")
@_run
def plot_feature_maps(
    run: Path = typer.Argument(..., help="A run folder or .keras file."),
    image: Optional[Path] = typer.Option(None, "--image", help="An image file to look at."),
    index: int = typer.Option(0, "--index", help="Else test image number N."),
    out_file: Optional[Path] = typer.Option(None, "--out", help="PNG path (default RUN/plots/)."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset name or file."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Folder with dataset files."),
):
    """The activation maps of every conv/pool layer for one input image.

    Example: cnnkit plot feature-maps runs/latest --index 7
    """
    from cnnkit.viz import pictures

    _printed(pictures.feature_maps(run, out_file, image=image, index=index, data=data, data_dir=data_dir))


@plot_app.command("architecture")
@_run
def plot_architecture(
    spec_file: Path = typer.Argument(..., help="The spec YAML file."),
    out_file: Path = typer.Option(Path("architecture.png"), "--out", help="PNG path."),
):
    """The layer stack drawn from the spec alone, blocks sized by output shape (no TensorFlow).

    Example: cnnkit plot architecture configs/mnist.yaml --out mnist.png
    """
    from cnnkit.viz import pictures

    _printed(pictures.architecture(spec_file, out_file))


@plot_app.command("kernels")
@_run
def plot_kernels(
    image: Path = typer.Argument(..., help="An image file."),
    kernel: List[str] = typer.Option(
        ["sobel_x", "sobel_y", "sharpen", "laplacian"],
        "--kernel",
        help="Kernel name (repeat for several): sobel_x, sobel_y, "
        "sharpen, laplacian, ... (see cnnkit.viz.kernels.KERNELS).",
    ),
    strides: int = typer.Option(1, "--strides", help="Stride, as in Conv2D."),
    padding: str = typer.Option("same", "--padding", help="valid or same, as in Conv2D."),
    out_file: Path = typer.Option(Path("kernels.png"), "--out", help="PNG path."),
):
    """Apply hand-designed kernels (edges, sharpen, lines) with Conv2D semantics, side by side.

    Example: cnnkit plot kernels digit.png --kernel sobel_x --kernel sobel_y
    """
    from cnnkit.viz import pictures

    _printed(pictures.kernels(image, kernel, out_file, strides=strides, padding=padding))


def _say_which_model(target: Path) -> None:
    """An interrupted run has no model.keras: the command uses its best.keras, and says so on stderr."""
    from cnnkit.run.folder import model_note

    note = model_note(target)
    if note:
        err.print(note, markup=False)


def _draw_run_pictures(run_dir, **held):
    from cnnkit.viz.pictures import draw_run_pictures

    return draw_run_pictures(run_dir, **held)


def main() -> None:
    try:
        app()
    except SystemExit as leaving:
        if leaving.code and "tensorflow" in sys.modules:
            # Stopped by Ctrl-C/SIGTERM or an error: every file is on disk (written whole) and run.json says how
            # the run ended. TensorFlow's own teardown can take 10+ s after an interrupted fit() (its input
            # pipeline's threads) or never end (a worker still blocked joining its cluster), which a user pressing
            # Ctrl-C, or Kubernetes' grace period after SIGTERM, should not wait for.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(leaving.code)
        raise


if __name__ == "__main__":
    main()

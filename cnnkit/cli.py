"""The command line. The only module that prints or exits.

Library code raises ``CnnkitError`` subclasses; ``_run`` turns them into one ``Error:`` line on
stderr and the error's exit code (2 for a user's mistake). TensorFlow is imported only inside
the commands that train or run a model.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import re
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from typer.core import TyperCommand

from cnnkit import __version__, completion
from cnnkit.errors import CnnkitError
from cnnkit.spec import blocks as _spec_blocks


def _probe_backbone(*args):
    """The summary of a Backbone spec measures the application with Keras (cnnkit.run.backbones, TensorFlow);
    spec/ cannot import it, so the command line hands it over, to be imported only when such a spec comes."""
    from cnnkit.run.backbones import probe

    return probe(*args)


_spec_blocks.BACKBONE_PROBE = _spec_blocks.BACKBONE_PROBE or _probe_backbone

app = typer.Typer(
    add_completion=True,  # --install-completion / --show-completion; arguments complete via cnnkit.completion
    no_args_is_help=True,
    rich_markup_mode=None,
    help="cnnkit: design, train and look inside convolutional networks from a YAML file.\n\n"
    "Example: cnnkit summary configs/mnist.yaml",
)


class _PlainHelp(TyperCommand):
    """Help in words a person reads: `SPEC`, `RUN`, `KEY=VALUE`, `N`, rather than Typer's `{spec_file}`,
    `RUN <path>` and `[x>=1]`. Every parameter names its placeholder with `metavar=`; this class drops the
    braces and type tags Typer adds around it (tests/test_cli.py pins the result at 80 columns)."""

    def collect_usage_pieces(self, ctx):
        return [piece.replace("{", "").replace("}", "") for piece in super().collect_usage_pieces(ctx)]

    def format_options(self, ctx, formatter):
        sections: dict[str, list[tuple[str, str]]] = {"Arguments": [], "Options": []}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            name, text = record
            text = re.sub(r"\bx>=(\d+)", r"at least \1", text)
            if param.param_type_name == "argument":
                shown = param.metavar or name.split()[0]
                sections["Arguments"].append((shown + "..." * (param.nargs != 1), text))
            else:
                sections["Options"].append((name, text))
        for title, rows in sections.items():
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


def _plain_help_for_every_command(typer_app: typer.Typer) -> None:
    """`@typer_app.command()` makes _PlainHelp commands, so a command added later cannot miss it."""
    typer_app.command = functools.partial(typer_app.command, cls=_PlainHelp)


_plain_help_for_every_command(app)

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
    spec_file: Path = typer.Argument(
        ..., metavar="SPEC", help="The spec YAML file.", autocompletion=completion.spec_files
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for programs."),
    with_keras: bool = typer.Option(False, "--keras", help="Also build the real tf.keras model and compare."),
    set_: List[str] = typer.Option(
        [], "--set", metavar="KEY=VALUE", help="Override a spec value, e.g. --set layers.0.Conv2D.filters=16"
    ),
):
    """Shapes, params, MACs and receptive fields (no TensorFlow).

    Every layer's output shape, parameter count, MACs, receptive field and size arithmetic.

    Example: cnnkit summary configs/mnist.yaml --json
    """
    from cnnkit.spec.parse import load_spec

    spec = load_spec(spec_file, set_)
    result = spec.summary
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
def validate(
    spec_files: List[Path] = typer.Argument(
        ..., metavar="SPEC", help="One or more spec files.", autocompletion=completion.spec_files
    ),
):
    """Check spec files; exit 0 only if all are valid.

    Checks layer names, arguments and shapes without TensorFlow.

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
    """Print the spec language's JSON Schema (for editors).

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


@app.command("datasets")
@_run
def list_datasets():
    """List the dataset kinds, with their data: keys and defaults.

    Every kind `data.dataset` can name, with the data: keys it reads and their defaults.

    Example: cnnkit datasets
    """
    import yaml
    from rich.markup import escape
    from rich.table import Table

    from cnnkit.spec.datasets import COMMON_KEYS, DATASETS
    from cnnkit.spec.defaults import DATA_DEFAULTS

    def keys(names, required=()):
        # defaults as a spec would write them (null, true, [28, 28])
        shown = [
            f"[bold]{k}[/bold]"
            if k in required
            else f"{k}: {escape(yaml.safe_dump(DATA_DEFAULTS.get(k)).split(chr(10))[0])}"
            for k in names
        ]
        return ", ".join(shown) or "(none)"

    table = Table(title="Dataset kinds (data.dataset); every kind also reads " + keys(COMMON_KEYS))
    table.add_column("Dataset")
    table.add_column("What it is")
    table.add_column("Its data: keys (required in bold) and defaults")
    for name, kind in DATASETS.items():
        table.add_row(name, escape(kind.doc), keys(kind.keys, ("path",) if kind.needs_path else ()))
    out.print(table)


@app.command()
@_run
def train(
    spec_file: Optional[Path] = typer.Argument(
        None, metavar="SPEC", help="The spec YAML file (omit with --resume).", autocompletion=completion.spec_files
    ),
    set_: List[str] = typer.Option(
        [], "--set", metavar="KEY=VALUE", help="Override a spec value, e.g. --set train.epochs=3"
    ),
    epochs: Optional[int] = typer.Option(None, "--epochs", metavar="N", min=1, help="Override train.epochs."),
    data_dir: Optional[str] = typer.Option(
        None,
        "--data-dir",
        metavar="DIR",
        help="Folder with dataset files (default: $CNNKIT_DATA_DIR, then the Keras cache).",
    ),
    device: str = typer.Option("auto", "--device", metavar="DEVICE", help="cpu, gpu or auto."),
    seed: Optional[int] = typer.Option(None, "--seed", metavar="N", min=0, help="Override train.seed."),
    out_dir: Path = typer.Option(Path("runs"), "--out", metavar="DIR", help="Parent folder of run folders."),
    resume: Optional[Path] = typer.Option(
        None,
        "--resume",
        metavar="RUN",
        help="Continue an unfinished run: its folder, runs/latest or runs. With --set/--epochs: train.epochs, "
        "train.optimizer.learning_rate, train.early_stopping.*, train.reduce_lr_on_plateau.*",
        autocompletion=completion.run_folders,
    ),
    strategy: Optional[str] = typer.Option(
        None, "--strategy", metavar="STRATEGY", help="auto, none, mirrored or multi_worker."
    ),
    no_pictures: bool = typer.Option(False, "--no-pictures", help="Skip drawing the run's pictures."),
):
    """Train a spec on its dataset into a new run folder.

    The run folder is RUN = OUT/<name>-<date>-<time>; OUT/latest points at it.

    Example: cnnkit train configs/digits.yaml --epochs 10
    """
    from cnnkit.run.progress import Reporter, fmt_logs, history_table
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
        after_training=_write_report if no_pictures else _draw_run_pictures,
    )
    reporter = Reporter(out)

    def print_result(history: dict, metrics: dict, draws: bool) -> None:
        reporter.close()  # the live bars end before the table
        out.print(history_table(history))
        for split, values in metrics.items():
            if values:
                out.print(f"{split:5s}  {fmt_logs(values)}")
        if draws and not no_pictures:
            out.print("drawing the pictures into plots/ and report.html ...", style="dim")

    request.on_metrics = print_result
    try:
        result = run_training(request, reporter)
    finally:
        reporter.close()
    if result.worker is None:
        out.print(f"Run folder: {result.run_dir}")
        return
    # multi_worker: every worker prints the fingerprint of its final weights (equal on all: they trained in sync).
    out.print(f"weights sha256: {result.weights_sha256}")
    out.print(f"Run folder{'' if result.run_dir.exists() else ' (on the chief)'}: {result.run_dir}")


@app.command()
@_run
def evaluate(
    target: Path = typer.Argument(
        ...,
        metavar="RUN",
        help="A run folder (or its parent with `latest`) or a .keras file.",
        autocompletion=completion.runs_or_models,
    ),
    data: Optional[str] = typer.Option(
        None,
        "--data",
        metavar="DATA",
        help="Dataset name or .npz/.csv file/image folder (default: the run's own test split).",
    ),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", metavar="DIR", help="Folder with dataset files."),
    top_k: Optional[int] = typer.Option(
        None, "--top-k", metavar="K", min=1, help="k for top-k accuracy (default train.top_k)."
    ),
    test_time_flip: Optional[str] = typer.Option(
        None,
        "--test-time-flip",
        metavar="MODE",
        help="Average each image's probabilities with its flips: horizontal, vertical, horizontal_and_vertical, "
        "or none (default train.test_time_flip).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for programs."),
):
    """Test loss, metrics, confusion matrix, per-class scores.

    Also top-k accuracy; written to RUN/eval.json as well.

    Example: cnnkit evaluate runs/latest
    """
    from cnnkit.run.evaluate import evaluate as run_evaluation

    _say_which_model(target)
    flip = "spec" if test_time_flip is None else None if test_time_flip == "none" else test_time_flip
    result = run_evaluation(target, data=data, data_dir=data_dir, top_k=top_k, test_time_flip=flip)
    if as_json:
        _print_json(result.to_dict())
        return
    from cnnkit.viz.tables import confusion_table, evaluation_header, per_class_table

    out.print(evaluation_header(result))
    out.print("  ".join(f"{k} {v:.4f}" for k, v in result.metrics.items()) or f"accuracy {result.accuracy:.4f}")
    if result.top_k_accuracy is not None:
        out.print(f"top-{result.top_k} accuracy {result.top_k_accuracy:.4f}")
    if result.test_time_flip is not None:
        out.print(
            f"test-time flip {result.test_time_flip}: probabilities averaged with the flipped images; "
            f"the images alone: accuracy {result.single_view_accuracy:.4f}"
        )
    out.print(confusion_table(result.confusion_matrix, result.class_names))
    out.print(per_class_table(result.per_class))


@app.command()
@_run
def predict(
    target: Path = typer.Argument(
        ..., metavar="RUN", help="A run folder or a .keras file.", autocompletion=completion.runs_or_models
    ),
    inputs: List[Path] = typer.Argument(..., metavar="FILE", help="Image files (PNG/JPEG/...) or .npz files."),
    top: int = typer.Option(3, "--top", metavar="N", min=1, help="How many classes to show per input."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for programs."),
):
    """Classify image files or .npz arrays with a trained model.

    Example: cnnkit predict runs/latest digit.png --top 3   (or runs/latest/export/model.tflite)
    """
    from cnnkit.run.predict import predict as run_prediction

    _say_which_model(target)
    results = run_prediction(target, inputs, top=top)
    for row in results:
        if row["warning"]:
            err.print(f"Warning: {row['warning']}", markup=False)
    if as_json:
        _print_json(results)
        return
    for row in results:
        ranked = ", ".join(f"{t['class']} {t['probability']:.1%}" for t in row["top"])
        out.print(f"{row['input']}: [bold]{row['class']}[/bold]  ({ranked})")


@app.command()
@_run
def export(
    run: Path = typer.Argument(
        ..., metavar="RUN", help="A run folder (or its parent with `latest`).", autocompletion=completion.run_folders
    ),
    fmt: str = typer.Option(..., "--format", metavar="FORMAT", help="savedmodel, tflite or onnx."),
    quantize: Optional[str] = typer.Option(
        None, "--quantize", metavar="int8", help="int8: post-training quantization (tflite)."
    ),
    out_path: Optional[Path] = typer.Option(
        None, "--out", metavar="PATH", help="Artefact path (default RUN/export/model.<format>)."
    ),
    images: int = typer.Option(1000, "--images", metavar="N", min=1, help="Images the parity check runs on."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", metavar="DIR", help="Folder with dataset files."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for programs."),
):
    """Export a model to SavedModel/TFLite/ONNX, with a parity check.

    Checks that the artefact computes what the .keras model computes (exit 4 if not).

    Example: cnnkit export runs/latest --format tflite --quantize int8
    """
    from cnnkit.errors import ParityError
    from cnnkit.run.export import check_request
    from cnnkit.run.export import export as run_export

    check_request(fmt, quantize)  # a wrong option or a missing package, before TensorFlow is imported
    try:
        report = run_export(run, fmt, quantize=quantize, out=out_path, data_dir=data_dir, images=images)
    except ParityError as error:
        report = getattr(error, "report", None)
        if report is not None:
            _print_export(report, as_json)
        raise
    _print_export(report, as_json)


def _print_export(report: dict, as_json: bool) -> None:
    if as_json:
        _print_json(report)
        return
    from cnnkit.viz.export_table import export_table

    out.print(export_table(report))
    out.print(f"wrote {report['artefact']} and {Path(report['artefact']).parent / 'export.json'}")


@app.command()
@_run
def compare(
    runs: List[Path] = typer.Argument(
        ..., metavar="RUN...", help="Run folders (globs such as 'runs/*' work).", autocompletion=completion.run_folders
    ),
    out_file: Path = typer.Option(
        Path("compare.png"), "--out", metavar="PNG", help="PNG of the overlaid validation curves."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for programs."),
):
    """Compare runs side by side, with their curves in one PNG.

    Spec differences, params, MACs, epochs, final metrics and wall time; validation curves overlaid.

    Example: cnnkit compare runs/* --out compare.png
    """
    from cnnkit.viz.compare import compare_runs, compare_table, differences_table, plot_compare

    result = compare_runs(runs)
    legend = plot_compare(result, out_file)
    if as_json:
        for row in result["runs"]:
            row.pop("history")
        _print_json({**result, "picture": str(out_file), "legend": legend})
        return
    out.print(differences_table(result))
    out.print(compare_table(result))
    out.print(f"wrote {out_file}")


@app.command("time")
@_run
def time_command(
    spec_file: Path = typer.Argument(
        ..., metavar="SPEC", help="The spec YAML file.", autocompletion=completion.spec_files
    ),
    batch_size: int = typer.Option(64, "--batch-size", metavar="N", min=1, help="Batch size to time."),
    iterations: int = typer.Option(
        20, "--iterations", metavar="N", min=1, help="Timed iterations per layer and step (median)."
    ),
    device: str = typer.Option("auto", "--device", metavar="DEVICE", help="cpu, gpu or auto."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for programs."),
):
    """Milliseconds per layer (forward, backward) and per whole step.

    Medians over the iterations, sorted by cost (like `caffe time`). Then the
    compiled model's whole train step (the spec's optimizer, loss, metrics) on
    random labels, its images/s, and its gap to the layers' sum.

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
    short_help="Draw pictures (PNG) of runs, specs and kernels.",
    help="Draw pictures (PNG): training curves, confusion matrix, filters, feature maps, "
    "architecture, kernel playground, Grad-CAM.\n\nExample: cnnkit plot curves runs/latest",
)
_plain_help_for_every_command(plot_app)
app.add_typer(plot_app, name="plot")


# Where `plot architecture` and `plot kernels` write by default: one folder (git-ignored) rather than PNGs
# scattered over the folder the command ran in.
_PLOTS = Path("plots")


def _list_kernels(value: bool):
    if value:
        from cnnkit.viz.kernels import DESCRIPTIONS

        width = max(map(len, DESCRIPTIONS))
        for name, text in DESCRIPTIONS.items():
            out.print(f"{name:{width}}  {text}", markup=False)
        raise typer.Exit()


def _printed(paths) -> None:
    for path in paths if isinstance(paths, list) else [paths]:
        out.print(f"wrote {path}")


@plot_app.command("curves")
@_run
def plot_curves(
    run: Path = typer.Argument(..., metavar="RUN", help="A run folder.", autocompletion=completion.run_folders),
    out_file: Optional[Path] = typer.Option(None, "--out", metavar="PNG", help="PNG path (default RUN/plots/)."),
):
    """Loss and metrics per epoch, train vs validation.

    The best epoch is marked.

    Example: cnnkit plot curves runs/latest
    """
    from cnnkit.viz import pictures

    _printed(pictures.curves(run, out_file))


@plot_app.command("confusion")
@_run
def plot_confusion(
    run: Path = typer.Argument(
        ..., metavar="RUN", help="A run folder or .keras file.", autocompletion=completion.runs_or_models
    ),
    out_file: Optional[Path] = typer.Option(None, "--out", metavar="PNG", help="PNG path (default RUN/plots/)."),
    data: Optional[str] = typer.Option(None, "--data", metavar="DATA", help="Dataset name or file."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", metavar="DIR", help="Folder with dataset files."),
):
    """Confusion matrix and the most confident mistakes.

    Counts and row-normalised (recall) side by side.

    Example: cnnkit plot confusion runs/latest
    """
    from cnnkit.viz import pictures

    _printed(pictures.confusion(run, out_file, data=data, data_dir=data_dir))


@plot_app.command("filters")
@_run
def plot_filters(
    run: Path = typer.Argument(
        ..., metavar="RUN", help="A run folder or .keras file.", autocompletion=completion.runs_or_models
    ),
    layer: Optional[int] = typer.Option(None, "--layer", metavar="N", help="Layer index (default: first conv)."),
    out_file: Optional[Path] = typer.Option(None, "--out", metavar="PNG", help="PNG path (default RUN/plots/)."),
):
    """The learned kernels of a conv layer, as a grid.

    Example: cnnkit plot filters runs/latest --layer 0
    """
    from cnnkit.viz import pictures

    _printed(pictures.filters(run, out_file, layer=layer))


@plot_app.command("feature-maps")
@_run
def plot_feature_maps(
    run: Path = typer.Argument(
        ..., metavar="RUN", help="A run folder or .keras file.", autocompletion=completion.runs_or_models
    ),
    image: Optional[Path] = typer.Option(None, "--image", metavar="FILE", help="An image file to look at."),
    index: int = typer.Option(0, "--index", metavar="N", help="Else test image number N."),
    out_file: Optional[Path] = typer.Option(None, "--out", metavar="PNG", help="PNG path (default RUN/plots/)."),
    data: Optional[str] = typer.Option(None, "--data", metavar="DATA", help="Dataset name or file."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", metavar="DIR", help="Folder with dataset files."),
):
    """What each conv/pool layer outputs for one image.

    Example: cnnkit plot feature-maps runs/latest --index 7
    """
    from cnnkit.viz import pictures

    _printed(pictures.feature_maps(run, out_file, image=image, index=index, data=data, data_dir=data_dir))


@plot_app.command("architecture")
@_run
def plot_architecture(
    spec_file: Path = typer.Argument(
        ..., metavar="SPEC", help="The spec YAML file.", autocompletion=completion.spec_files
    ),
    out_file: Optional[Path] = typer.Option(
        None, "--out", metavar="PNG", help="PNG path (default plots/SPEC-NAME-architecture.png)."
    ),
):
    """The layer stack drawn from a spec (no TensorFlow).

    Blocks are sized by output shape.

    Example: cnnkit plot architecture configs/mnist.yaml
    """
    from cnnkit.viz import pictures

    _printed(pictures.architecture(spec_file, out_file or _PLOTS / f"{spec_file.stem}-architecture.png"))


@plot_app.command("kernels")
@_run
def plot_kernels(
    image: Path = typer.Argument(..., metavar="IMAGE", help="An image file."),
    kernel: List[str] = typer.Option(
        ["sobel_x", "sobel_y", "sharpen", "laplacian"],
        "--kernel",
        metavar="NAME",
        help="Kernel name (repeat for several); --list shows them all.",
    ),
    strides: int = typer.Option(1, "--strides", metavar="N", help="Stride, as in Conv2D."),
    padding: str = typer.Option("same", "--padding", metavar="PADDING", help="valid or same, as in Conv2D."),
    out_file: Optional[Path] = typer.Option(
        None, "--out", metavar="PNG", help="PNG path (default plots/IMAGE-NAME-kernels.png)."
    ),
    _list: bool = typer.Option(
        False, "--list", callback=_list_kernels, is_eager=True, help="List the kernel names and exit."
    ),
):
    """Hand-made kernels applied to an image, side by side.

    Edges, sharpen, lines... with Conv2D semantics.

    Example: cnnkit plot kernels digit.png --kernel sobel_x --kernel sobel_y
    """
    from cnnkit.viz import pictures

    out_file = out_file or _PLOTS / f"{image.stem}-kernels.png"
    _printed(pictures.kernels(image, kernel, out_file, strides=strides, padding=padding))


@plot_app.command("gradcam")
@_run
def plot_gradcam(
    run: Path = typer.Argument(
        ..., metavar="RUN", help="A run folder or .keras file.", autocompletion=completion.runs_or_models
    ),
    images: Optional[List[Path]] = typer.Argument(None, metavar="IMAGE", help="Image files to explain."),
    index: List[int] = typer.Option([], "--index", metavar="N", help="Else test image number N (repeat for several)."),
    misclassified: Optional[int] = typer.Option(
        None, "--misclassified", metavar="K", help="Else the K most confident mistakes."
    ),
    layer: Optional[str] = typer.Option(
        None, "--layer", metavar="NAME", help="Layer name (default: the last conv layer)."
    ),
    method: str = typer.Option("gradcam", "--method", metavar="METHOD", help="gradcam or saliency (vanilla gradient)."),
    out_file: Optional[Path] = typer.Option(
        None, "--out", metavar="PNG", help="PNG path (default RUN/plots/gradcam.png)."
    ),
    data: Optional[str] = typer.Option(
        None, "--data", metavar="DATA", help="Dataset name or file (for --index/--misclassified)."
    ),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", metavar="DIR", help="Folder with dataset files."),
):
    """Grad-CAM heat maps: where each prediction came from.

    The heat maps of the predicted and the true class, the overlay, and the top-3 probabilities.

    Example: cnnkit plot gradcam runs/latest --misclassified 8
    """
    from cnnkit.viz.gradcam import gradcam_picture

    _printed(
        gradcam_picture(
            run,
            out_file,
            images=images or None,
            indices=index or None,
            misclassified=misclassified,
            layer=layer,
            method=method,
            data=data,
            data_dir=data_dir,
        )
    )


@app.command()
@_run
def report(
    run: Path = typer.Argument(
        ..., metavar="RUN", help="A run folder (or its parent with `latest`).", autocompletion=completion.run_folders
    ),
    open_: bool = typer.Option(False, "--open", help="Open the report in the default web browser."),
):
    """Write RUN/report.html, one self-contained page about a run.

    The run, metrics, layers, pictures and spec on one page.

    Example: cnnkit report runs/latest --open
    """
    from cnnkit.viz.report import write_report

    path = write_report(run)
    out.print(f"wrote {path}")
    if open_:
        import webbrowser

        if not webbrowser.open(path.resolve().as_uri()):
            raise CnnkitError(f"no web browser to open {path} with", hint="open the file by hand")


def _write_report(run_dir, run_info=None, **_held):
    """--no-pictures still leaves report.html (without pictures): every run has one page to share."""
    from cnnkit.viz.report import write_report

    return write_report(run_dir, run_info=run_info)


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
        if "tensorflow" in sys.modules and isinstance(leaving.code, (int, type(None))):
            # Every file is on disk by now (written whole, event files closed) and run.json says how the run ended.
            # TensorFlow's interpreter teardown takes 1-2 s after a finished run, 10+ s after an interrupted fit()
            # (its input pipeline's threads), or never ends (a worker still blocked joining its cluster): a user,
            # or Kubernetes' grace period after SIGTERM, should not wait for it.
            sys.stdout.flush()
            sys.stderr.flush()
            if not leaving.code:
                # A finished command still runs the exit handlers: autograph deletes its generated files in one.
                atexit._run_exitfuncs()
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(leaving.code or 0)
        raise


if __name__ == "__main__":
    main()

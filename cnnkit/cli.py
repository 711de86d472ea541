"""The command line. The only module that prints or exits.

Library code raises ``CnnkitError`` subclasses; ``_run`` turns them into one ``Error:`` line on
stderr and the error's exit code (2 for a user's mistake). TensorFlow is imported only inside
the commands that train or run a model.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from cnnkit import __version__
from cnnkit.errors import CnnkitError

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="cnnkit: design, train and look inside convolutional networks from a YAML file.\n\n"
                       "Example: cnnkit summary configs/mnist.yaml")
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

    return wrapper


def _version(value: bool):
    if value:
        out.print(f"cnnkit {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")):
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
    from cnnkit.spec import load_spec
    from cnnkit.summary import summarize

    spec = load_spec(spec_file, set_)
    result = summarize(spec)
    keras_rows = None
    if with_keras:
        from cnnkit.keras_check import compare_with_keras

        keras_rows = compare_with_keras(spec, result)
    if as_json:
        data = result.to_dict()
        if keras_rows is not None:
            data["keras"] = keras_rows
        _print_json(data)
        return
    from cnnkit.report import summary_table, summary_totals

    out.print(summary_table(result))
    out.print(summary_totals(result))
    if keras_rows is not None:
        from cnnkit.report import keras_table

        out.print(keras_table(keras_rows))
        out.print("Keras agrees: every output shape and parameter count matches.")


@app.command()
@_run
def validate(spec_files: List[Path] = typer.Argument(..., help="One or more spec files.")):
    """Check spec files (names, arguments, shapes); exit 0 only if all are valid.

    Example: cnnkit validate configs/*.yaml
    """
    from cnnkit.spec import load_spec

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
    from cnnkit.schema import spec_schema

    _print_json(spec_schema())


@app.command("layers")
@_run
def list_layers():
    """List every layer type a spec can use, with its arguments.

    Example: cnnkit layers
    """
    from rich.table import Table

    from cnnkit.layers import LAYERS, REQUIRED

    table = Table(title="Layer types (names are case-insensitive)")
    table.add_column("Layer")
    table.add_column("Also")
    table.add_column("Arguments (required in bold)")
    for name, entry in LAYERS.items():
        args = ", ".join(f"[bold]{a}[/bold]" if spec.default is REQUIRED else a
                         for a, spec in entry.args.items() if a not in ("name", "trainable"))
        table.add_row(name, ", ".join(entry.aliases), args)
    out.print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()

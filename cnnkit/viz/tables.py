"""Rich tables for people. Returns renderables; cli.py decides where they are printed."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from cnnkit.text import compact_number, shape_text


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GB"


def summary_table(summary) -> Table:
    table = Table(title=f"{summary.name}  ·  input {shape_text(summary.input_shape)}", title_justify="left")
    table.add_column("#", justify="right", style="dim")
    table.add_column("Layer")
    table.add_column("Output shape")
    table.add_column("Params", justify="right")
    table.add_column("MACs", justify="right")
    table.add_column("RF", justify="right")
    table.add_column("Size arithmetic", style="cyan")
    _add_rows(table, summary.layers, "")
    return table


def _add_rows(table: Table, rows, prefix: str) -> None:
    """A block's layers follow it, numbered inside it (`1.0`, `1.1`) and indented."""
    for row in rows:
        label = "  " * prefix.count(".") + row.type + (f" ({row.name})" if row.name else "")
        rf = "" if row.receptive_field is None else _fmt_rf(row.receptive_field, row.jump)
        params = f"{row.params:,}" + (f" ({row.non_trainable_params:,} fixed)" if row.non_trainable_params else "")
        table.add_row(
            f"{prefix}{row.index}",
            label,
            shape_text(row.output_shape),
            params,
            compact_number(row.macs) if row.macs else "",
            rf,
            row.arithmetic,
        )
        _add_rows(table, getattr(row, "children", []), f"{prefix}{row.index}.")


def _fmt_rf(size, jump) -> str:
    if isinstance(size, str):
        return size  # "n/a (after upsampling)"
    size_txt = shape_text(size) if isinstance(size, list) else str(size)
    jump_txt = shape_text(jump) if isinstance(jump, list) else f"{jump:g}"
    return f"{size_txt} (jump {jump_txt})"


def summary_totals(summary) -> Text:
    d = summary.to_dict()
    return Text(
        f"Total params: {d['total_params']:,} (trainable {d['trainable_params']:,}, "
        f"non-trainable {d['non_trainable_params']:,}) · {human_bytes(d['param_bytes'])}\n"
        f"MACs per sample: {d['total_macs']:,} ({compact_number(d['total_macs'])}) · "
        f"activations per sample: {human_bytes(d['activation_bytes_per_sample'])}"
    )


def keras_table(rows: list[dict]) -> Table:
    table = Table(title="Keras' own view (tf.keras model built from the spec)", title_justify="left")
    for col, justify in (("#", "right"), ("Layer (type)", "left"), ("Output shape", "left"), ("Params", "right")):
        table.add_column(col, justify=justify)
    for row in rows:
        table.add_row(
            str(row["index"]), f"{row['name']} ({row['type']})", shape_text(row["output_shape"]), f"{row['params']:,}"
        )
    return table


def _tail(text: str, width: int) -> str:
    """A long path cut from the front ("…/sklearn/datasets/data/digits.csv.gz"): the file name is what tells."""
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def evaluation_header(result, width: int = 80) -> Text:
    """What was evaluated on what (an Evaluation), one fact per line so that no line wraps at `width` columns."""
    return Text(
        f"model  {_tail(str(result.model), width - 7)}\n"
        f"data   {_tail(str(result.data), width - 7)}\n"
        f"       {result.samples:,} test samples"
    )


def confusion_table(cm: list[list[int]], names: list[str]) -> Group:
    # The title goes above the table rather than in it: rich wraps a table's title to the table's width, and a
    # 2-class table is narrower than the title.
    table = Table()
    table.add_column("true \\ pred")
    for name in names:
        table.add_column(str(name)[:8], justify="right")
    for name, row in zip(names, cm):
        total = sum(row) or 1
        cells = [
            f"[bold green]{v}[/]" if i == j else (f"[red]{v}[/]" if v and v / total > 0.02 else str(v))
            for j, v in enumerate(row)
            for i in [names.index(name)]
        ]
        table.add_row(str(name), *cells)
    return Group(Text("Confusion matrix (rows: true class, columns: predicted)"), table)


def per_class_table(rows: list[dict]) -> Table:
    table = Table(title="Per-class scores", title_justify="left")
    weighted = any(row.get("weight") is not None for row in rows)  # trained with train.class_weight
    for col in ("class", "precision", "recall", "f1", "support") + (("train weight",) if weighted else ()):
        table.add_column(col, justify="left" if col == "class" else "right")
    for row in rows:
        cells = [
            str(row["class"]),
            f"{row['precision']:.3f}",
            f"{row['recall']:.3f}",
            f"{row['f1']:.3f}",
            f"{row['support']:,}",
        ]
        if weighted:
            cells.append("" if row.get("weight") is None else f"{row['weight']:.3g}")
        table.add_row(*cells)
    return table


def timing_table(result: dict) -> Group:
    """The per-layer table, then the whole training step against the layers' sum (the framework's share)."""
    table = Table(
        title=f"{result['name']} · batch {result['batch_size']} · {result['device']} · "
        f"median of {result['iterations']}",
        title_justify="left",
    )
    for col in ("#", "Layer", "Output shape", "Forward ms", "Backward ms", "Share"):
        table.add_column(col, justify="left" if col in ("Layer", "Output shape") else "right")
    for row in result["layers"]:
        table.add_row(
            str(row["index"]),
            row["type"],
            shape_text(row["output_shape"]),
            f"{row['forward_ms']:.3f}",
            f"{row['backward_ms']:.3f}",
            f"{row['share']:.1%}",
        )
    table.add_row("", "[bold]total[/bold]", "", f"{result['forward_ms']:.3f}", f"{result['backward_ms']:.3f}", "100%")
    # A negative gap is possible (small nets, loaded CPUs): each layer timed alone pays its own call and cannot
    # share kernels with its neighbours, which can cost more than everything the step adds.
    gap = (
        "loss, metrics, optimizer update, dispatch"
        if result["overhead_ms"] >= 0
        else "the layers timed one call each cost more than inside the step"
    )
    step = Text(
        f"sum of layers  {result['layers_ms']:.3f} ms  (forward + backward, each layer timed alone)\n"
        f"whole step     {result['step_ms']:.3f} ms  ({result['images_per_s']:,.0f} images/s; "
        "the compiled model's train_on_batch)\n"
        f"overhead       {result['overhead_ms']:.3f} ms  ({result['overhead_share']:.1%} of the whole step: {gap})"
    )
    return Group(table, step)

"""The parity table `cnnkit export` prints: what the artefact computes next to what the .keras model computes."""

from __future__ import annotations

from rich.table import Table

from cnnkit.viz.tables import human_bytes


def export_table(report: dict) -> Table:
    verdict = "[green]passed[/green]" if report["passed"] else "[red]FAILED[/red]"
    kind = report["format"] + (f" {report['quantize']}" if report.get("quantize") else "")
    name = report["artefact"].rstrip("/").rsplit("/", 1)[-1]
    table = Table(title=f"Parity of {name} ({kind}) with the .keras model  ·  {verdict}", title_justify="left")
    table.add_column("Check")
    table.add_column("Value", justify="right")
    table.add_column("Tolerance", justify="right")
    tolerance = report["tolerance"]
    sources = ", ".join(f"{n:,} {split}" for split, n in report["image_sources"].items())
    table.add_row("runtime", report["runtime"], "")
    table.add_row("images", f"{report['images']:,} ({sources})", "")
    table.add_row(
        "max |Δprob|",
        f"{report['max_abs_diff']:.3g}",
        f"≤ {tolerance['max_abs_diff']:g}" if "max_abs_diff" in tolerance else "",
    )
    table.add_row("mean |Δprob|", f"{report['mean_abs_diff']:.3g}", "")
    table.add_row(
        "top-1 agreement",
        f"{report['top1_agreement']:.2%}",
        f"≥ {tolerance['top1_agreement_min']:.0%}" if "top1_agreement_min" in tolerance else "",
    )
    table.add_row("accuracy .keras", f"{report['accuracy_keras']:.2%}", "")
    table.add_row(
        "accuracy artefact",
        f"{report['accuracy_artefact']:.2%}",
        f"drop ≤ {100 * tolerance['accuracy_drop_max']:g} point" if "accuracy_drop_max" in tolerance else "",
    )
    table.add_row("size", f"{human_bytes(report['bytes'])} (.keras {human_bytes(report['keras_bytes'])})", "")
    return table

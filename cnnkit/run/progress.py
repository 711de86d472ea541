"""Live training progress with rich: an epoch bar, a batch bar with live loss/metrics, epoch lines."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

# Redrawing on every batch would cost more than small batches take; 10 redraws a second look live.
REFRESH_S = 0.1


def fmt_logs(logs: dict) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if k != "learning_rate")


class Reporter:
    def __init__(self, console: Console):
        self.console = console
        self.live: Progress | None = None

    def close(self) -> None:
        """Stop the live display even when fit() raised (Keras then skips on_train_end)."""
        if self.live is not None:
            self.live.stop()
            self.live = None

    def note(self, line: str) -> None:
        """One line before training starts (train() says how the work is distributed)."""
        self.console.print(line, soft_wrap=True)  # a path in it must paste whole

    def keras_callback(self, keras, epochs: int, steps: int):
        console = self.console
        reporter = self

        class RichProgress(keras.callbacks.Callback):
            # Only reads the logs it is handed: safe for Keras' asynchronous batch dispatch.
            async_safe = True

            def on_train_begin(self, logs=None):
                self.progress = Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    TimeRemainingColumn(),
                    TextColumn("{task.fields[logs]}"),
                    console=console,
                    transient=True,
                )
                self.epochs = self.progress.add_task("epochs", total=epochs, logs="")
                self.batches = self.progress.add_task("batches", total=steps, logs="")
                self.progress.start()
                reporter.live = self.progress
                self.last_draw = 0.0

            def on_epoch_begin(self, epoch, logs=None):
                self.started = time.perf_counter()
                self.progress.update(self.epochs, completed=epoch, description=f"epoch {epoch + 1}/{epochs}")
                self.progress.reset(self.batches, total=steps, logs="")

            def on_train_batch_end(self, batch, logs=None):
                now = time.perf_counter()
                if now - self.last_draw >= REFRESH_S or batch + 1 == steps:
                    self.last_draw = now
                    self.progress.update(self.batches, completed=batch + 1, logs=fmt_logs(logs or {}))

            def on_epoch_end(self, epoch, logs=None):
                took = time.perf_counter() - self.started
                self.progress.update(self.epochs, completed=epoch + 1)
                self.progress.console.print(f"epoch {epoch + 1}/{epochs}  {took:5.1f}s  {fmt_logs(logs or {})}")

            def on_train_end(self, logs=None):
                reporter.close()

        return RichProgress()


def history_table(history: dict, best_key: str = "val_loss") -> Table:
    keys = [k for k in history if not k.startswith("val_") and k != "learning_rate"]
    table = Table(title="Training history", title_justify="left")
    table.add_column("epoch", justify="right")
    for key in keys:
        table.add_column(key, justify="right")
        if f"val_{key}" in history:
            table.add_column(f"val_{key}", justify="right")
    values = history.get(best_key) or []
    best = values.index(min(values)) if values else None
    for i in range(len(next(iter(history.values()), []))):
        cells = []
        for key in keys:
            cells.append(f"{history[key][i]:.4f}")
            if f"val_{key}" in history:
                cells.append(f"{history[f'val_{key}'][i]:.4f}")
        table.add_row(f"{i + 1}" + (" *" if i == best else ""), *cells)
    return table

"""Live training progress with rich: an epoch bar, a batch bar with live loss/metrics, epoch lines."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

# Redrawing on every batch would cost more than small batches take; 10 redraws a second look live.
REFRESH_S = 0.1


def _log_order(key: str) -> tuple[int, int]:
    """loss before metrics, training before validation: Keras 3 hands `accuracy` first and tf-keras (multi_worker)
    `loss` first, so without a fixed order the same run would print differently on one and several workers."""
    val = key.startswith("val_")
    return (int(val), int(key.removeprefix("val_") != "loss"))


def ordered_keys(keys) -> list[str]:
    """`keys` (log or history names) in display order: loss, metrics as recorded, val_loss, val_ metrics."""
    keys = [k for k in keys if k != "learning_rate"]
    return sorted(keys, key=_log_order)  # sorted() is stable: metrics keep their recorded order


def fmt_logs(logs: dict) -> str:
    return "  ".join(f"{k} {logs[k]:.4f}" for k in ordered_keys(logs))


def epoch_line(epoch: int, epochs: int, seconds: float, logs: dict) -> str:
    """`epoch  9/12    2.1s  loss 0.1276 val 0.0941  accuracy 0.9542 val 0.9722`.

    The epoch number is padded to the width of the total, so the columns stay put from epoch 10 on; each
    quantity is followed by its validation value (`val`) rather than repeating `val_accuracy`, so that a loss
    and a metric fit in 80 columns."""
    parts = []
    for key in ordered_keys(logs):
        if key.startswith("val_") and key[4:] in logs:
            continue  # printed next to its training twin
        part = f"{key} {logs[key]:.4f}"
        if f"val_{key}" in logs:
            part += f" val {logs[f'val_{key}']:.4f}"
        parts.append(part)
    return f"epoch {epoch:>{len(str(epochs))}}/{epochs}  {seconds:5.1f}s  " + "  ".join(parts)


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
                self.progress.console.print(epoch_line(epoch + 1, epochs, took, logs or {}))

            def on_train_end(self, logs=None):
                reporter.close()

        return RichProgress()


def history_table(history: dict, best_key: str = "val_loss") -> Table:
    keys = [k for k in ordered_keys(history) if not k.startswith("val_")]
    values = history.get(best_key) or []
    best = values.index(min(values)) if values else None
    table = Table(
        title="Training history",
        title_justify="left",
        caption=None if best is None else f"* best epoch: lowest {best_key}",
        caption_justify="left",
    )
    table.add_column("epoch", justify="right")
    for key in keys:
        table.add_column(key, justify="right")
        if f"val_{key}" in history:
            table.add_column(f"val_{key}", justify="right")
    for i in range(len(next(iter(history.values()), []))):
        cells = []
        for key in keys:
            cells.append(f"{history[key][i]:.4f}")
            if f"val_{key}" in history:
                cells.append(f"{history[f'val_{key}'][i]:.4f}")
        table.add_row(f"{i + 1}" + (" *" if i == best else ""), *cells)
    return table

"""Every picture cnnkit draws, as matplotlib PNGs (no TensorFlow, no graphviz), but the architecture: that one is
drawn with Pillow in cnnkit.viz.architecture, so that `plot architecture` never pays matplotlib's import.

Figures are built with `matplotlib.figure.Figure` rather than pyplot: no global figure state, no GUI backend to
pick, nothing left open between calls. Each function writes its PNG through a temporary file in the target folder
and `os.replace`, so a crash never leaves half a picture behind, and returns the final path.

Figure sizes are fixed by the content (panels × a per-panel size, in inches) and saved at `DPI` without
`bbox_inches="tight"`, so a picture's pixel size is predictable: figsize × DPI.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from cnnkit.errors import CnnkitError, DataError
from cnnkit.files import atomic_write
from cnnkit.text import shape_text
from cnnkit.viz.architecture import DPI  # one DPI for every picture


# --------------------------------------------------------------------------------------------- shared helpers
def _new_figure(width_in: float, height_in: float, layout: str | None = "constrained"):
    """A figure of exactly width×height inches; "constrained" layout keeps titles, labels and colorbars inside."""
    from matplotlib.figure import Figure  # deferred: importing cnnkit.viz.plots should cost nothing until it draws

    # Agg truncates width×dpi to an int, so 7.6 in × 120 can come out 911 px; nudging by a thousandth of a pixel
    # makes every picture exactly round(inches × DPI) pixels, which the tests (and page layouts) rely on.
    size = tuple((round(inches * DPI) + 1e-3) / DPI for inches in (width_in, height_in))
    return Figure(figsize=size, dpi=DPI, layout=layout)


def _save(fig, out_path) -> Path:
    """Write `fig` as PNG to `out_path` atomically, then let go of its pixels."""
    # zlib level 3 instead of PIL's 6: half the encoding time for PNGs ~5 % larger.
    try:
        return atomic_write(
            Path(out_path), lambda handle: fig.savefig(handle, format="png", dpi=DPI, pil_kwargs={"compress_level": 3})
        )
    finally:
        _release(fig)


def _release(fig) -> None:
    """Free a drawn figure's pixel buffer now. A figure and its axes and artists refer to each other in cycles, so
    without this the buffer (4 bytes a pixel: ~10 MB for the 8-row Grad-CAM picture) waits for the cyclic garbage
    collector, and the pictures of a run pile up in the memory of `cnnkit train`, beside its picture process."""
    fig.canvas.renderer = None  # Agg's renderer holds the buffer; get_renderer() makes a new one if ever drawn again
    fig.canvas._lastKey = None
    fig.clear()


def _as_display_image(image: np.ndarray, what: str) -> np.ndarray:
    """uint8 or float image (H,W), (H,W,1) or (H,W,3) -> float (H,W) or (H,W,3) in [0, 1] for imshow."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (3, 4)):
        raise DataError(f"{what} must be (H, W), (H, W, 1) or (H, W, 3), got shape {image.shape}")
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    image = np.nan_to_num(image.astype(np.float32))
    # Float images are meant to be in [0, 1]; a 0..255 float image is common enough to rescale rather than clip white.
    if image.size and image.max() > 1.0 + 1e-6:
        image = image / 255.0 if image.max() <= 255.0 else (image - image.min()) / np.ptp(image)
    return np.clip(image, 0.0, 1.0)


def _show(ax, image: np.ndarray, **kwargs) -> None:
    """imshow with pixels as squares and no ticks: feature maps are read as pictures, not as plots."""
    if image.ndim == 2:
        kwargs.setdefault("cmap", "gray")
    ax.imshow(image, interpolation="nearest", **kwargs)
    ax.set_xticks([])
    ax.set_yticks([])


def _normalise(array: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] by the array's own range (a constant array becomes mid-grey rather than dividing by 0)."""
    array = np.nan_to_num(np.asarray(array, dtype=np.float64))
    lo, hi = float(array.min()), float(array.max())
    if hi - lo < 1e-12:
        return np.full_like(array, 0.5)
    return (array - lo) / (hi - lo)


# A picture of many images (the grid of mistakes, the Grad-CAM rows) paints them as pixels at the picture's DPI and
# places them as figure images: an Axes per image costs ~40 ms to make, draw and clear, which for 16-32 images was most
# of the picture's time.
TITLE_PAD = 6 / 72  # inches between a painted panel and its title: matplotlib's own Axes title pad (6 points)


def _paint_panel(fig, shape: tuple[int, int], paint, box: tuple[float, float, float], title: str, **style) -> None:
    """Place an image of `shape` (rows, cols) centred in the square `box` (x, y, side; inches from the bottom-left) of
    `fig`, at its aspect ratio and framed by one dark pixel, as imshow in a square Axes with its spines shows it, and
    `title` above it (`style`: Text properties). `paint(h, w)` returns its RGB pixels in [0, 1] at h×w."""
    x, y, side = box
    scale = round(side * DPI) / max(shape)
    h, w = max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale))
    pixels = np.array(paint(h, w), dtype=np.float64)
    pixels[[0, -1], :] = pixels[:, [0, -1]] = 0.0
    left = round(x * DPI) + (round(side * DPI) - w) // 2
    bottom = round(y * DPI) + (round(side * DPI) - h) // 2
    fig.figimage(pixels, xo=left, yo=bottom, origin="upper")
    width, height = fig.get_size_inches()
    top = (bottom + h) / DPI + TITLE_PAD
    fig.text((x + side / 2) / width, top / height, title, ha="center", va="bottom", **style)


def _blocks(image: np.ndarray):
    """A painter of `image` ((H, W) grey or (H, W, 3) in [0, 1]) with each pixel a block, as imshow's nearest."""
    return lambda h, w: _rgb(_resample(image, h, w, smooth=False))


def _rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image[..., :3]


def _resample(a: np.ndarray, h: int, w: int, smooth: bool) -> np.ndarray:
    """`a` (H, W[, C]) at h×w pixels: each pixel takes the value under its centre (nearest) or the linear blend of
    the values around it (resize_linear), as matplotlib's nearest and bilinear interpolation do."""
    if smooth:
        return resize_linear(a, (h, w))
    rows, cols = a.shape[:2]
    ys = ((np.arange(h) + 0.5) * rows / h).astype(int)
    xs = ((np.arange(w) + 0.5) * cols / w).astype(int)
    return a[np.minimum(ys, rows - 1)][:, np.minimum(xs, cols - 1)]


def resize_linear(a: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """Linear resize of the leading axes of `a` to `size`, pixel centres aligned and edges held (as tf.image.resize,
    bilinear): Grad-CAM's maps to the input's size, and the heat painted over an image."""
    a = np.asarray(a, np.float64)
    for axis, (old, new) in enumerate(zip(a.shape, size)):
        if old == new:
            continue
        where = np.clip((np.arange(new) + 0.5) * old / new - 0.5, 0, old - 1)
        a = np.apply_along_axis(lambda line, w=where, n=old: np.interp(w, np.arange(n), line), axis, a)
    return a


def _grid(n: int, max_cols: int) -> tuple[int, int]:
    cols = max(1, min(n, max_cols))
    return math.ceil(n / cols), cols


# ------------------------------------------------------------------------------------------------- curves
def _best_epoch(values: list[float], monitor: str) -> int | None:
    arr = np.asarray(values, dtype=np.float64)
    if not np.isfinite(arr).any():
        return None
    arr = np.where(np.isfinite(arr), arr, np.inf if "loss" in monitor else -np.inf)
    return int(np.argmin(arr) if "loss" in monitor else np.argmax(arr))


def plot_curves(history: dict[str, list[float]], out_path, *, monitor: str = "val_loss") -> Path:
    """One panel per quantity (loss, then each metric): train and val_ per epoch, best `monitor` epoch marked.

    The best epoch is the minimum of `monitor` when its name contains "loss", else the maximum. When the run has
    no validation data, `val_loss` falls back to `loss` (the annotation names the quantity actually used).
    """
    from matplotlib.ticker import MaxNLocator

    if not isinstance(history, dict) or not history:
        raise DataError(f"history must be a non-empty dict of name -> per-epoch values, got {history!r:.60}")
    series: dict[str, list[float]] = {}
    for key, values in history.items():
        try:
            series[str(key)] = [float(v) for v in values]
        except (TypeError, ValueError):
            raise DataError(f"history['{key}'] must be a list of numbers, got {values!r:.60}") from None
    if not any(series.values()):
        raise DataError("history has no epochs: every quantity is an empty list")

    # A quantity is the train name; its val_ twin is drawn on the same panel. A lone val_x still gets a panel.
    quantities = [k for k in series if not k.startswith("val_")]
    quantities += [k for k in series if k.startswith("val_") and k[4:] not in series]
    quantities.sort(key=lambda k: k.removeprefix("val_") != "loss")  # loss first, the rest as recorded

    used = monitor if monitor in series else monitor.removeprefix("val_")
    best = _best_epoch(series[used], used) if series.get(used) else None

    rows, cols = _grid(len(quantities), 3)
    fig = _new_figure(4.5 * cols, 3.4 * rows + 0.6)
    n_epochs = max(len(v) for v in series.values())
    fig.suptitle(f"Training curves: {n_epochs} epoch{'s' * (n_epochs != 1)}", fontsize=13, fontweight="bold")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(quantities) :]:
        ax.set_visible(False)

    for ax, name in zip(axes.flat, quantities):
        base = name.removeprefix("val_")
        styles = [(base, "train", "#1f77b4"), ("val_" + base, "validation", "#ff7f0e")]
        for key, label, colour in styles:
            values = series.get(key)
            if not values:
                continue
            epochs = np.arange(1, len(values) + 1)
            ax.plot(
                epochs,
                values,
                color=colour,
                label=label,
                marker="o" if len(values) <= 30 else None,
                markersize=3.5,
                linewidth=1.6,
            )
        ax.set_title(base, fontsize=11)
        ax.set_xlabel("epoch")
        ax.set_ylabel(base)
        ax.grid(alpha=0.3)
        # Epochs are whole numbers; matplotlib would otherwise label 1.5, 2.5, ... on short runs.
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if best is not None:
            ax.axvline(best + 1, color="#2ca02c", linestyle="--", linewidth=1.2, label=f"best epoch ({best + 1})")
        if best is not None and name in (used, used.removeprefix("val_")):
            value = series[used][best]
            ax.annotate(
                f"best {used}\nepoch {best + 1}: {value:.4g}",
                xy=(best + 1, value),
                xytext=(0.5, 0.55),
                textcoords="axes fraction",
                ha="center",
                fontsize=8.5,
                bbox=dict(boxstyle="round,pad=0.3", fc="white", ec="#2ca02c", alpha=0.9),
                arrowprops=dict(arrowstyle="->", color="#2ca02c"),
            )
        ax.legend(fontsize=8, loc="best")
    return _save(fig, out_path)


# ---------------------------------------------------------------------------------------------- confusion
def plot_confusion(cm: np.ndarray, class_names: list[str] | None, out_path) -> Path:
    """Counts and row-normalised (recall) confusion matrices side by side; rows are true, columns predicted."""
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] == 0:
        raise DataError(f"confusion matrix must be square (K, K), got shape {cm.shape}")
    k = cm.shape[0]
    names = [str(i) for i in range(k)] if class_names is None else [str(c) for c in class_names]
    if len(names) != k:
        raise DataError(f"confusion matrix is {k}×{k} but {len(names)} class names were given")
    short = [n if len(n) <= 14 else n[:13] + "…" for n in names]
    counts = cm.astype(np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    recall = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    n = counts.sum()
    accuracy = np.trace(counts) / n if n else 0.0

    side = float(np.clip(0.42 * k + 2.0, 4.5, 12.0))  # inches per panel: cells stay readable up to ~25 classes
    # + colorbars; + title and slanted class names. The cells fill whatever the layout leaves them (aspect "auto"):
    # square cells would leave the constrained layout an empty band above and below, and an axis label it
    # cannot see past (the right panel's "true class" ran into the left colour bar at 2 classes).
    fig = _new_figure(2 * side + 1.5, side + 1.0)
    fig.suptitle(
        f"Confusion matrix: {int(n)} samples, {k} classes, accuracy {accuracy:.1%}", fontsize=13, fontweight="bold"
    )
    axes = fig.subplots(1, 2)
    annotate = k <= 20
    tick_step = max(1, math.ceil(k / 40))  # 100 classes: label every 3rd so the names do not overprint
    label_size = float(np.clip(11 - 0.25 * k, 6, 10))
    panels = (
        (counts, "counts", "Blues", lambda v: f"{int(v)}"),
        (recall, "row-normalised (recall per true class)", "Greens", _percent),
    )
    for ax, (matrix, title, cmap, fmt) in zip(axes, panels):
        vmax = 1.0 if matrix is recall else max(matrix.max(), 1.0)  # recall on a fixed 0..100% scale
        image = ax.imshow(matrix, cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest", aspect="auto")
        bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        if matrix is recall:
            from matplotlib.ticker import PercentFormatter

            bar.ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_title(title, fontsize=11)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ticks = np.arange(0, k, tick_step)
        ax.set_xticks(
            ticks, [short[i] for i in ticks], rotation=45, ha="right", rotation_mode="anchor", fontsize=label_size
        )
        ax.set_yticks(ticks, [short[i] for i in ticks], fontsize=label_size)
        if annotate:
            size = float(np.clip(12 - 0.35 * k, 6, 10))
            for (r, c), v in np.ndenumerate(matrix):
                if counts[r, c] == 0 and r != c:
                    continue  # empty off-diagonal cells stay quiet so the mistakes stand out
                ax.text(
                    c, r, fmt(v), ha="center", va="center", fontsize=size, color="white" if v > 0.6 * vmax else "black"
                )
    return _save(fig, out_path)


def _percent(share: float) -> str:
    """A cell's share as a whole percentage; a non-zero share that would round to 0% reads `<1%`, not `0%`, and one
    short of all `>99%`, so a handful of mistakes never disappears into the rounding."""
    if 0 < share < 0.005:
        return "<1%"
    if 0.995 <= share < 1:
        return ">99%"
    return f"{share:.0%}"


# ----------------------------------------------------------------------------------------- misclassified
def _label(names: Sequence[str] | None, index: int) -> str:
    if names is not None and 0 <= index < len(names):
        return str(names[index])
    return str(index)


MISTAKES_SHOWN = 16  # images in misclassified.png
MISTAKE_CELL = (1.9, 2.15)  # inches per image of misclassified.png, its two-line title included
MISTAKE_TITLE = 0.45  # inches of a cell above its image: two lines at 8.5 pt and their pad
MISTAKES_HEAD = 0.7  # inches above the grid for the picture's two-line title


def most_confident_mistakes(y_true, y_pred, confidence, n: int) -> np.ndarray:
    """Indices of the `n` wrong predictions with the highest confidence, most confident first (ties: in order)."""
    y_true, y_pred = np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1)
    confidence = np.nan_to_num(np.asarray(confidence, dtype=np.float64).reshape(-1), nan=-1.0)
    wrong = np.flatnonzero(y_true != y_pred)
    return wrong[np.argsort(-confidence[wrong], kind="stable")][:n]


def plot_misclassified(
    images: np.ndarray,
    y_true,
    y_pred,
    confidence,
    class_names: list[str] | None,
    out_path,
    *,
    n: int = MISTAKES_SHOWN,
) -> Path:
    """A grid of the `n` most confidently wrong predictions, each titled "true: X / pred: Y (97%)".

    `images` is (N, H, W, C) uint8 or float in [0, 1]; `confidence` is the probability given to the predicted
    class. With no mistakes the picture is a placeholder panel that says so.
    """
    return plot_mistakes(
        class_names=class_names, out_path=out_path, **chosen_mistakes(images, y_true, y_pred, confidence, n)
    )


def chosen_mistakes(images, y_true, y_pred, confidence, n: int = MISTAKES_SHOWN) -> dict:
    """plot_mistakes' arguments for the `n` most confident mistakes: their images, labels and confidences, and how
    many of all the predictions were wrong."""
    images, y_true, y_pred, confidence = _checked_predictions(images, y_true, y_pred, confidence)
    if n < 1:
        raise CnnkitError(f"n must be a positive number of images, got {n}")
    order = most_confident_mistakes(y_true, y_pred, confidence, n)
    return {
        "images": images[order],
        "y_true": y_true[order],
        "y_pred": y_pred[order],
        "confidence": confidence[order],
        "wrong": int(np.count_nonzero(y_true != y_pred)),
        "total": len(y_true),
    }


def _checked_predictions(images, y_true, y_pred, confidence):
    images = np.asarray(images)
    y_true, y_pred = np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1)
    confidence = np.asarray(confidence, dtype=np.float64).reshape(-1)
    if images.ndim == 3:
        images = images[..., None]  # (N, H, W) greyscale
    if images.ndim != 4:
        raise DataError(f"images must be (N, H, W, C), got shape {images.shape}")
    count = images.shape[0]
    for name, arr in (("y_true", y_true), ("y_pred", y_pred), ("confidence", confidence)):
        if arr.shape[0] != count:
            raise DataError(f"{name} has {arr.shape[0]} entries but there are {count} images")
    return images, y_true, y_pred, confidence


def plot_mistakes(
    images: np.ndarray, y_true, y_pred, confidence, class_names: list[str] | None, out_path, *, wrong: int, total: int
) -> Path:
    """The grid of plot_misclassified for mistakes already chosen (in the order shown): `wrong` of `total`
    predictions were wrong. A picture needs only these few images, not the whole test set (cnnkit.viz.side_process)."""
    images, y_true, y_pred, confidence = _checked_predictions(images, y_true, y_pred, confidence)
    if wrong == 0:
        fig = _new_figure(6.0, 3.0, layout=None)
        ax = fig.add_axes((0.05, 0.08, 0.9, 0.84))
        ax.set_facecolor("#e5f5e0")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.text(
            0.5,
            0.6,
            "No misclassified images",
            ha="center",
            va="center",
            fontsize=18,
            fontweight="bold",
            color="#1b7837",
            transform=ax.transAxes,
        )
        ax.text(
            0.5,
            0.35,
            f"all {total} predictions are correct",
            ha="center",
            va="center",
            fontsize=12,
            color="#333333",
            transform=ax.transAxes,
        )
        return _save(fig, out_path)

    shown = len(images)
    rows, cols = _grid(shown, math.ceil(math.sqrt(shown)))
    width, height = max(MISTAKE_CELL[0] * cols, 5.0), MISTAKE_CELL[1] * rows + MISTAKES_HEAD
    fig = _new_figure(width, height, layout=None)  # laid out by hand: the images are painted (see _paint_panel)
    # Two lines: in one, the title is wider than a 3-column grid and was cut off at both edges.
    fig.suptitle(
        f"Most confident mistakes\n{shown} shown of {wrong} wrong ({wrong / total:.1%} of {total})",
        fontsize=12,
        fontweight="bold",
        y=1 - 0.08 / height,
        va="top",
    )
    cell = width / cols
    side = min(cell, MISTAKE_CELL[1] - MISTAKE_TITLE) - 0.08
    for i, (image, true, pred, sure) in enumerate(zip(images, y_true, y_pred, confidence)):
        r, c = divmod(i, cols)
        shown_image = _as_display_image(image, "each image")
        box = (c * cell + (cell - side) / 2, height - MISTAKES_HEAD - (r + 1) * MISTAKE_CELL[1] + 0.04, side)
        title = f"true: {_label(class_names, int(true))}\npred: {_label(class_names, int(pred))} ({sure:.0%})"
        _paint_panel(fig, shown_image.shape[:2], _blocks(shown_image), box, title, fontsize=8.5, color="#b2182b")
    return _save(fig, out_path)


# ----------------------------------------------------------------------------------------------- filters
def plot_filters(kernel: np.ndarray, out_path, *, title: str, max_filters: int = 64) -> Path:
    """The learned kernels of one conv layer as a grid, one tile per filter.

    2-D kernels (kh, kw, in, out): a colour patch per filter when in == 3, otherwise a grey image of channel 0
    (in == 1) or of the mean over input channels. 1-D kernels (k, in, out) are drawn as bars; 3-D kernels
    (kd, kh, kw, in, out) show their middle depth slice. Each tile is scaled to its own min..max.
    """
    kernel = np.nan_to_num(np.asarray(kernel, dtype=np.float64))
    if kernel.ndim not in (3, 4, 5) or kernel.size == 0:
        raise DataError(
            f"kernel must be (k, in, out), (kh, kw, in, out) or (kd, kh, kw, in, out), got shape {kernel.shape}"
        )
    notes = []
    if kernel.ndim == 5:
        depth = kernel.shape[0]
        kernel = kernel[depth // 2]
        notes.append(f"middle depth slice {depth // 2} of {depth}")
    spatial, in_ch, out_ch = kernel.shape[:-2], kernel.shape[-2], kernel.shape[-1]
    shown = min(out_ch, max_filters)
    colour = len(spatial) == 2 and in_ch == 3
    if colour:
        notes.append("RGB per filter")
    elif in_ch == 1:
        notes.append("input channel 0")
    else:
        notes.append(f"mean over {in_ch} input channels")
    notes.append(f"{shown} of {out_ch} filters" if shown < out_ch else f"{out_ch} filters")
    if len(spatial) != 2:
        notes.append("blue > 0, red < 0")

    rows, cols = _grid(shown, 8 if shown > 16 else max(4, math.ceil(math.sqrt(shown))))
    tile = 1.15 if len(spatial) == 2 else 1.5
    scale = 0.55 if len(spatial) == 2 else 0.0  # room for the colour bar that says what dark and light mean
    fig = _new_figure(max(tile * cols, 5.5), tile * rows + 0.9 + scale)
    fig.suptitle(f"{title}\nkernel size {shape_text(spatial)} · " + " · ".join(notes), fontsize=10.5)
    if len(spatial) == 2:
        patches = [
            _normalise(kernel[..., f])
            if colour
            else _normalise(kernel[..., 0, f] if in_ch == 1 else kernel[..., f].mean(-1))
            for f in range(shown)
        ]
        axes = _filter_mosaic(fig.add_subplot(), patches, rows, cols)
    else:
        axes = fig.subplots(rows, cols, squeeze=False)
        for ax in axes.flat:
            ax.set_axis_off()
        for f, ax in zip(range(shown), axes.flat):
            ax.set_axis_on()
            weights = kernel[..., f]
            taps = weights[:, 0] if in_ch == 1 else weights.mean(axis=-1)
            ax.bar(np.arange(len(taps)), taps, color=np.where(taps >= 0, "#2166ac", "#b2182b"), width=0.8)
            ax.axhline(0, color="black", linewidth=0.6)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"#{f}", fontsize=7, pad=2)
    if scale:
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        bar = fig.colorbar(
            ScalarMappable(Normalize(0.0, 1.0), cmap="gray"),
            ax=axes,
            orientation="horizontal",
            fraction=0.35 / (tile * rows + 0.9 + scale),
            aspect=40,
            shrink=0.7,
            ticks=[0.0, 0.5, 1.0],
        )
        bar.ax.set_xticklabels(["lowest weight", "middle", "highest weight"], fontsize=7.5)
        bar.set_label("each filter on its own scale" + (", per colour" if colour else ""), fontsize=7.5)
    return _save(fig, out_path)


def _filter_mosaic(ax, patches: list[np.ndarray], rows: int, cols: int):
    """2-D kernels as ONE image of rows × cols tiles, each titled #f in the gap above it.

    One Axes instead of one per filter: with 32 filters the Axes and their layout were most of the picture's
    1.5-2 s (the same fix as the feature maps' _mosaic)."""
    from matplotlib.patches import Rectangle

    h, w = patches[0].shape[:2]
    gap, head = max(1, round(max(h, w) / 6)), max(1, round(max(h, w) / 3))  # between tiles; above each, for #f
    canvas = np.zeros(((rows * (h + head) + (rows - 1) * gap), cols * w + (cols - 1) * gap, 4))  # transparent
    for f, patch in enumerate(patches):
        r, c = divmod(f, cols)
        top, left = r * (h + head + gap) + head, c * (w + gap)
        rgb = patch if patch.ndim == 3 else np.repeat(patch[..., None], 3, axis=-1)
        canvas[top : top + h, left : left + w] = np.concatenate([rgb, np.ones((h, w, 1))], axis=-1)
        ax.text(left + w / 2 - 0.5, top - 0.5, f"#{f}", ha="center", va="bottom", fontsize=7)
        # A frame per tile, as each Axes had: a kernel's white (highest) pixels must not melt into the page.
        ax.add_patch(
            Rectangle((left - 0.5, top - 0.5), w, h, fill=False, linewidth=0.8, edgecolor="black", clip_on=False)
        )
    ax.imshow(canvas, interpolation="nearest")
    ax.set_axis_off()
    return ax


# ------------------------------------------------------------------------------------------ feature maps
def _squeeze_batch(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    return array[0] if array.ndim >= 2 and array.shape[0] == 1 and array.ndim in (3, 4, 5) else array


_CHANNEL_LABEL = dict(fontsize=6.5, color="white", bbox=dict(boxstyle="square,pad=0.1", fc="black", alpha=0.5, lw=0))


def _mosaic(sub, fmap: np.ndarray, pick: np.ndarray, rows: int, cols: int, area: dict) -> None:
    """A layer's chosen (H, W) maps as ONE image of rows × cols tiles, each on its own min..max scale.

    One Axes per layer instead of one per channel: creating a matplotlib Axes costs ~20 ms, and a 4-layer net
    with 16 channels each made 64 of them, most of the picture's time (`plot feature-maps` took 21 s)."""
    from matplotlib import colormaps

    h, w = fmap.shape[:2]
    gap = max(1, round(max(h, w) / 10))  # about a tenth of a tile between tiles, at least a pixel
    canvas = np.full((rows * h + (rows - 1) * gap, cols * w + (cols - 1) * gap), np.nan)
    for n, ch in enumerate(pick):
        r, c = divmod(n, cols)
        canvas[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = _normalise(fmap[..., ch])
    cmap = colormaps["viridis"].with_extremes(bad=(0, 0, 0, 0))  # the gaps show the block's background
    ax = sub.add_axes((area["left"], area["bottom"], area["right"] - area["left"], area["top"] - area["bottom"]))
    ax.imshow(canvas, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    for n, ch in enumerate(pick):
        r, c = divmod(n, cols)
        ax.text(c * (w + gap) - 0.5, r * (h + gap) - 0.5, f"{ch}", va="top", ha="left", **_CHANNEL_LABEL)


def plot_feature_maps(
    image: np.ndarray, maps: list[tuple[str, np.ndarray]], out_path, *, max_channels: int = 16
) -> Path:
    """The input, then one labelled block per layer with up to `max_channels` of its activation maps.

    Maps are (H, W, C) (a leading batch axis of 1 is dropped); (steps, C) maps are drawn as line plots and
    (D, H, W, C) maps show their middle depth slice. Each block shows the most active channels (largest
    spread), because ReLU layers often have dead channels that would show as flat tiles and teach nothing.
    """
    if max_channels < 1:
        raise CnnkitError(f"max_channels must be a positive int, got {max_channels}")
    display = _as_display_image(image, "image")
    layers = []
    for name, fmap in maps:
        fmap = _squeeze_batch(fmap).astype(np.float64)
        if fmap.ndim == 1:
            fmap = fmap[:, None]  # a vector: one "channel" drawn as a line
        if fmap.ndim not in (2, 3, 4):
            raise DataError(
                f"feature map '{name}' must be (H, W, C), (steps, C) or (D, H, W, C), got shape {fmap.shape}"
            )
        shape = fmap.shape
        if fmap.ndim == 4:
            fmap = fmap[shape[0] // 2]
        channels = fmap.shape[-1]
        spread = np.nan_to_num(fmap.reshape(-1, channels).std(axis=0))
        pick = np.sort(np.argsort(-spread, kind="stable")[:max_channels])
        layers.append((str(name), shape, fmap, pick))

    cols = max([min(8, len(p)) for *_, p in layers] + [1])
    tile = 1.25
    # Rows of the page, in inches: title, input image, then one block per layer (a label line + its tiles).
    heights = [0.5, 2.3] + [0.45 + tile * math.ceil(len(p) / cols) for *_, p in layers]
    fig_w = max(tile * cols + 0.4, 6.0)
    fig = _new_figure(fig_w, sum(heights), layout=None)  # the subfigures below are laid out by hand
    subfigs = fig.subfigures(len(heights), 1, height_ratios=heights, squeeze=False)[:, 0]
    subfigs[0].suptitle(
        f"Feature maps: what each layer sees ({len(layers)} layers)", fontsize=13, fontweight="bold", y=0.6, va="center"
    )

    ax = subfigs[1].add_axes((0.5 - 0.95 / fig_w, 0.04, 1.9 / fig_w, 1.9 / 2.3))  # a 1.9-inch input, centred
    _show(ax, display, vmin=0.0, vmax=1.0)
    ax.set_title(f"input · {shape_text(np.asarray(image).shape)}", fontsize=10)

    for i, (sub, (name, shape, fmap, pick)) in enumerate(zip(subfigs[2:], layers)):
        sub.set_facecolor("#f2f2f2" if i % 2 == 0 else "white")
        chosen = (
            f"{len(pick)} most active of {fmap.shape[-1]} channels"
            if len(pick) < fmap.shape[-1]
            else f"all {fmap.shape[-1]} channels"
        )
        sub.suptitle(f"{name} · {shape_text(shape)}   ({chosen})", fontsize=10, fontweight="bold", y=0.98, va="top")
        rows = math.ceil(len(pick) / cols)
        area = dict(top=1 - 0.45 / heights[i + 2], bottom=0.03, left=0.02, right=0.98)
        if fmap.ndim == 3:
            _mosaic(sub, fmap, pick, rows, cols, area)
            continue
        axes = sub.subplots(rows, cols, squeeze=False, gridspec_kw=dict(**area, wspace=0.08, hspace=0.25))
        for ax in axes.flat:
            ax.set_axis_off()
        for ax, ch in zip(axes.flat, pick):
            ax.set_axis_on()
            ax.plot(fmap[:, ch], color="#1f77b4", linewidth=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.text(0.03, 0.97, f"{ch}", transform=ax.transAxes, va="top", **_CHANNEL_LABEL)
    return _save(fig, out_path)


# ------------------------------------------------------------------------------------- kernel playground
def _matrix_text(kernel: np.ndarray) -> str:
    kernel = np.atleast_2d(np.asarray(kernel, dtype=np.float64))
    cells = [[f"{v:.3g}" if v != int(v) else f"{int(v)}" for v in row] for row in kernel]
    width = max(len(c) for row in cells for c in row)
    return "\n".join(" ".join(c.rjust(width) for c in row) for row in cells)


def plot_kernel_playground(
    image: np.ndarray, results: list[tuple[str, np.ndarray]], out_path, *, kernels: dict[str, np.ndarray]
) -> Path:
    """The input image and each kernel's output side by side, the kernel's numbers printed under its name.

    Outputs are signed (an edge filter gives negative values on one side of an edge), so each is shown on its
    own min..max scale: mid-grey is "nothing here", white and black are the two directions of response.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise DataError(f"image must be a 2-D (H, W) greyscale array, got shape {image.shape}")
    panels = [("input", image, None)] + [(str(name), np.asarray(out), kernels.get(name)) for name, out in results]
    for name, out, _ in panels:
        if out.ndim != 2:
            raise DataError(f"output '{name}' must be a 2-D (H, W) array, got shape {out.shape}")
    max_lines = max([np.atleast_2d(k).shape[0] for *_, k in panels if k is not None] + [0])
    rows, cols = _grid(len(panels), 5)
    head = 0.35 + 0.12 * max_lines  # room above each image for the name and the kernel's rows
    tile = 2.6
    fig = _new_figure(max(tile * cols, 6.0), (tile + head) * rows + 0.6)
    fig.suptitle("Kernel playground: one hand-made filter per panel", fontsize=13, fontweight="bold")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, (name, out, kernel) in zip(axes.flat, panels):
        ax.set_axis_on()
        out = np.nan_to_num(out.astype(np.float64))
        _show(ax, out if name == "input" and out.min() >= 0 and out.max() <= 1 else _normalise(out), vmin=0.0, vmax=1.0)
        ax.set_xlabel(f"{shape_text(out.shape)} · min {out.min():.3g} · max {out.max():.3g}", fontsize=7)
        if kernel is None:
            ax.set_title(name, fontsize=10, fontweight="bold")
            continue
        lines = np.atleast_2d(kernel).shape[0]
        ax.set_title(name, fontsize=10, fontweight="bold", pad=6 + 8.6 * lines)
        ax.text(
            0.5,
            1.02,
            _matrix_text(kernel),
            transform=ax.transAxes,
            ha="center",
            va="bottom",
            fontsize=7,
            family="monospace",
            color="#333333",
            linespacing=1.1,
        )
    return _save(fig, out_path)

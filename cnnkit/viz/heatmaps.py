"""The Grad-CAM / saliency picture: one row per input (no TensorFlow; the maps come from cnnkit.viz.gradcam).

Each row: the input, the heat map of the predicted class, that map over the input, the map of the true class
over the input (when the prediction is wrong), and the top-3 probabilities. A 1-D (Conv1D) model's Grad-CAM is a
strip beside its input: one value per step, the steps running down the rows of the input.

The image panels of a row are painted here, pixel for pixel at the picture's DPI, and placed as figure images, not
drawn in Axes of their own: 8 rows of 4 image Axes cost ~1.3 s of the picture's ~2 s (making, drawing and clearing
them), on the way from the last epoch of `cnnkit train` to its prompt. Only the probability bars, and the panels of
a 1-D strip with its `step` axis, are Axes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnkit.errors import DataError
from cnnkit.viz.plots import _as_display_image, _blocks, _new_figure, _paint_panel, _resample, _save, _show

HEAT_CMAP = "jet"  # the Grad-CAM paper's colours: blue is no evidence, red the strongest
HEAT_ALPHA = 0.5
TILE = 1.9  # inches per image panel
BARS = 2.5  # inches for the probability panel
ROW = TILE * 1.12  # inches per row: a panel and its two-line title
HEAD = 0.9  # inches above the rows, for the picture's two-line title
TITLE = 0.4  # inches above each panel for its title
ROW_GAP = 0.12  # inches between a row's panels and the next row's titles
NAMES = 0.95  # inches left of the bars for class names (14 characters at 8 pt)
TICKS = 0.3  # inches under the bars for their percent ticks

_TITLES = {
    "mistakes": "{method} of the most confident mistakes: where the evidence came from",
    "no_mistakes": "No mistakes: {method} of the {n} least confident correct answers",
    "test": "{method} of {n} test image{s}",
    "images": "{method} of {n} image{s}",
}


def _name(names, index: int | None) -> str:
    if index is None:
        return "?"
    return str(names[index]) if names is not None and 0 <= index < len(names) else str(index)


def plot_explanations(found, out_path, *, method: str, where: str, class_names=None, kind: str = "test") -> Path:
    """A grid of Explanation rows (see cnnkit.viz.gradcam) as a PNG; returns its path."""
    if not found:
        raise DataError("nothing to explain: no inputs were given")
    with_true = any(e.heat_true is not None for e in found)
    columns = 5 if with_true else 4
    label = "Grad-CAM" if method == "gradcam" else "Saliency"
    width = TILE * (columns - 1) + BARS
    n = len(found)
    height = ROW * n + HEAD
    # Laid out by hand: matplotlib's constrained layout took 1.2 of the picture's 3 s for 8 rows of 5 panels.
    fig = _new_figure(width, height, layout=None)
    fig.suptitle(
        _TITLES[kind].format(method=label, n=n, s="s" * (n != 1))
        + (
            f"\nlayer {where} · red = strong evidence for the class named above the panel"
            if method == "gradcam"
            else "\n|d class score / d pixel| · red = the pixels the class score is most sensitive to"
        ),
        fontsize=10.5,
        fontweight="bold",
        y=1 - 0.1 / height,
        va="top",
    )
    for r, item in enumerate(found):
        boxes = _row_boxes(r, columns, width, height)
        if np.asarray(item.heat).ndim == 2:
            _paint_row(fig, boxes, item, class_names, with_true, label)
        else:
            row = [fig.add_axes((x / width, y / height, w / width, h / height)) for x, y, w, h in boxes]
            _draw_strip_row(row, item, class_names, with_true, label)
    return _save(fig, out_path)


def _row_boxes(r: int, columns: int, width: float, height: float) -> list[tuple[float, float, float, float]]:
    """Row r's panels (x, y, w, h) in inches: square image panels under a two-line title, then the probability bars
    with room on their left for the class names and below for the percent ticks."""
    bottom = height - HEAD - (r + 1) * ROW + ROW_GAP
    side = ROW - ROW_GAP - TITLE
    panels = [((c * TILE + (TILE - side) / 2), bottom, side, side) for c in range(columns - 1)]
    bars_left = (columns - 1) * TILE + NAMES
    panels.append((bars_left, bottom + TICKS, width - bars_left - 0.2, side - TICKS))
    return panels


def _panel_titles(item, names, with_true: bool, method_label: str) -> list[tuple[str, str] | None]:
    """(text, colour) above each image panel of a row; None: the panel stays empty (a correct answer's row in a
    picture whose other rows show the evidence for the true class)."""
    pred, true = _name(names, item.predicted), _name(names, item.true)
    confidence = float(item.probabilities[item.predicted])
    head = item.label if len(item.label) <= 22 else "…" + item.label[-21:]
    titles = [
        (head + (f"\ntrue: {true}" if item.true is not None else ""), "black"),
        (f"{method_label}: {pred}", "black"),
        (f"pred: {pred} ({confidence:.0%})", "#1b7837" if item.true in (None, item.predicted) else "#b2182b"),
    ]
    if with_true:
        titles.append((f"evidence for true: {true}", "black") if item.heat_true is not None else None)
    return titles


def _paint_row(fig, boxes, item, names, with_true: bool, method_label: str) -> None:
    """A row of an image model: its image panels painted as pixels (see the module's docstring), the bars in Axes."""
    image = _as_display_image(np.asarray(item.image), "each image")
    heat = np.asarray(item.heat, np.float64)
    painters = [_blocks(image), _heat_colours(heat, smooth=False), _blend(image, heat)]
    if with_true and item.heat_true is not None:
        painters.append(_blend(image, np.asarray(item.heat_true, np.float64)))
    for (x, y, w, _h), paint, title in zip(boxes, painters, _panel_titles(item, names, with_true, method_label)):
        if title is not None:
            _paint_panel(fig, image.shape[:2], paint, (x, y, w), title[0], fontsize=8, color=title[1])
    width, height = fig.get_size_inches()
    x, y, w, h = boxes[-1]
    _bars(fig.add_axes((x / width, y / height, w / width, h / height)), item, names)


def _heat_colours(heat: np.ndarray, *, smooth: bool):
    """A painter of the heat map alone, in HEAT_CMAP's colours (nearest: each value a block, as imshow shows it)."""
    from matplotlib import colormaps

    return lambda h, w: colormaps[HEAT_CMAP](np.clip(_resample(heat, h, w, smooth), 0.0, 1.0))[..., :3]


def _blend(image: np.ndarray, heat: np.ndarray):
    """A painter of the heat map over the image at HEAT_ALPHA: the image's pixels as blocks, the heat smoothed
    (bilinear), as the two stacked imshow calls of a 1-D strip's panels draw them."""
    blocks, colours = _blocks(image), _heat_colours(heat, smooth=True)
    return lambda h, w: (1 - HEAT_ALPHA) * blocks(h, w) + HEAT_ALPHA * colours(h, w)


def _draw_strip_row(row, item, names, with_true: bool, method_label: str) -> None:
    """A row of a 1-D model, in Axes: the heat is a strip of steps with a `step` axis."""
    image = _as_display_image(np.asarray(item.image), "each image")
    titles = _panel_titles(item, names, with_true, method_label)
    _show(row[0], image, vmin=0.0, vmax=1.0)
    steps = len(item.heat)  # one value per step: a narrow column as tall as the input's rows
    row[1].imshow(
        item.heat[:, None], cmap=HEAT_CMAP, vmin=0, vmax=1, interpolation="nearest", extent=(0, steps / 6, steps, 0)
    )
    row[1].set_xticks([])
    row[1].set_ylabel("step", fontsize=7)
    row[1].tick_params(labelsize=6)
    _overlay(row[2], image, item.heat)
    if with_true:
        if item.heat_true is not None:
            _overlay(row[3], image, item.heat_true)
        else:
            row[3].set_axis_off()
    for ax, title in zip(row, titles):
        if title is not None:
            ax.set_title(title[0], fontsize=8, color=title[1])
    _bars(row[-1], item, names)


def _overlay(ax, image: np.ndarray, heat: np.ndarray) -> None:
    heat = np.asarray(heat)
    if heat.ndim == 1:  # a step's heat tints its whole row of the input
        heat = np.repeat(heat[:, None], image.shape[1], axis=1)
    _show(ax, image, vmin=0.0, vmax=1.0)
    ax.imshow(heat, cmap=HEAT_CMAP, vmin=0.0, vmax=1.0, alpha=HEAT_ALPHA, interpolation="bilinear")


def _bars(ax, item, names) -> None:
    probs = np.asarray(item.probabilities, np.float64)
    top = np.argsort(-probs, kind="stable")[:3]
    colours = [
        "#1b7837" if c == item.true else "#b2182b" if c == item.predicted and item.true is not None else "#4d4d4d"
        for c in top
    ]
    positions = np.arange(len(top))[::-1]
    ax.barh(positions, probs[top], color=colours, height=0.6)
    ax.set_yticks(positions, [_name(names, int(c))[:14] for c in top], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xticks([0, 0.5, 1], ["0", "50%", "100%"], fontsize=7)
    for pos, value in zip(positions, probs[top]):
        inside = value > 0.7  # long bars carry their label inside, in white
        ax.text(
            value,
            pos,
            f" {value:.1%} ",
            va="center",
            ha="right" if inside else "left",
            fontsize=7,
            color="white" if inside else "black",
        )
    ax.set_title("top-3 probabilities", fontsize=8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)

"""The Grad-CAM / saliency picture: one row per input (no TensorFlow; the maps come from cnnkit.viz.gradcam).

Each row: the input, the heat map of the predicted class, that map over the input, the map of the true class
over the input (when the prediction is wrong), and the top-3 probabilities. A 1-D (Conv1D) model's Grad-CAM is a
strip beside its input: one value per step, the steps running down the rows of the input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnkit.errors import DataError
from cnnkit.viz.plots import _as_display_image, _new_figure, _save, _show

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
        _draw_row(_row_axes(fig, r, columns, width, height), item, class_names, with_true, label)
    return _save(fig, out_path)


def _row_axes(fig, r: int, columns: int, width: float, height: float) -> list:
    """Row r's panels, placed in inches: square image panels under a two-line title, then the probability bars with
    room on their left for the class names and below for the percent ticks."""
    bottom = height - HEAD - (r + 1) * ROW + ROW_GAP
    side = ROW - ROW_GAP - TITLE
    panels = [((c * TILE + (TILE - side) / 2), bottom, side, side) for c in range(columns - 1)]
    bars_left = (columns - 1) * TILE + NAMES
    panels.append((bars_left, bottom + TICKS, width - bars_left - 0.2, side - TICKS))
    return [fig.add_axes((x / width, y / height, w / width, h / height)) for x, y, w, h in panels]


def _draw_row(row, item, names, with_true: bool, method_label: str) -> None:
    image = _as_display_image(np.asarray(item.image), "each image")
    pred, true = _name(names, item.predicted), _name(names, item.true)
    confidence = float(item.probabilities[item.predicted])
    head = item.label if len(item.label) <= 22 else "…" + item.label[-21:]
    _show(row[0], image, vmin=0.0, vmax=1.0)
    row[0].set_title(head + (f"\ntrue: {true}" if item.true is not None else ""), fontsize=8)
    strip = np.asarray(item.heat).ndim == 1
    if strip:  # one value per step: a narrow column as tall as the input's rows
        steps = len(item.heat)
        row[1].imshow(
            item.heat[:, None], cmap=HEAT_CMAP, vmin=0, vmax=1, interpolation="nearest", extent=(0, steps / 6, steps, 0)
        )
        row[1].set_xticks([])
        row[1].set_ylabel("step", fontsize=7)
        row[1].tick_params(labelsize=6)
    else:
        _show(row[1], item.heat, cmap=HEAT_CMAP, vmin=0.0, vmax=1.0)
    row[1].set_title(f"{method_label}: {pred}", fontsize=8)
    _overlay(row[2], image, item.heat)
    colour = "#1b7837" if item.true in (None, item.predicted) else "#b2182b"
    row[2].set_title(f"pred: {pred} ({confidence:.0%})", fontsize=8, color=colour)
    if with_true:
        if item.heat_true is not None:
            _overlay(row[3], image, item.heat_true)
            row[3].set_title(f"evidence for true: {true}", fontsize=8)
        else:
            row[3].set_axis_off()
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

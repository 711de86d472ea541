"""The architecture picture (`cnnkit plot architecture`, RUN/plots/architecture.png), drawn with Pillow.

Every other picture is matplotlib; this one is not, because `plot architecture` is a command that must answer in
under a second as a fresh process (bench/pictures_speed.py), and importing matplotlib alone costs 0.6-1 s (its
Artist classes build their docstrings at import). Pillow draws the same boxes, arrows and DejaVu Sans text
(matplotlib's own font file, found without importing matplotlib) in about 0.1 s. Shapes are drawn at `_SUPER`×
the size and scaled down, which anti-aliases their edges; texts are drawn at the final size (FreeType hints them).

`layout(summary)` computes everything in inches (y up, as a matplotlib axes in inch coordinates would);
`render` turns it into pixels at `DPI`, so a picture is round(inches × DPI) pixels, like the matplotlib ones.

May import: cnnkit.spec, cnnkit.files, cnnkit.text, cnnkit.errors and Pillow. Never numpy, matplotlib,
TensorFlow, Keras or cnnkit.run (the import contract in pyproject.toml; tests/test_plots.py runs the command and
checks sys.modules).
"""

from __future__ import annotations

import functools
import importlib.util
import math
from dataclasses import dataclass, field
from numbers import Integral
from pathlib import Path

from cnnkit.errors import CnnkitError
from cnnkit.files import atomic_write
from cnnkit.spec import layers as layer_registry
from cnnkit.text import compact_number, shape_text

# Every cnnkit picture's DPI (cnnkit.viz.plots takes it from here): sharp enough for 7-pt labels, small enough that
# a 40-layer architecture stays a few hundred KB.
DPI = 120
_SUPER = 3  # shapes are drawn 3× larger, then reduced: smooth slanted edges without an anti-aliasing renderer

# A block is coloured by its layer's family (the `family` of its entry in cnnkit/spec/layers.py).
# The input block is not a layer and has a colour of its own.
_INPUT = "input"
_COLOURS: dict[str, str] = {
    _INPUT: "#ffffff",  # white: the greys belong to "reshape" and "other"
    "convolution": "#6baed6",
    "transposed convolution": "#9ecae1",
    "pooling": "#fd8d3c",
    "global pooling": "#fd8d3c",
    "dense": "#74c476",
    "normalisation": "#fed976",
    "dropout / noise": "#c6b3e0",
    "reshape": "#bdbdbd",
    "activation": "#fbb4b9",
    "preprocessing": "#80cdc1",
}
_OTHER_COLOUR = "#e0e0e0"
_EDGE = "#333333"
_ARROW = "#666666"
_LABEL_PT = 7.0  # the blocks' labels


# ----------------------------------------------------------------------------------------------- the drawing
@dataclass(frozen=True)
class Shape:
    """A filled polygon with a thin dark edge; `front` marks a block's front face (its layer's colour)."""

    points: tuple[tuple[float, float], ...]  # inches, y up
    fill: str
    alpha: float = 1.0
    front: bool = False


@dataclass(frozen=True)
class Arrow:
    start: tuple[float, float]
    end: tuple[float, float]


@dataclass(frozen=True)
class Text:
    x: float
    y: float
    text: str
    size: float  # points
    ha: str = "center"  # left, center, right
    va: str = "center"  # top, center
    bold: bool = False
    colour: str = "#000000"
    linespacing: float = 1.15  # line pitch in font sizes, as matplotlib spaces lines


@dataclass
class Drawing:
    width: float  # inches
    height: float
    shapes: list[Shape] = field(default_factory=list)
    arrows: list[Arrow] = field(default_factory=list)
    texts: list[Text] = field(default_factory=list)

    @property
    def pixels(self) -> tuple[int, int]:
        return round(self.width * DPI), round(self.height * DPI)

    def text_boxes(self) -> list[tuple[Text, tuple[float, float, float, float]]]:
        """Each text with its pixel box (left, top, right, bottom; y down), as `render` draws it."""
        return [(t, _text_box(t, self.height)) for t in self.texts]


# ------------------------------------------------------------------------------------------------- fonts
def _font_file(bold: bool) -> str | None:
    """matplotlib's DejaVu Sans, the font of every other picture; find_spec locates it without importing matplotlib."""
    spec = importlib.util.find_spec("matplotlib")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "mpl-data" / "fonts" / "ttf" / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")
        if path.is_file():
            return str(path)
    return None


@functools.cache
def _font(points: float, bold: bool):
    from PIL import ImageFont

    size = points * DPI / 72  # Pillow sizes fonts in pixels per em
    path = _font_file(bold)
    return ImageFont.truetype(path, size) if path else ImageFont.load_default(size)


def _text_width(text: str, points: float, bold: bool = False) -> float:
    """Inches."""
    return max((_font(points, bold).getlength(line) for line in text.split("\n")), default=0.0) / DPI


def _line_pitch(t: Text) -> float:
    return t.size * t.linespacing * DPI / 72  # pixels


def _text_box(t: Text, height_in: float) -> tuple[float, float, float, float]:
    font = _font(t.size, t.bold)
    lines = t.text.split("\n")
    x, y = t.x * DPI, (height_in - t.y) * DPI
    ascent, descent = font.getmetrics()
    block = (len(lines) - 1) * _line_pitch(t) + ascent + descent
    top = y if t.va == "top" else y - block / 2
    left = right = x
    for line in lines:
        width = font.getlength(line)
        start = {"left": x, "center": x - width / 2, "right": x - width}[t.ha]
        left, right = min(left, start), max(right, start + width)
    return left, top, right, top + block


# --------------------------------------------------------------------------------------------------- layout
def _family(node: dict) -> tuple[str, str]:
    """(family, colour) of a block: the input's own, else its layer type's family in the registry."""
    if node.get("family") == _INPUT:
        return _INPUT, _COLOURS[_INPUT]
    name = layer_registry.lookup(str(node["type"]))
    family = layer_registry.LAYERS[name].family if name else "other"
    return family, _COLOURS.get(family, _OTHER_COLOUR)


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _shade(colour: str, factor: float) -> str:
    """Lighter (factor > 1: towards white) or darker (< 1): the top and side faces of a box."""
    channels = [c / 255 for c in _rgb(colour)]
    if factor >= 1:
        channels = [c + (1 - c) * (factor - 1) for c in channels]
    else:
        channels = [c * factor for c in channels]
    return "#" + "".join(f"{round(min(max(c, 0.0), 1.0) * 255):02x}" for c in channels)


def _dims(shape) -> list[int | None]:
    if shape is None:
        return []
    if isinstance(shape, Integral):
        return [int(shape)]
    return [None if d is None else int(d) for d in shape]


def layout(summary: dict) -> Drawing:
    """The notes' picture of a network, from a summary dict alone: one block per layer, left to right.

    Volumes (H, W, C) are pseudo-3D boxes: height and slant depth grow with H and W, thickness with C (both on a
    log scale, so a 224×224 input and a 1024-channel layer fit on one page). Sequences (steps, C) are flat slabs,
    (D, H, W, C) volumes a short stack of boxes, vectors thin tall bars. Rows wrap after ~17 inches.
    """
    if not isinstance(summary, dict) or not isinstance(summary.get("layers"), list):
        raise CnnkitError("summary must be a dict with a 'layers' list (as produced by the model summary)")
    nodes = [{"type": "Input", "output_shape": summary.get("input_shape"), "params": 0, "family": _INPUT}]
    for i, layer in enumerate(summary["layers"]):
        if not isinstance(layer, dict) or "type" not in layer or "output_shape" not in layer:
            raise CnnkitError(f"summary layer {i} must be a dict with 'type' and 'output_shape', got {layer!r:.80}")
        nodes.append(layer)

    spatial_sizes = [
        d
        for node in nodes
        for d in _dims(node["output_shape"])[:-1]
        if d is not None and len(_dims(node["output_shape"])) >= 2
    ]
    biggest = max(spatial_sizes + [2])

    def spatial_height(d: int | None) -> float:
        # log scale relative to the network's largest map: shrinking by pooling stays visible at every size
        d = d if d is not None else biggest
        return 0.3 + 1.7 * math.log1p(d) / math.log1p(biggest)

    def thickness(c: int | None) -> float:
        return 0.07 + 0.065 * math.log2(max(c or 1, 1))

    line_h = _LABEL_PT * 1.3 / 72
    geo = []
    for node in nodes:
        dims = _dims(node["output_shape"])
        kind = {1: "vector", 2: "sequence", 3: "volume", 4: "volume3d"}.get(len(dims), "vector")
        if kind == "vector":
            units = dims[0] if dims and dims[0] is not None else 1
            w, h, ox, oy = 0.12, 0.35 + 0.42 * math.log10(max(units, 1)), 0.06, 0.06
        elif kind == "sequence":
            w, h, ox, oy = thickness(dims[-1]), spatial_height(dims[0]), 0.0, 0.0
        else:
            w, h = thickness(dims[-1]), spatial_height(dims[-3])
            slant = 0.45 * spatial_height(dims[-2])
            ox, oy = slant * 0.7, slant * 0.55
        lines = [str(node["type"]), shape_text(dims) if dims else "?"]
        if node.get("children"):  # a block (Residual): what it holds, and its shortcut
            inner = "+".join(str(c.get("type", "?")).replace("Normalization", "Norm") for c in node["children"])
            lines.insert(1, f"[{inner[:40]}]")
            lines.insert(2, str(node.get("arithmetic", "")).split(":")[0])
        if node.get("params") is not None:
            lines.append(f"{compact_number(node['params'])} params")
        rf = node.get("receptive_field")
        if rf is not None and kind != "vector":
            lines.append("RF " + (shape_text(rf) if isinstance(rf, (list, tuple)) else str(rf)))
        stack = min(dims[0], 3) if kind == "volume3d" and dims[0] else 1
        extra = 0.12 * (stack - 1)
        body_w = w + ox + extra
        slot = max(body_w, _text_width("\n".join(lines), _LABEL_PT)) + 0.32
        family, colour = _family(node)
        geo.append(
            dict(
                w=w, h=h, ox=ox, oy=oy, stack=stack, lines=lines, slot=slot, body_w=body_w, colour=colour, family=family
            )
        )

    max_row = 17.0
    rows: list[list[int]] = [[]]
    width = 0.0
    for i, g in enumerate(geo):
        if rows[-1] and width + g["slot"] > max_row:
            rows.append([])
            width = 0.0
        rows[-1].append(i)
        width += g["slot"]
    row_w = [sum(geo[i]["slot"] for i in row) for row in rows]
    label_h = max(len(g["lines"]) for g in geo) * line_h + 0.1
    # Blocks in a row share a centre line: the row needs the deepest half-height below it and the tallest
    # half-height + slant (+ stacked copies) above it, then the labels and some air.
    below = [max(geo[i]["h"] / 2 for i in row) for row in rows]
    above = [max(geo[i]["h"] / 2 + geo[i]["oy"] + 0.12 * (geo[i]["stack"] - 1) for i in row) for row in rows]
    row_h = [b + a + label_h + 0.5 for b, a in zip(below, above)]
    margin, title_h, legend_h = 0.35, 0.75, 0.55
    fig_w = max(max(row_w) + 2 * margin, 7.0)
    fig_h = sum(row_h) + title_h + legend_h
    drawing = Drawing(fig_w, fig_h)
    texts, shapes = drawing.texts, drawing.shapes

    name = summary.get("name") or "model"
    total_params = summary.get("total_params")
    head = f"{name}: {total_params:,} params" if isinstance(total_params, Integral) else str(name)
    if summary.get("total_macs") is not None:
        head += f" · {compact_number(summary['total_macs'])} MACs"
    texts.append(Text(fig_w / 2, fig_h - 0.3, head, 13, bold=True))
    texts.append(
        Text(
            fig_w / 2,
            fig_h - 0.58,
            f"{len(nodes) - 1} layers · box height ∝ spatial size, thickness ∝ channels (both log scale) · "
            "bars are vectors",
            8,
            colour="#555555",
        )
    )

    y_top = fig_h - title_h
    prev_anchor = None
    for r, row in enumerate(rows):
        label_top = y_top - row_h[r] + label_h + 0.15
        centre = label_top + 0.2 + below[r]
        x = margin + (fig_w - 2 * margin - row_w[r]) / 2
        for j, i in enumerate(row):
            g = geo[i]
            x0 = x + (g["slot"] - g["body_w"]) / 2
            for s in reversed(range(g["stack"])):  # back copies first, so the front box is drawn on top
                bx, by = x0 + 0.12 * s, centre - g["h"] / 2 + 0.12 * s
                bottom, top, right = by, by + g["h"], bx + g["w"]
                alpha = 1.0 if s == 0 else 0.55
                front = ((bx, bottom), (right, bottom), (right, top), (bx, top))
                shapes.append(Shape(front, g["colour"], alpha, front=s == 0))
                if g["ox"] or g["oy"]:
                    ox, oy = g["ox"], g["oy"]
                    top_face = ((bx, top), (right, top), (right + ox, top + oy), (bx + ox, top + oy))
                    side_face = ((right, bottom), (right + ox, bottom + oy), (right + ox, top + oy), (right, top))
                    shapes.append(Shape(top_face, _shade(g["colour"], 1.35), alpha))
                    # White shaded like the others would be the reshape grey: the input's side stays near-white.
                    side = 0.93 if g["colour"] == _COLOURS[_INPUT] else 0.78
                    shapes.append(Shape(side_face, _shade(g["colour"], side), alpha))
            texts.append(Text(x + g["slot"] / 2, label_top - 0.05, "\n".join(g["lines"]), _LABEL_PT, va="top"))
            left_anchor = (x0 - 0.04, centre)
            if prev_anchor is not None and j > 0:
                drawing.arrows.append(Arrow(prev_anchor, left_anchor))
            elif j == 0 and r > 0:
                texts.append(Text(x0 - 0.1, centre, "…", 12, ha="right", colour=_ARROW))
            prev_anchor = (x0 + g["body_w"] + 0.04, centre)  # leave from behind the side face
            x += g["slot"]
        if r < len(rows) - 1:
            texts.append(Text(prev_anchor[0] + 0.08, centre, "…", 12, ha="left", colour=_ARROW))
        y_top -= row_h[r]

    # Legend: only the families that appear, in the registry's order.
    present = [
        (family, colour)
        for family, colour in [*_COLOURS.items(), ("other", _OTHER_COLOUR)]
        if any(g["family"] == family for g in geo)
    ]
    steps = [0.3 + _text_width(family, 8) for family, _ in present]
    lx = fig_w / 2 - sum(steps) / 2
    for (family, colour), step in zip(present, steps):
        shapes.append(Shape(((lx, 0.2), (lx + 0.18, 0.2), (lx + 0.18, 0.38), (lx, 0.38)), colour))
        texts.append(Text(lx + 0.24, 0.29, family, 8, ha="left"))
        lx += step
    return drawing


# --------------------------------------------------------------------------------------------------- render
def render(drawing: Drawing):
    """The drawing as an RGB PIL image of `drawing.pixels`."""
    from PIL import Image, ImageDraw

    width, height = drawing.pixels
    scale = DPI * _SUPER

    def at(point):  # inches (y up) -> supersampled pixels (y down)
        return point[0] * scale, (drawing.height - point[1]) * scale

    canvas = Image.new("RGB", (width * _SUPER, height * _SUPER), "white")
    pen = ImageDraw.Draw(canvas, "RGBA")  # RGBA: fills with alpha < 1 blend over what is below
    edge = round(0.6 / 72 * scale)  # matplotlib's 0.6 pt edge
    for shape in drawing.shapes:
        a, corners = round(shape.alpha * 255), [at(p) for p in shape.points]
        pen.polygon(corners, fill=(*_rgb(shape.fill), a))
        # The edge as a closed line, not polygon(width=...): that one builds a full-canvas mask per shape.
        pen.line([*corners, corners[0], corners[1]], fill=(*_rgb(_EDGE), a), width=edge, joint="curve")
    stroke = round(0.8 / 72 * scale)
    head_len, head_half = 5.0 / 72 * scale, 2.5 / 72 * scale  # the "-|>" head of a 10-pt annotation arrow
    for arrow in drawing.arrows:
        (x0, y0), (x1, y1) = at(arrow.start), at(arrow.end)
        length = math.hypot(x1 - x0, y1 - y0) or 1.0
        ux, uy = (x1 - x0) / length, (y1 - y0) / length
        bx, by = x1 - ux * head_len, y1 - uy * head_len
        pen.line([(x0, y0), (bx, by)], fill=_ARROW, width=stroke)
        pen.polygon(
            [(x1, y1), (bx - uy * head_half, by + ux * head_half), (bx + uy * head_half, by - ux * head_half)],
            fill=_ARROW,
        )
    image = canvas.reduce(_SUPER)

    pen = ImageDraw.Draw(image)
    for text, (_, top, _, _) in drawing.text_boxes():
        font = _font(text.size, text.bold)
        anchor = {"left": "la", "center": "ma", "right": "ra"}[text.ha]
        for k, line in enumerate(text.text.split("\n")):
            pen.text((text.x * DPI, top + k * _line_pitch(text)), line, font=font, fill=text.colour, anchor=anchor)
    return image


def plot_architecture(summary: dict, out_path) -> Path:
    """Draw `summary` (a Summary.to_dict()) and write it as a PNG, atomically; returns the path."""
    image = render(layout(summary))
    # zlib level 3 instead of Pillow's 6: half the encoding time for a PNG ~5 % larger (as cnnkit.viz.plots).
    return atomic_write(
        Path(out_path), lambda handle: image.save(handle, format="PNG", compress_level=3, dpi=(DPI, DPI))
    )

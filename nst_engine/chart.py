"""A small PNG chart of the loss history, drawn with Pillow alone (no plotting library needed)."""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from nst_engine.types import HistoryPoint

__all__ = ["render_loss_chart"]

# Drawn at this multiple of the asked size, then downsampled: cheap anti-aliasing for lines and text.
_SS = 2
_MIN_W, _MIN_H = 200, 120
_SERIES: tuple[tuple[str, tuple[int, int, int], int], ...] = (
    ("total", (33, 37, 41), 3),
    ("content", (31, 119, 180), 2),
    ("style", (214, 39, 40), 2),
    ("tv", (44, 160, 44), 2),
)
_BG = (255, 255, 255)
_PLOT_BG = (250, 250, 252)
_GRID = (222, 225, 231)
_MINOR = (238, 240, 244)
_AXIS = (120, 124, 132)
_TEXT = (60, 64, 72)
_MARKER = (150, 110, 200)

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def _font(size: int) -> Font:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, TypeError, ImportError):  # Pillow built without FreeType: fixed bitmap font
        return ImageFont.load_default()


def _text_size(draw: ImageDraw.ImageDraw, text: str, font: Font) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return int(right - left), int(bottom - top)


def _log_label(exponent: int) -> str:
    if -2 <= exponent <= 3:
        return f"{10.0**exponent:g}"
    return f"1e{exponent}"


def _nice_step(span: float, target: int) -> float:
    raw = span / max(1, target)
    magnitude = 10 ** math.floor(math.log10(raw))
    for mult in (1, 2, 5, 10):
        if raw <= mult * magnitude:
            return mult * magnitude
    return 10 * magnitude


def _fmt_step(value: float) -> str:
    return f"{value / 1000:g}k" if value >= 10_000 else f"{value:g}"


def _empty(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], message: str, font: Font) -> None:
    w, h = _text_size(draw, message, font)
    cx, cy = (box[0] + box[2]) // 2, (box[1] + box[3]) // 2
    draw.text((cx - w // 2, cy - h // 2), message, fill=_AXIS, font=font)


def _dashed_vline(draw: ImageDraw.ImageDraw, x: int, top: int, bottom: int, width: int) -> None:
    dash = 5 * _SS
    for y in range(top, bottom, 2 * dash):
        draw.line([(x, y), (x, min(bottom, y + dash))], fill=_MARKER, width=width)


def _positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


def render_loss_chart(history: Sequence[HistoryPoint], *, width: int = 640, height: int = 320) -> bytes:
    """Render the weighted loss terms over the iterations as a PNG (log-scale y axis).

    Dashed vertical lines mark where a new scale of the schedule starts. Zero, negative and non-finite
    values cannot sit on a log axis and leave a gap in their curve.
    """
    if width < _MIN_W or height < _MIN_H:
        raise ValueError(f"chart must be at least {_MIN_W}x{_MIN_H} px, got {width}x{height}")
    s = _SS
    W, H = width * s, height * s
    image = Image.new("RGB", (W, H), _BG)
    draw = ImageDraw.Draw(image)
    small, normal = _font(10 * s), _font(11 * s)

    left, right, top, bottom = 58 * s, W - 14 * s, 30 * s, H - 36 * s
    draw.rectangle([left, top, right, bottom], fill=_PLOT_BG)

    # Legend across the top, left to right.
    x = left
    for name, color, _ in _SERIES:
        draw.line([(x, 15 * s), (x + 16 * s, 15 * s)], fill=color, width=3 * s)
        draw.text((x + 20 * s, 15 * s), name, fill=_TEXT, font=normal, anchor="lm")
        x += 20 * s + _text_size(draw, name, normal)[0] + 16 * s

    # Axis titles: "iteration" under the x axis, "loss (log)" turned up along the y axis.
    draw.text(((left + right) // 2, H - 4 * s), "iteration", fill=_TEXT, font=normal, anchor="md")
    label = "loss (log scale)"
    lw, lh = _text_size(draw, label, normal)
    tile = Image.new("RGB", (lw + 4 * s, lh + 6 * s), _BG)
    ImageDraw.Draw(tile).text((2 * s, 1 * s), label, fill=_TEXT, font=normal)
    tile = tile.rotate(90, expand=True)
    image.paste(tile, (2 * s, (top + bottom) // 2 - tile.height // 2))

    points = sorted(history, key=lambda p: p.step)
    values = [getattr(p, name) for p in points for name, _, _ in _SERIES]
    positive = [v for v in values if _positive(v)]
    if not points or not positive:
        message = "no loss history yet" if not points else "no positive loss values to plot"
        _empty(draw, (left, top, right, bottom), message, normal)
        draw.rectangle([left, top, right, bottom], outline=_AXIS, width=s)
        return _png(image, width, height)

    # Y range: whole decades around the data, at least one decade tall; the small margin keeps a value
    # that is an exact power of ten off the frame.
    lo_exp = math.floor(math.log10(min(positive)) - 0.02)
    hi_exp = math.ceil(math.log10(max(positive)) + 0.02)
    if hi_exp <= lo_exp:
        hi_exp = lo_exp + 1
    x0, x1 = points[0].step, points[-1].step
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1

    def px(step: float) -> float:
        return left + (step - x0) / (x1 - x0) * (right - left)

    def py(value: float) -> float:
        return bottom - (math.log10(value) - lo_exp) / (hi_exp - lo_exp) * (bottom - top)

    # Horizontal grid at each decade (thinned when there are many), with faint 2x and 5x lines when few.
    decades = hi_exp - lo_exp
    every = max(1, math.ceil(decades / 6))
    for e in range(lo_exp, hi_exp + 1):
        if decades <= 3 and e < hi_exp:
            for mult in (2, 5):
                y = py(mult * 10.0**e)
                draw.line([(left, y), (right, y)], fill=_MINOR, width=s)
        if (e - lo_exp) % every:
            continue
        y = py(10.0**e)
        draw.line([(left, y), (right, y)], fill=_GRID, width=s)
        draw.text((left - 6 * s, y), _log_label(e), fill=_TEXT, font=small, anchor="rm")

    # Vertical grid at "nice" step values.
    step = _nice_step(x1 - x0, 6)
    tick = math.ceil(x0 / step) * step
    while tick <= x1 + 1e-9:
        gx = px(tick)
        draw.line([(gx, top), (gx, bottom)], fill=_GRID, width=s)
        draw.text((gx, bottom + 5 * s), _fmt_step(tick), fill=_TEXT, font=small, anchor="ma")
        tick += step

    # Scale changes: a dashed line halfway between the last point of one scale and the first of the next.
    for prev, cur in itertools.pairwise(points):
        if cur.scale != prev.scale:
            x = round(px((prev.step + cur.step) / 2))
            _dashed_vline(draw, x, top, bottom, s)
            draw.text((x + 3 * s, top + 3 * s), f"scale {cur.scale}", fill=_MARKER, font=small)

    # Curves, thinnest last so that the total (drawn first) never hides the terms.
    for name, color, line_width in _SERIES:
        segment: list[tuple[float, float]] = []
        segments = [segment]
        for i, p in enumerate(points):
            value = getattr(p, name)
            # A new scale restarts the optimisation: do not join its first value to the last one.
            if segment and i and p.scale != points[i - 1].scale:
                segment = []
                segments.append(segment)
            if _positive(value):
                segment.append((px(p.step), py(value)))
            elif segment:
                segment = []
                segments.append(segment)
        for seg in segments:
            if len(seg) >= 2:
                draw.line(seg, fill=color, width=line_width * s, joint="curve")
            elif len(seg) == 1:
                r = (line_width + 1) * s
                cx, cy = seg[0]
                draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color)

    draw.rectangle([left, top, right, bottom], outline=_AXIS, width=s)
    return _png(image, width, height)


def _png(image: Image.Image, width: int, height: int) -> bytes:
    # BOX averages each 2x2 block exactly: smooth edges without the halos LANCZOS rings around lines.
    out = image.resize((width, height), Image.Resampling.BOX)
    buf = io.BytesIO()
    out.save(buf, "PNG", optimize=True)
    return buf.getvalue()

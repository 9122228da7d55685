"""Tests of nst_engine.chart: the loss chart is a real PNG with the curves where a log scale puts them."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from nst_engine.chart import render_loss_chart
from nst_engine.types import HistoryPoint, LossSummary, LossTerms, StyleResult

CONTENT = (31, 119, 180)
STYLE = (214, 39, 40)
TV = (44, 160, 44)
TOTAL = (33, 37, 41)
MARKER = (150, 110, 200)


def decode(png: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return np.asarray(image.convert("RGB")).astype(int)


def mask(pixels: np.ndarray, color: tuple[int, int, int], tol: int = 12) -> np.ndarray:
    return np.abs(pixels - np.array(color)).max(axis=2) <= tol


def flat(n: int, content: float, style: float, tv: float, total: float, scale_at: int | None = None) -> list:
    return [
        HistoryPoint(
            step=i, scale=1 if scale_at is None or i < scale_at else 2, content=content, style=style, tv=tv, total=total
        )
        for i in range(1, n + 1)
    ]


def test_size_and_format() -> None:
    pixels = decode(render_loss_chart(flat(20, 1, 10, 100, 1000), width=500, height=250))
    assert pixels.shape == (250, 500, 3)


def test_log_scale_spaces_decades_evenly() -> None:
    pixels = decode(render_loss_chart(flat(50, 1, 10, 100, 1000)))
    column = pixels[:, 340:360]  # middle of the plot, away from the legend

    def row(color: tuple[int, int, int]) -> float:
        rows = np.nonzero(mask(column, color).any(axis=1))[0]
        rows = rows[rows > 40]  # skip the legend swatches
        assert rows.size, f"no pixels of {color}"
        return float(rows.mean())

    total, tv, style, content = row(TOTAL), row(TV), row(STYLE), row(CONTENT)
    assert total < tv < style < content  # bigger loss, higher up
    gaps = [tv - total, style - tv, content - style]
    assert max(gaps) - min(gaps) <= 3, gaps  # one decade = the same height everywhere


def test_scale_markers_only_where_the_scale_changes() -> None:
    one = decode(render_loss_chart(flat(40, 1, 10, 100, 1000)))
    two = decode(render_loss_chart(flat(40, 1, 10, 100, 1000, scale_at=21)))
    assert mask(one, MARKER, 20).sum() == 0
    marked = mask(two, MARKER, 20)
    columns = np.nonzero(marked.sum(axis=0) > 60)[0]  # a tall dashed line
    assert columns.size and 300 < columns.mean() < 370  # near the middle of steps 1..40


def test_zero_negative_and_non_finite_values_leave_gaps() -> None:
    history = [
        HistoryPoint(step=i, scale=1, content=0.0, style=-3.0, tv=math.nan, total=math.inf if i == 5 else 10.0 + i)
        for i in range(1, 30)
    ]
    pixels = decode(render_loss_chart(history))
    plot = pixels[40:]
    assert mask(plot, TOTAL).sum() > 200
    for color in (CONTENT, STYLE, TV):
        assert mask(plot, color).sum() == 0


@pytest.mark.parametrize(
    "history",
    [
        [],
        [HistoryPoint(step=1, scale=1, content=0.0, style=0.0, tv=0.0, total=0.0)],
    ],
)
def test_nothing_to_plot_still_gives_a_chart(history: list[HistoryPoint]) -> None:
    pixels = decode(render_loss_chart(history))
    assert pixels.shape == (320, 640, 3)
    for color in (CONTENT, STYLE, TV):
        assert mask(pixels[40:], color).sum() == 0  # only the legend carries the colours


def test_single_point_is_drawn_as_a_dot() -> None:
    pixels = decode(render_loss_chart([HistoryPoint(step=7, scale=1, content=5, style=50, tv=0.5, total=55.5)]))
    assert mask(pixels[40:], STYLE).sum() > 5


def test_too_small_is_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        render_loss_chart([], width=50, height=50)


def test_style_result_renders_its_history() -> None:
    terms = LossTerms(content=1.0, style=2.0, tv=0.1, total=3.1)
    summary = LossSummary(
        start=terms,
        end=terms,
        style_layers_start={},
        style_layers_end={},
        iterations=10,
        seconds=1.0,
        device="cpu",
        precision="fp32",
        preset="fast",
        width=64,
        height=64,
        scales=((64, 64, 10),),
        optimizer="adam",
    )
    result = StyleResult(image=Image.new("RGB", (64, 64)), summary=summary, history=flat(10, 1, 2, 0.1, 3.1))
    assert decode(result.loss_chart_png(width=320, height=160)).shape == (160, 320, 3)

"""Plain data that crosses the engine's boundary: options, progress events and results.

Everything here is picklable, so the worker pool can send it between processes unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from PIL import Image

if TYPE_CHECKING:
    from nst_engine.animation import Clip

Optimizer = Literal["adam", "lbfgs"]
Init = Literal["content", "noise"]
Precision = Literal["auto", "bf16", "fp32"]


@dataclass(frozen=True)
class StyleOptions:
    """What a caller may override on top of a preset. ``None`` means "the preset's value"."""

    preset: str = "balanced"
    size: int | None = None  # output long side in pixels
    strength: float = 1.0  # 0.25: the photo with a painted touch … 4: the painting's world (Preset.strength_power)
    style_scale: float = 1.0  # style image long side relative to the output's long side
    style_weights: tuple[float, ...] | None = None  # blend weights of several style images (normalised)
    preserve_colors: bool = False  # keep the content's colours (luminance-only transfer)
    seed: int = 0
    init: Init = "content"
    optimizer: Optimizer | None = None
    iterations: int | None = None  # iterations at the final scale (earlier scales scale with it)
    precision: Precision = "auto"
    tv_weight: float | None = None
    preview_every: float | None = None  # seconds between preview images in progress events; None = none


@dataclass(frozen=True)
class ProgressEvent:
    """Sent to the ``progress`` callback after every iteration."""

    scale: int  # 1-based index of the current scale
    scales: int  # number of scales in the schedule
    width: int  # size being optimised now
    height: int
    iteration: int  # 1-based iteration within this scale
    iterations: int  # iterations at this scale
    step: int  # 1-based iteration over the whole job
    total_steps: int
    losses: dict[str, float]  # "content", "style", "tv", "total" (weighted, as optimised)
    elapsed: float  # seconds since the job started
    eta: float | None  # seconds left, estimated from cost per pixel; None before it can be estimated
    preview: Image.Image | None = None  # small RGB preview, at most every ``preview_every`` seconds
    work_done: float | None = None  # share of the job's compute done, in [0, 1] (later scales cost more)
    frame: int = 1  # 1-based frame being painted (an animation has several; a still has one)
    frames: int = 1

    @property
    def fraction(self) -> float:
        """Share of the work done in [0, 1]: by compute when known, else by iterations."""
        if self.work_done is not None:
            return min(1.0, max(0.0, self.work_done))
        return min(1.0, self.step / max(1, self.total_steps))


@dataclass(frozen=True)
class LossTerms:
    """The weighted loss terms of one image (what the optimiser minimises), and their sum."""

    content: float
    style: float
    tv: float
    total: float


@dataclass(frozen=True)
class LossSummary:
    """What the bot's embed and the CLI's table show."""

    start: LossTerms  # at the first iteration (smallest scale; terms are size-normalised, so scales compare)
    end: LossTerms  # at the returned image
    style_layers_start: dict[str, float]
    style_layers_end: dict[str, float]
    iterations: int  # over all scales
    seconds: float
    device: str
    precision: str  # "bf16" or "fp32"
    preset: str
    width: int
    height: int
    scales: tuple[tuple[int, int, int], ...]  # (width, height, iterations) per scale
    optimizer: str
    notes: tuple[str, ...] = ()  # e.g. "retried at 768 px after running out of GPU memory"
    frames: int = 1  # an animation's frame count; its ``end`` is the mean over the frames


@dataclass(frozen=True)
class HistoryPoint:
    step: int
    scale: int
    content: float
    style: float
    tv: float
    total: float


@dataclass
class StyleResult:
    """The stylised image with its loss summary and a downsampled loss history. For an animation ``image`` is its
    first frame and ``clip`` the whole painted animation."""

    image: Image.Image
    summary: LossSummary
    history: list[HistoryPoint] = field(default_factory=list)
    clip: Clip | None = None

    def loss_chart_png(self, width: int = 640, height: int = 320) -> bytes:
        """Render the loss history as a small PNG chart (log scale)."""
        from nst_engine.chart import render_loss_chart

        return render_loss_chart(self.history, width=width, height=height)


ProgressCallback = Callable[[ProgressEvent], None]
StopCallback = Callable[[], bool]

"""Named quality/speed trade-offs. Each is a size and a coarse-to-fine schedule, chosen from measurements with the
real VGG19 weights (docs/performance.md; ``python -m benchmarks.schedules`` compares them with the Adam
schedules they replaced)."""

from __future__ import annotations

from dataclasses import dataclass

from nst_engine.errors import OptionsError

STYLE_LAYERS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"
# A second content term at a shallower layer holds edges and small structures (faces); it is already computed for
# the style loss, so it costs no VGG work.
DETAIL_LAYER = "relu3_1"


@dataclass(frozen=True)
class Preset:
    """A schedule: the output long side, the smallest scale, and iterations per scale from coarse to fine.

    Scales grow by ``scale_factor`` from ``min_size`` to ``size``; when ``size`` is changed by the caller the schedule
    keeps its iteration counts (the first entries are dropped when there are fewer scales).
    """

    name: str
    size: int
    min_size: int
    scale_factor: float
    iterations: tuple[int, ...]  # coarse → fine; the last entry is for the final scale
    # L-BFGS reaches a lower objective per VGG pass than Adam: at 512 px, 185 L-BFGS evaluations beat 440 Adam steps.
    optimizer: str = "lbfgs"
    # Adam's settings, used when the caller picks optimizer="adam".
    lr: float = 0.02  # Adam step in pixel units ([0, 1] range) at the first scale
    refine_lr: float | None = 0.01  # at later scales, which start from a good image (None = lr); measured best
    average_decay: float = 0.9  # iterate averaging (EMA of the pixels); 0 disables it
    content_weight: float = 1.0
    style_weight: float = 24.0
    tv_weight: float = 10.0
    style_layer_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0)
    # "squared": mean squared neighbour difference; "smooth": mean of sqrt(dx^2 + dy^2 + eps^2) (edge-keeping, and
    # harder on low-amplitude grain than on strokes).
    tv_form: str = "smooth"
    # The TV weight at a scale of long side s is tv_weight * (s / final side) ** tv_scale_power: neighbour differences
    # grow as a picture shrinks, so a power matching the form's growth keeps the same pull at every scale.
    tv_scale_power: float = 1.0
    # The DETAIL_LAYER content term's weight at strength 1, divided by strength ** strength_power: faint at 1, it
    # holds the photo's small structures at low strengths.
    detail_weight: float = 0.05
    # Style weight = style_weight * strength ** strength_power: each doubling of strength pulls 4x harder, so the
    # dial's steps stay visible although the picture answers the weights less than linearly.
    strength_power: float = 2.0
    lbfgs_average: float = 0.0  # EMA decay of L-BFGS's iterates at each scale, returned instead of the last; 0 = off
    # Between scales: "bicubic" resize of the picture, "bilinear", or "detail" (bicubic, plus the photo's detail that
    # the new scale adds over the last one).
    upsample: str = "detail"
    # "free": the painting's own colours; "match": the painting's colours moved to the photo's mean and covariance
    # before its style targets are taken.
    color: str = "free"
    description: str = ""


PRESETS: dict[str, Preset] = {
    "fast": Preset(
        name="fast",
        size=384,
        min_size=128,
        scale_factor=2**0.5,
        iterations=(40, 25, 25, 25),
        description="384 px, 4 scales: a quick preview-quality picture",
    ),
    "balanced": Preset(
        name="balanced",
        size=512,
        min_size=128,
        scale_factor=2**0.5,
        iterations=(40, 35, 35, 35, 40),
        description="512 px, 5 scales: the default",
    ),
    "quality": Preset(
        name="quality",
        size=768,
        min_size=128,
        scale_factor=2**0.5,
        iterations=(100, 80, 80, 60, 60, 80),
        description="768 px, 6 scales, longer schedule: the best picture this engine makes",
    ),
}

DEFAULT_PRESET = "balanced"

# The plain Gatys objective every picture is judged by (``evaluate_losses``), whatever preset and strength made it.
JUDGE = Preset(name="judge", size=512, min_size=128, scale_factor=2**0.5, iterations=(1,), content_weight=1.0,
               style_weight=20.0, tv_weight=2.0, style_layer_weights=(1.0, 1.0, 1.0, 1.0, 1.0), tv_form="squared",
               tv_scale_power=0.0, detail_weight=0.0, strength_power=1.0)  # fmt: skip


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise OptionsError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None

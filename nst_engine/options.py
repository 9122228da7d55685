"""Options every front end needs, free of torch: the minimum side, option checking, the scale plan, the output
size, and the one shrink helper.

The engine, the worker pool and the bot all import these, so the bot (and any front end that only queues jobs, such
as a Ray driver) can check a request without loading the GPU stack.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, cast

from PIL import Image

from nst_engine.errors import ImageTooSmallError, OptionsError
from nst_engine.presets import Preset, get_preset
from nst_engine.types import StyleOptions

MIN_SIDE = 32  # relu5_1 sits behind four 2x poolings: below 32 px it sees less than 2x2 positions
MAX_SIZE = 4096


@dataclass(frozen=True)
class ResolvedOptions:
    """A preset with the caller's overrides applied and checked."""

    preset: Preset
    options: StyleOptions
    size: int
    optimizer: str
    tv_weight: float
    style_weights: tuple[float, ...]


@dataclass(frozen=True)
class Scale:
    """One step of the coarse-to-fine schedule: a size and its iteration count."""

    width: int
    height: int
    iterations: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def resolve_options(options: StyleOptions | None = None, **overrides: object) -> StyleOptions:
    """``options`` with keyword overrides applied; unknown names raise OptionsError."""
    base = options or StyleOptions()
    names = {f.name for f in dataclasses.fields(StyleOptions)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise OptionsError(f"unknown option(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
    return dataclasses.replace(base, **cast(dict[str, Any], overrides)) if overrides else base  # names checked above


def check_options(options: StyleOptions, n_styles: int) -> ResolvedOptions:
    """Apply the preset to ``options`` and check every value; raises OptionsError naming the bad one.

    Cheap and free of torch work, so front ends (the worker pool, the bot) can refuse a request before queueing it.
    """
    preset = get_preset(options.preset)
    size = options.size if options.size is not None else preset.size
    if not MIN_SIDE <= size <= MAX_SIZE:
        raise OptionsError(f"size must be between {MIN_SIDE} and {MAX_SIZE} px, got {size}")
    if not (math.isfinite(options.strength) and 0 < options.strength <= 100):
        raise OptionsError(f"strength must be a number in (0, 100], got {options.strength}")
    if not (math.isfinite(options.style_scale) and 0.1 <= options.style_scale <= 4):
        raise OptionsError(f"style_scale must be between 0.1 and 4, got {options.style_scale}")
    if options.iterations is not None and not 1 <= options.iterations <= 10_000:
        raise OptionsError(f"iterations must be between 1 and 10000, got {options.iterations}")
    if options.init not in ("content", "noise"):
        raise OptionsError(f"init must be 'content' or 'noise', got {options.init!r}")
    if options.precision not in ("auto", "bf16", "fp32"):
        raise OptionsError(f"precision must be auto, bf16 or fp32, got {options.precision!r}")
    optimizer = options.optimizer or preset.optimizer
    if optimizer not in ("adam", "lbfgs"):
        raise OptionsError(f"optimizer must be 'adam' or 'lbfgs', got {optimizer!r}")
    tv_weight = options.tv_weight if options.tv_weight is not None else preset.tv_weight
    if not (math.isfinite(tv_weight) and tv_weight >= 0):
        raise OptionsError(f"tv_weight must be >= 0, got {tv_weight}")
    if n_styles < 1:
        raise OptionsError("at least one style image is needed")
    weights = options.style_weights or (1.0,) * n_styles
    if len(weights) != n_styles:
        raise OptionsError(f"{len(weights)} style weights given for {n_styles} style images")
    if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise OptionsError("style weights must be non-negative numbers with a positive sum")
    total = sum(weights)
    return ResolvedOptions(
        preset=preset,
        options=options,
        size=size,
        optimizer=optimizer,
        tv_weight=tv_weight,
        style_weights=tuple(w / total for w in weights),
    )


def fit(width: int, height: int, long_side: int) -> tuple[int, int]:
    """(w, h) with the given long side and the aspect ratio of (width, height)."""
    if width >= height:
        return long_side, max(1, round(height * long_side / width))
    return max(1, round(width * long_side / height)), long_side


def plan_scales(width: int, height: int, settings: ResolvedOptions) -> list[Scale]:
    """Coarse-to-fine schedule for a content image of (width, height)."""
    preset, options = settings.preset, settings.options
    final_w, final_h = fit(width, height, settings.size)
    if min(final_w, final_h) < MIN_SIDE:
        raise ImageTooSmallError(
            f"at {settings.size} px the output would be {final_w}x{final_h}; each side must be at least {MIN_SIDE} px "
            "(use a larger size or a less elongated content image)",
            role="content image",
        )
    sides = [settings.size]
    while len(sides) < len(preset.iterations):
        side = round(sides[-1] / preset.scale_factor)
        w, h = fit(width, height, side)
        if side < preset.min_size or min(w, h) < MIN_SIDE:
            break
        sides.append(side)
    sides.reverse()
    counts = list(preset.iterations[-len(sides) :])
    if options.iterations is not None:  # keep the schedule's shape, rescaled to the requested final count
        ratio = options.iterations / preset.iterations[-1]
        counts = [max(1, round(c * ratio)) for c in counts]
    return [Scale(*fit(width, height, side), iterations=n) for side, n in zip(sides, counts, strict=True)]


def output_size(options: StyleOptions) -> int:
    """The output's long side in pixels: the option, else the preset's."""
    return options.size if options.size is not None else get_preset(options.preset).size


def shrink(image: Image.Image, side: int) -> Image.Image:
    """Box-reduce an image far larger than a job of long side ``side`` will use, keeping at least twice that side.

    The engine's own antialiased resize then makes the final size, so the picture is unchanged to the eye, while a
    40-megapixel upload is neither copied through a pipe nor kept in memory at full size. The short side keeps twice
    the engine's minimum too, so elongated images stay usable (see ``engine._style_at``).
    """
    factor = min(max(image.size) // (2 * side), min(image.size) // (2 * MIN_SIDE))
    return image.reduce(factor) if factor >= 2 else image

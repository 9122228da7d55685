"""nst_engine: neural style transfer (Gatys et al.) with VGG19, as a library.

    from nst_engine import load_vgg, stylize
    model = load_vgg("imagenet")           # or a path to a state_dict, or "random" for tests
    result = stylize(content, style, model=model, preset="balanced", progress=print)
    result.image.save("out.png"); print(result.summary)

    clip = decode_clip(open("clip.gif", "rb").read())   # an animated GIF, APNG or WebP
    result = stylize_clip(clip, style, model=model, preset="fast")
    open("out.webp", "wb").write(encode_clip(result.clip).data)

Importing the package does not import torch: ``load_vgg``, ``stylize`` and ``evaluate_losses`` load the engine on
first use, so front ends that only check options (the bot) start fast and need no GPU stack.

Owns everything about making one picture (and ``pool/``, running jobs in workers); imports nothing of the bot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nst_engine.animation import Clip, TooManyFramesError, decode_clip, encode_clip
from nst_engine.errors import (
    Cancelled,
    CorruptImageError,
    FileTooLargeError,
    ImageError,
    ImageTooSmallError,
    NSTError,
    OptionsError,
    TooManyPixelsError,
    UnsupportedFormatError,
    WeightsError,
)
from nst_engine.options import check_options, plan_scales, resolve_options
from nst_engine.presets import DEFAULT_PRESET, PRESETS, Preset
from nst_engine.types import (
    HistoryPoint,
    LossSummary,
    LossTerms,
    ProgressEvent,
    StyleOptions,
    StyleResult,
)

if TYPE_CHECKING:
    from nst_engine.engine import evaluate_losses, load_vgg, stylize
    from nst_engine.temporal import stylize_clip

_ENGINE = ("evaluate_losses", "load_vgg", "stylize")


def __getattr__(name: str) -> Any:
    # PEP 562: the torch-backed functions are imported when first asked for.
    if name in _ENGINE:
        from nst_engine import engine

        return getattr(engine, name)
    if name == "stylize_clip":
        from nst_engine.temporal import stylize_clip

        return stylize_clip
    raise AttributeError(f"module 'nst_engine' has no attribute {name!r}")


__version__ = "0.1.0"  # the project's one version: pyproject reads it, `nst --version` and the bot show it

__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "Cancelled",
    "Clip",
    "CorruptImageError",
    "FileTooLargeError",
    "HistoryPoint",
    "ImageError",
    "ImageTooSmallError",
    "LossSummary",
    "LossTerms",
    "NSTError",
    "OptionsError",
    "Preset",
    "ProgressEvent",
    "StyleOptions",
    "StyleResult",
    "TooManyFramesError",
    "TooManyPixelsError",
    "UnsupportedFormatError",
    "WeightsError",
    "__version__",
    "check_options",
    "decode_clip",
    "encode_clip",
    "evaluate_losses",
    "load_vgg",
    "plan_scales",
    "resolve_options",
    "stylize",
    "stylize_clip",
]

"""nst_engine: neural style transfer (Gatys et al.) with VGG19, as a library.

    from nst_engine import load_vgg, stylize
    model = load_vgg("imagenet")           # or a path to a state_dict, or "random" for tests
    result = stylize(content, style, model=model, preset="balanced", progress=print)
    result.image.save("out.png"); print(result.summary)
"""

from nst_engine.engine import check_options, evaluate_losses, load_vgg, plan_scales, resolve_options, stylize
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
from nst_engine.presets import DEFAULT_PRESET, PRESETS, Preset
from nst_engine.types import (
    HistoryPoint,
    LossSummary,
    LossTerms,
    ProgressEvent,
    StyleOptions,
    StyleResult,
)

__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "Cancelled",
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
    "TooManyPixelsError",
    "UnsupportedFormatError",
    "WeightsError",
    "check_options",
    "evaluate_losses",
    "load_vgg",
    "plan_scales",
    "resolve_options",
    "stylize",
]

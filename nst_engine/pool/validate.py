"""Checks a request before it is queued, so a bad one never costs a worker's time."""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image

from nst_engine.animation import Clip
from nst_engine.errors import OptionsError
from nst_engine.options import check_options, plan_scales
from nst_engine.pool.protocol import StyleRequest
from nst_engine.types import StyleOptions

MAX_STYLES = 8  # more style images only add Gram targets and memory; nobody needs them


def validate_request(request: StyleRequest) -> None:
    """Raise OptionsError (or ImageTooSmallError, from the engine's own schedule check) for an invalid request."""
    if not isinstance(request, StyleRequest):
        raise OptionsError(f"expected a StyleRequest, got {type(request).__name__}")
    _check_image(request.content, "content image")
    styles = request.styles
    if isinstance(styles, Image.Image) or not isinstance(styles, Sequence):
        raise OptionsError("styles must be a sequence (list or tuple) of style images")
    if not styles:
        raise OptionsError("at least one style image is needed")
    if len(styles) > MAX_STYLES:
        raise OptionsError(f"at most {MAX_STYLES} style images per job, got {len(styles)}")
    for number, style in enumerate(styles, start=1):
        _check_image(style, "style image" if len(styles) == 1 else f"style image {number}")
    if request.clip is not None:
        _check_clip(request.clip, request.content)
    options = request.options
    if not isinstance(options, StyleOptions):
        raise OptionsError(f"options must be a StyleOptions, got {type(options).__name__}")
    if options.preview_every is not None and not (math.isfinite(options.preview_every) and options.preview_every > 0):
        raise OptionsError(f"preview_every must be a positive number of seconds, got {options.preview_every}")
    if request.timeout is not None and not (math.isfinite(request.timeout) and request.timeout > 0):
        raise OptionsError(f"timeout must be a positive number of seconds, got {request.timeout}")
    # The engine's own rules (ranges, preset names, style weights) and its schedule check (output not too small),
    # so the pool refuses exactly what the worker would.
    settings = check_options(options, len(styles))
    plan_scales(request.content.width, request.content.height, settings)


def _check_image(image: object, role: str) -> None:
    if not isinstance(image, Image.Image):
        raise OptionsError(f"the {role} must be a PIL image, got {type(image).__name__}")
    if image.mode != "RGB":
        raise OptionsError(
            f"the {role} must be RGB, got mode {image.mode!r}; decode uploads with nst_engine.images.decode_image"
        )
    if image.width < 1 or image.height < 1:
        raise OptionsError(f"the {role} is empty ({image.width}x{image.height} pixels)")


def _check_clip(clip: object, content: Image.Image) -> None:
    if not isinstance(clip, Clip):
        raise OptionsError(f"clip must be a nst_engine.animation.Clip, got {type(clip).__name__}")
    for number, frame in enumerate(clip.frames, start=1):
        _check_image(frame, f"frame {number} of the content animation")
    if clip.size != content.size:
        raise OptionsError(f"the content image ({content.width}x{content.height}) must be the clip's first frame "
                           f"({clip.size[0]}x{clip.size[1]})")  # fmt: skip

"""Shrinking a request's images before they leave this process, shared by both backends (no torch here)."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from nst_engine.options import output_size, shrink
from nst_engine.types import StyleOptions


def shrink_request_images(
    content: Image.Image, styles: Sequence[Image.Image], options: StyleOptions
) -> tuple[Image.Image, list[Image.Image]]:
    """The content and style images at no more than about twice the size the job will use."""
    size = output_size(options)
    style_side = max(1, round(size * options.style_scale))
    return shrink(content, size), [shrink(s, style_side) for s in styles]

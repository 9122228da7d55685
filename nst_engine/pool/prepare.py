"""Shrinking a request's images before they leave this process, shared by both backends (no torch here)."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from nst_engine.presets import get_preset
from nst_engine.types import StyleOptions

# The engine's minimum side (nst_engine.engine.MIN_SIDE); repeated because importing the engine imports torch, which
# the bot's side of a Ray backend must not need. tests/test_pool_worker.py checks the two agree.
MIN_SIDE = 32


def output_size(options: StyleOptions) -> int:
    """The long side the engine will produce for ``options``."""
    return options.size if options.size is not None else get_preset(options.preset).size


def shrink(image: Image.Image, side: int) -> Image.Image:
    """Box-reduce an image far larger than the engine will use, keeping at least twice the needed long side.

    The engine's own antialiased resize then makes the final size, so the picture is unchanged to the eye, while a
    40-megapixel upload is not copied through a pipe (or over the network) and into tensors at full size.
    """
    # The short side keeps twice the engine's minimum too, so elongated images stay usable (see engine._style_at).
    factor = min(max(image.size) // (2 * side), min(image.size) // (2 * MIN_SIDE))
    return image.reduce(factor) if factor >= 2 else image


def shrink_request_images(
    content: Image.Image, styles: Sequence[Image.Image], options: StyleOptions
) -> tuple[Image.Image, list[Image.Image]]:
    """The content and style images at no more than about twice the size the job will use."""
    size = output_size(options)
    style_side = max(1, round(size * options.style_scale))
    return shrink(content, size), [shrink(s, style_side) for s in styles]

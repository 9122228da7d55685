"""Test clips made from the sample photos, and the steadiness measure of a painted animation.

Shared by the engine tests, the e2e tests, the benchmarks and the gallery.
"""

from __future__ import annotations

import io
import itertools

import numpy as np
from PIL import Image

from nst_engine.animation import Clip


def pan_and_hold(photo: Image.Image, *, width: int, height: int, pan: int, hold: int, step: int = 2) -> Clip:
    """A slow pan (``pan`` frames, ``step`` px to the right per frame) over ``photo`` then a still stretch (``hold``
    copies of the last frame): where the source moves and where it does not. 80 ms frames, looping forever."""
    scale = max(width + step * pan, height * photo.width / photo.height) / photo.width
    wide = photo.convert("RGB").resize((round(photo.width * scale), round(photo.height * scale)), Image.Resampling.LANCZOS)
    top = (wide.height - height) // 2
    frames = [wide.crop((i * step, top, i * step + width, top + height)) for i in range(pan)]
    frames += [frames[-1].copy() for _ in range(hold)]
    return Clip(tuple(frames), tuple(80 for _ in frames), loop=0)


def encode_gif(clip: Clip) -> bytes:
    """``clip`` as an animated GIF file, each frame for its own duration (as a person's upload would be)."""
    buf = io.BytesIO()
    clip.frames[0].save(buf, "GIF", save_all=True, append_images=list(clip.frames[1:]), duration=list(clip.durations),
                        loop=clip.loop or 0)  # fmt: skip
    return buf.getvalue()


def frame_changes(clip: Clip, size: tuple[int, int] | None = None) -> list[float]:
    """Mean absolute change (0..255) between consecutive frames, at ``size`` (default the clip's own)."""
    arrays = [np.asarray(f.resize(size or clip.size, Image.Resampling.BILINEAR), dtype=np.float32) for f in clip.frames]
    return [float(np.abs(b - a).mean()) for a, b in itertools.pairwise(arrays)]


def steadiness(painted: Clip, source: Clip) -> float:
    """Frame-to-frame change of the painted clip over the source's (at the painted size): 1 = as steady as the source."""
    ours, theirs = frame_changes(painted), frame_changes(source, painted.size)
    return sum(ours) / max(sum(theirs), 1e-9)

"""Animated pictures in and out: read an animated GIF, APNG or WebP into a ``Clip``, and write a clip as animated
WebP or GIF within a byte budget. Torch-free, so front ends can check a clip without the engine.

Reading counts every frame against the limits before it decodes the pixels: at most ``max_frames`` frames, and at
most ``ImageLimits.max_pixels`` pixels over all the frames it decodes (the decompression-bomb check of a still,
applied to the whole animation).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Literal

from PIL import Image

from nst_engine.encoding import EncodedImage
from nst_engine.errors import CorruptImageError, EncodeError, ImageError, TooManyPixelsError
from nst_engine.images import (
    _DECODE_ERRORS,
    _TRANSPOSE,
    DEFAULT_LIMITS,
    ImageInfo,
    ImageLimits,
    _open,
    human_bytes,
    human_pixels,
    to_rgb,
)

__all__ = [
    "DEFAULT_FRAME_MS", "MAX_FRAMES", "Clip", "TooManyFramesError", "clip_cost", "decode_clip", "encode_clip",
]  # fmt: skip

ClipFormat = Literal["auto", "webp", "gif"]
MAX_FRAMES = 48  # the default most frames a clip may have
DEFAULT_FRAME_MS = 100  # what browsers show a frame for when the file gives no duration
_WEBP_QUALITIES = (90, 80, 70, 60, 50)
_MIN_SIDE = 16
_MAX_DOWNSCALES = 8


class TooManyFramesError(ImageError):
    """An animation has more frames than allowed."""


@dataclass(frozen=True)
class Clip:
    """The frames of an animation (RGB, one size), how long each is shown, and how often it plays."""

    frames: tuple[Image.Image, ...]
    durations: tuple[int, ...]  # milliseconds per frame
    loop: int | None = 0  # 0 = forever, N = N more times, None = once (no loop marker in the file)
    notes: tuple[str, ...] = ()  # what reading changed, e.g. "shortened to its first 48 of 120 frames"

    def __post_init__(self) -> None:
        if not self.frames or len(self.frames) != len(self.durations):
            raise ValueError("a clip needs at least one frame and one duration per frame")
        if len({f.size for f in self.frames}) != 1:
            raise ValueError("every frame of a clip has the same size")

    @property
    def size(self) -> tuple[int, int]:
        return self.frames[0].size

    def __len__(self) -> int:
        return len(self.frames)

    def with_frames(self, frames: list[Image.Image] | tuple[Image.Image, ...]) -> Clip:
        """The same timing around other frames (a painted clip keeps its source's durations and loop)."""
        return Clip(tuple(frames), self.durations, self.loop, self.notes)


NEXT_FRAME_COST = 1 / 3  # what painting a frame after the first costs at most, against the first (engine.temporal)


def clip_cost(clip: Clip | None) -> float:
    """What painting ``clip`` costs at most, in stills of the same size: a job's time limit grows by this factor."""
    return 1.0 if clip is None else 1.0 + (len(clip) - 1) * NEXT_FRAME_COST


def _frame_count(info: ImageInfo, role: str, max_frames: int, shorten: bool) -> tuple[int, tuple[str, ...]]:
    if info.n_frames <= max_frames:
        return info.n_frames, ()
    if shorten:
        return max_frames, (f"shortened to its first {max_frames} of {info.n_frames} frames",)
    raise TooManyFramesError(
        f"{role} is an animation of {info.n_frames} frames; the limit is {max_frames} frames", role=role
    )


def decode_clip(
    data: bytes,
    *,
    role: str = "content image",
    limits: ImageLimits | None = None,
    max_frames: int = MAX_FRAMES,
    shorten: bool = False,
) -> Clip:
    """Validate and decode every frame of ``data`` (a still gives a one-frame clip).

    An animation over ``max_frames`` is refused with TooManyFramesError, or with ``shorten`` cut to its first
    ``max_frames`` frames (said in ``Clip.notes``). Raises the typed ImageError subclasses.
    """
    limits = limits or DEFAULT_LIMITS
    im, info = _open(data, role, limits)
    with im:
        count, notes = _frame_count(info, role, max_frames, shorten) if info.animated else (1, ())
        total = count * info.pixels
        if total > limits.max_pixels:
            raise TooManyPixelsError(
                f"{role} is {count} frames of {info.width}x{info.height} px, {human_pixels(total)} in all; "
                f"the limit is {human_pixels(limits.max_pixels)} over all frames",
                role=role,
            )
        frames: list[Image.Image] = []
        durations: list[int] = []
        try:
            for index in range(count):
                im.seek(index)
                frame = to_rgb(im)
                if info.orientation in _TRANSPOSE:
                    frame = frame.transpose(_TRANSPOSE[info.orientation])
                frame.info.clear()
                frames.append(frame)
                durations.append(int(im.info.get("duration") or DEFAULT_FRAME_MS))
            loop = im.info.get("loop")
        except _DECODE_ERRORS as exc:
            raise CorruptImageError(
                f"{role} is damaged or truncated at frame {len(frames) + 1}; re-save or re-export it", role=role
            ) from exc
    return Clip(tuple(frames), tuple(durations), loop if isinstance(loop, int) else None, notes)


def _save_webp(frames: list[Image.Image], clip: Clip, quality: int) -> bytes:
    buf = io.BytesIO()
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], duration=list(clip.durations),
                   loop=clip.loop or 0, quality=quality, method=4)  # fmt: skip
    return buf.getvalue()


def _save_gif(frames: list[Image.Image], clip: Clip) -> bytes:
    # One palette for every frame, taken from all of them: a palette per frame would flicker where nothing moves.
    width, height = frames[0].size
    mosaic = Image.new("RGB", (width, height * len(frames)))
    for index, frame in enumerate(frames):
        mosaic.paste(frame, (0, index * height))
    palette = mosaic.quantize(256, method=Image.Quantize.MEDIANCUT)
    indexed = [f.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG) for f in frames]
    buf = io.BytesIO()
    extra = {} if clip.loop is None else {"loop": clip.loop}
    indexed[0].save(buf, "GIF", save_all=True, append_images=indexed[1:], duration=list(clip.durations),
                    disposal=1, optimize=False, **extra)  # fmt: skip
    return buf.getvalue()


def _encoded(data: bytes, fmt: str, quality: int | None, size: tuple[int, int]) -> EncodedImage:
    mime = "image/webp" if fmt == "webp" else "image/gif"
    return EncodedImage(data, fmt, fmt, mime, quality, size[0], size[1])


def encode_clip(clip: Clip, *, fmt: ClipFormat = "auto", max_bytes: int | None = None) -> EncodedImage:
    """Encode ``clip`` as an animated WebP or GIF, within ``max_bytes`` when given; durations and loop kept.

    ``auto``: WebP at high quality when it fits; else a GIF when that fits (no loss beyond its one palette); else WebP
    at the highest lower quality that fits; else all of that again on smaller frames. ``webp`` or ``gif`` tries only
    that format. Raises EncodeError when nothing fits.
    """
    if fmt not in ("auto", "webp", "gif"):
        raise ValueError(f"unknown animation format {fmt!r}; use auto, webp or gif")
    frames = [to_rgb(f) for f in clip.frames]
    if max_bytes is None:
        if fmt == "gif":
            return _encoded(_save_gif(frames, clip), "gif", None, frames[0].size)
        return _encoded(_save_webp(frames, clip, _WEBP_QUALITIES[0]), "webp", _WEBP_QUALITIES[0], frames[0].size)
    if max_bytes <= 0:
        raise EncodeError(f"the byte budget must be positive, got {max_bytes}")
    original, smallest = frames[0].size, 0
    for _ in range(_MAX_DOWNSCALES + 1):
        tries = [("webp", _WEBP_QUALITIES[0]), ("gif", None)] + [("webp", q) for q in _WEBP_QUALITIES[1:]]
        for kind, quality in tries:
            if fmt != "auto" and kind != fmt:
                continue
            data = _save_webp(frames, clip, quality) if quality is not None else _save_gif(frames, clip)
            if len(data) <= max_bytes:
                return _encoded(data, kind, quality, frames[0].size)
            smallest = len(data) if not smallest else min(smallest, len(data))
        factor = min(0.9, max(0.5, (max_bytes / smallest) ** 0.5 * 0.9))
        size = (round(frames[0].width * factor), round(frames[0].height * factor))
        if min(size) < _MIN_SIDE:
            break
        frames = [f.resize(size, Image.Resampling.LANCZOS) for f in frames]
    raise EncodeError(
        f"could not encode the {len(clip)}-frame {original[0]}x{original[1]} px animation in "
        f"{human_bytes(max_bytes)}: the smallest attempt was {human_bytes(smallest)}"
    )

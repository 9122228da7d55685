"""Messages between the pool (asyncio side) and its worker processes, and how errors cross the process boundary.

Images travel as raw RGB bytes plus their size through the local pipes (cheaper than pickling PIL objects and
independent of Pillow's pickle format), and as PNG bytes to and from Ray actors, where they may cross a network.
Exceptions travel as an ``ErrorInfo`` (class name, message, role) and are rebuilt as the same ``nst_engine.errors``
class on the other side, because pickling an exception loses keyword-only fields like ``role``.
"""

from __future__ import annotations

import io
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from PIL import Image

from nst_engine import errors
from nst_engine.animation import Clip
from nst_engine.types import HistoryPoint, LossSummary, ProgressEvent, StyleOptions, StyleResult


@dataclass(frozen=True)
class RawImage:
    """An RGB image as bytes: 3 bytes per pixel, row by row."""

    width: int
    height: int
    data: bytes

    @classmethod
    def from_pil(cls, image: Image.Image) -> RawImage:
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        return cls(rgb.width, rgb.height, rgb.tobytes())

    def to_pil(self) -> Image.Image:
        return Image.frombytes("RGB", (self.width, self.height), self.data)


@dataclass(frozen=True)
class PngImage:
    """An RGB image as PNG bytes (lossless, about half the raw size for photos; fast compression level)."""

    data: bytes

    @classmethod
    def from_pil(cls, image: Image.Image) -> PngImage:
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        buffer = io.BytesIO()
        rgb.save(buffer, format="PNG", compress_level=1)
        return cls(buffer.getvalue())

    def to_pil(self) -> Image.Image:
        with Image.open(io.BytesIO(self.data)) as image:
            if image.format != "PNG":
                raise ValueError(f"expected PNG bytes, got {image.format}")
            return image.convert("RGB")


PackedImage = RawImage | PngImage
ImageCodec = Callable[[Image.Image], PackedImage]


@dataclass(frozen=True)
class PackedClip:
    """An animation's frames, packed, with its timing."""

    frames: tuple[PackedImage, ...]
    durations: tuple[int, ...]
    loop: int | None
    notes: tuple[str, ...] = ()

    @classmethod
    def pack(cls, clip: Clip, codec: ImageCodec) -> PackedClip:
        return cls(tuple(codec(f) for f in clip.frames), clip.durations, clip.loop, clip.notes)

    def unpack(self) -> Clip:
        return Clip(tuple(f.to_pil() for f in self.frames), self.durations, self.loop, self.notes)


# Parent -> worker ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunMessage:
    """The message that tells a worker to run a job; ``seq`` names it there (a stop names the seq to stop)."""

    seq: int
    job_id: str
    content: PackedImage
    styles: tuple[PackedImage, ...]
    options: StyleOptions
    clip: PackedClip | None = None  # an animation to paint (``content`` is then its first frame)


# Worker -> parent ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorInfo:
    """An exception in a picklable, rebuildable form.

    kind: ``typed`` (a class of nst_engine.errors, rebuilt as such), ``oom`` (out of memory, also after the retry),
    ``unknown`` (anything else: reported as JobFailedError; ``detail`` keeps the traceback for the log only).
    """

    kind: Literal["typed", "oom", "unknown"]
    type_name: str
    message: str
    role: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class WeightsLoaded:
    """The worker has loaded VGG19 and takes jobs."""

    pid: int
    device: str
    load_seconds: float


@dataclass(frozen=True)
class LoadFailed:
    """The worker could not load the weights and exits."""

    error: ErrorInfo


@dataclass(frozen=True)
class Progress:
    """One throttled progress event of job ``seq``."""

    seq: int
    event: ProgressEvent  # with preview=None: the preview travels as raw bytes beside it
    preview: PackedImage | None


@dataclass(frozen=True)
class Done:
    """Job ``seq`` finished: its picture and losses."""

    seq: int
    image: PackedImage
    summary: LossSummary
    history: list[HistoryPoint]
    steps: int  # iterations the worker ran for this job (retry included)
    clip: PackedClip | None = None  # the painted animation, for a job that painted one

    def unpack(self) -> StyleResult:
        """The result as the engine returned it (run it off the event loop: it decodes every picture)."""
        clip = self.clip.unpack() if self.clip is not None else None
        return StyleResult(self.image.to_pil(), self.summary, self.history, clip)


@dataclass(frozen=True)
class Failed:
    """Job ``seq`` ended with an error (a stop included)."""

    seq: int
    error: ErrorInfo
    steps: int


WorkerMessage = WeightsLoaded | LoadFailed | Progress | Done | Failed


def encode_error(exc: BaseException, *, oom: bool = False) -> ErrorInfo:
    """Describe ``exc`` for the parent. ``oom`` marks an out-of-memory error already phrased for the user."""
    if oom:
        return ErrorInfo("oom", type(exc).__name__, str(exc))
    cls = type(exc)
    if isinstance(exc, errors.NSTError) and getattr(errors, cls.__name__, None) is cls:
        return ErrorInfo("typed", cls.__name__, str(exc), role=getattr(exc, "role", None))
    detail = "".join(traceback.format_exception(exc)).rstrip()
    return ErrorInfo("unknown", cls.__name__, _one_line(str(exc)), detail=detail)


def decode_error(info: ErrorInfo) -> Exception:
    """Rebuild the exception that ``encode_error`` described, as the pool reports it to callers."""
    if info.kind == "oom":
        return errors.OutOfMemoryError(info.message)
    if info.kind == "typed":
        cls = getattr(errors, info.type_name, None)
        if isinstance(cls, type) and issubclass(cls, errors.NSTError):
            if issubclass(cls, errors.ImageError):
                return cls(info.message, role=info.role or "image")
            return cls(info.message)
    text = f"{info.type_name}: {info.message}" if info.message else info.type_name
    return errors.JobFailedError(f"the style job failed unexpectedly ({text}); the details are in the bot's log")


def decode_load_error(prefix: str, info: ErrorInfo, logger: logging.Logger) -> Exception:
    """The error a worker's failed weight load becomes, its message starting with ``prefix`` (which worker).

    The project's own errors keep their class; anything else becomes a PoolError, its traceback going to ``logger``.
    """
    error = decode_error(info)
    if isinstance(error, errors.NSTError) and not isinstance(error, errors.JobFailedError):
        return type(error)(f"{prefix}: {error}")
    if info.detail:
        logger.error("%s:\n%s", prefix, info.detail)
    return errors.PoolError(f"{prefix}: {info.type_name}: {info.message}")


def _one_line(text: str, limit: int = 200) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"

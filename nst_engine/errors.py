"""Typed errors of the engine. Each message is written for the person who sent the input."""

from __future__ import annotations


class NSTError(Exception):
    """Base class of every error the engine raises on purpose."""


class ImageError(NSTError, ValueError):
    """An input image was refused. ``role`` names it ("content image", "style image 2", ...)."""

    def __init__(self, message: str, *, role: str = "image") -> None:
        super().__init__(message)
        self.role = role


class UnsupportedFormatError(ImageError):
    """The bytes are not an image in an allowed format."""


class CorruptImageError(ImageError):
    """The image header or data is damaged or truncated."""


class FileTooLargeError(ImageError):
    """The file has more bytes than allowed."""


class TooManyPixelsError(ImageError):
    """The image has more pixels than allowed (checked from the header, before decoding)."""


class ImageTooSmallError(ImageError):
    """The image is smaller than the network needs, or its aspect ratio is extreme."""


class WeightsError(NSTError):
    """The VGG19 weights could not be loaded."""


class OptionsError(NSTError, ValueError):
    """A style option is out of range or unknown."""


class Cancelled(NSTError):
    """The job was cancelled by its ``should_stop`` callback or by its owner."""


class EncodeError(NSTError):
    """The result could not be encoded within the byte budget."""


class PoolError(NSTError):
    """Base class of the worker pool's errors."""


class QueueFullError(PoolError):
    """The pool's bounded queue is full; try again later."""


class PoolClosedError(PoolError):
    """The pool is closed or closing and accepts no more jobs."""


class WorkerCrashedError(PoolError):
    """The worker process running the job died (killed, segfault, out of memory)."""


class JobTimeoutError(PoolError):
    """The job ran longer than its time limit (``seconds``; an animation's grows with its ``frames``) and was
    stopped."""

    def __init__(self, message: str, *, seconds: float | None = None, frames: int = 1) -> None:
        super().__init__(message)
        self.seconds, self.frames = seconds, frames


class JobFailedError(PoolError):
    """The job raised an unexpected error inside the worker; the message says what."""


class OutOfMemoryError(PoolError):
    """The device ran out of memory, also after one retry at a smaller size."""


class ClusterSetupError(PoolError):
    """The Ray cluster cannot be used as configured (no Ray node on this machine, a version mismatch, ...): the
    operator must change something; the message says what."""

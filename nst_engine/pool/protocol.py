"""The small interface the bot uses to run style jobs, so another backend (say, a distributed one) can replace
the local process pool without touching the bot."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from PIL import Image

from nst_engine.animation import Clip
from nst_engine.types import ProgressEvent, StyleOptions, StyleResult

JobState = Literal["queued", "running", "done", "failed", "cancelled"]
WorkerState = Literal["starting", "idle", "busy", "dead", "broken"]


@dataclass(frozen=True)
class StyleRequest:
    """What to compute: decoded and validated RGB images (see ``nst_engine.images``) and the options."""

    content: Image.Image
    styles: Sequence[Image.Image]
    options: StyleOptions = field(default_factory=StyleOptions)
    job_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    owner: str | None = None  # free-form label for logs (e.g. "guild/user")
    timeout: float | None = None  # seconds; None = the backend's default (times ``clip_cost`` for an animation)
    clip: Clip | None = None  # an animation to paint, every frame; ``content`` is then its first frame


@dataclass(frozen=True)
class WorkerInfo:
    """A snapshot of one worker slot (a process, or a Ray actor), for status pages and tests."""

    index: int
    device: str
    pid: int | None
    state: WorkerState
    job_id: str | None
    jobs_done: int
    restarts: int
    node: str | None = None  # the machine, for slots on a Ray cluster

    @property
    def ready(self) -> bool:
        """Weights loaded and serving (idle or running a job)."""
        return self.state in ("idle", "busy")


@runtime_checkable
class JobHandle(Protocol):
    """A submitted job, as seen from the asyncio side."""

    @property
    def job_id(self) -> str: ...

    @property
    def state(self) -> JobState: ...

    def position(self) -> int:
        """0 while running or finished, 1 for the next job to start, 2 behind it, ..."""
        ...

    def events(self) -> AsyncIterator[ProgressEvent]:
        """Progress events as they come (throttled); the iterator ends when the job ends."""
        ...

    async def result(self) -> StyleResult:
        """The result; raises Cancelled, JobTimeoutError, WorkerCrashedError, OutOfMemoryError, JobFailedError."""
        ...

    def cancel(self) -> None:
        """Ask the job to stop: a queued job is dropped at once, a running one stops within one iteration."""
        ...


@runtime_checkable
class StyleBackend(Protocol):
    """What runs style jobs for the bot."""

    @property
    def capacity(self) -> int:
        """How many jobs can run at once (the number of workers)."""
        ...

    @property
    def queued(self) -> int:
        """Jobs waiting for a worker."""
        ...

    async def start(self) -> None: ...

    def submit(self, request: StyleRequest) -> JobHandle:
        """Queue a job; raises QueueFullError, PoolClosedError, or OptionsError for an invalid request."""
        ...

    async def close(self, timeout: float = 10.0) -> None:
        """Stop accepting, cancel what runs, and leave no child process behind within ``timeout`` seconds."""
        ...

"""The submitted job both backends hand out, and the queue it waits in.

Glossary: a *request* (``StyleRequest``) is what a caller submits; the *job* (``PoolJob``) is what it gets back:
the caller touches its handle side (state, position, events, result, cancel), the backend core its running side
(the ``seq`` that names it on its worker, why it was told to stop, its timers). The ``JobQueue`` holds jobs waiting
for a worker.

The job knows nothing of the backend: it is given a ``cancel`` and a ``position`` function when it is made, and the
core reports to it through ``mark_running`` / ``push_event`` / ``finish_*``. So no module here imports a backend.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Iterator
from typing import Literal

from nst_engine.animation import clip_cost
from nst_engine.errors import Cancelled, JobTimeoutError, QueueFullError
from nst_engine.pool.protocol import JobState, StyleRequest
from nst_engine.pool.validate import validate_request
from nst_engine.pool.wire import ErrorInfo, decode_error
from nst_engine.types import ProgressEvent, StyleResult

log = logging.getLogger("nst_engine.pool")

StopReason = Literal["cancel", "timeout", "shutdown"]
EndState = Literal["done", "failed", "cancelled"]
EVENT_BACKLOG = 32  # events kept for a slow reader; older ones are dropped (only the latest matter)
_END = object()


class EventStream:
    """Async iterator over a job's progress events from the moment it was made; ends when the job ends."""

    def __init__(self, ended: bool) -> None:
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        if ended:
            self._queue.put_nowait(_END)

    def push(self, event: ProgressEvent) -> None:
        if self._queue.qsize() >= EVENT_BACKLOG:
            self._queue.get_nowait()
        self._queue.put_nowait(event)

    def end(self) -> None:
        self._queue.put_nowait(_END)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> ProgressEvent:
        item = await self._queue.get()
        if item is _END:
            self._queue.put_nowait(_END)  # iterating again keeps ending
            raise StopAsyncIteration
        assert isinstance(item, ProgressEvent)
        return item


class PoolJob:
    """A submitted job (implements the ``JobHandle`` protocol), the same for every backend.

    Besides the protocol it exposes timings (``submitted_at``/``started_at``/``finished_at``, monotonic seconds),
    ``worker`` (where it ran, e.g. ``pid 4242`` or ``node 10.0.0.7 pid 4242``), ``worker_pid``, ``steps``
    (iterations the worker ran) and ``last_event``. Use it from the event loop's thread.

    The core's side: ``seq`` names the job on its worker (a stop request names the seq to stop, so a late stop never
    hits the next job), ``stop_reason`` says why it was told to stop, and its timeout and kill timers end with it.
    """

    def __init__(
        self,
        request: StyleRequest,
        timeout: float,
        *,
        cancel: Callable[[PoolJob], None],
        position: Callable[[PoolJob], int],
    ) -> None:
        self.request = request
        self.timeout = timeout
        self.submitted_at = time.monotonic()
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.worker: str | None = None
        self.worker_pid: int | None = None
        self.steps = 0
        self.last_event: ProgressEvent | None = None
        self.seq = 0
        self.stop_reason: StopReason | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self._cancel = cancel
        self._position = position
        self._state: JobState = "queued"
        self._finished = asyncio.Event()
        self._result: StyleResult | None = None
        self._error: BaseException | None = None
        self._streams: list[EventStream] = []

    @property
    def job_id(self) -> str:
        return self.request.job_id

    @property
    def owner(self) -> str | None:
        return self.request.owner

    @property
    def state(self) -> JobState:
        return self._state

    @property
    def done(self) -> bool:
        return self._finished.is_set()

    def position(self) -> int:
        return 0 if self._state != "queued" else self._position(self)

    def events(self) -> EventStream:
        stream = EventStream(ended=self.done)
        if not self.done:
            self._streams.append(stream)
        return stream

    async def wait_done(self) -> None:
        """Wait until the job has ended, however it ended (``result()`` then returns or raises at once)."""
        await self._finished.wait()

    async def result(self) -> StyleResult:
        await self._finished.wait()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def cancel(self) -> None:
        if not self.done:
            self._cancel(self)

    def __repr__(self) -> str:
        return f"<PoolJob {self.job_id} {self._state} owner={self.owner!r}>"

    # Reported by the backend core --------------------------------------------------------------------------------

    def mark_running(self, seq: int, worker: str, pid: int | None) -> None:
        self.seq = seq
        self._state = "running"
        self.worker = worker
        self.worker_pid = pid
        self.started_at = time.monotonic()

    def push_event(self, event: ProgressEvent) -> None:
        if self.done:
            return
        self.steps = max(self.steps, event.step)
        self.last_event = event
        for stream in self._streams:
            stream.push(event)

    def finish(self, state: EndState, *, result: StyleResult | None = None, error: BaseException | None = None) -> None:
        """End the job (once; later calls are ignored) and log its outcome."""
        if self.done:
            return
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self._state = state
        self._result = result
        self._error = error
        self.finished_at = time.monotonic()
        self._finished.set()
        for stream in self._streams:
            stream.end()
        self._streams.clear()
        waited = (self.started_at or self.finished_at) - self.submitted_at
        ran = self.finished_at - self.started_at if self.started_at is not None else 0.0
        outcome = state if error is None else f"{state} ({type(error).__name__}: {error})"
        log.info(
            "job %s owner=%s outcome=%s worker=%s waited=%.2fs ran=%.2fs steps=%d",
            self.job_id,
            self.owner or "-",
            outcome,
            self.worker or "-",
            waited,
            ran,
            self.steps,
        )

    def add_timer(self, timer: asyncio.TimerHandle) -> None:
        """A timer (time limit, kill) that is cancelled when the job ends."""
        self._timers.append(timer)

    def request_stop(self, reason: StopReason) -> bool:
        """Record why the job is to stop; False (and nothing changes) when it is already stopping or has ended."""
        if self.stop_reason is not None or self.done:
            return False
        self.stop_reason = reason
        return True

    def finish_stopped(self) -> None:
        """End a job that was told to stop, with the error that says why."""
        frames = len(self.request.clip) if self.request.clip is not None else 1
        state, error = stopped_outcome(self.stop_reason or "cancel", self.timeout, frames)
        self.finish(state, error=error)

    def finish_reported(self, outcome: StyleResult | ErrorInfo, *, runner: str, logger: logging.Logger) -> None:
        """End the job with the result or error its worker reported; a job told to stop ends as it was told.

        ``runner`` names the kind of worker for the log (``worker``, ``actor``), ``logger`` is the backend's.
        """
        if isinstance(outcome, StyleResult):
            if self.stop_reason is not None:  # finished just as it was told to stop: the stop wins
                self.finish_stopped()
            else:
                self.finish("done", result=outcome)
            return
        error = decode_error(outcome)
        if isinstance(error, Cancelled) and self.stop_reason is not None:
            self.finish_stopped()
            return
        if outcome.detail:  # an unexpected error: the traceback is for the log, never for users
            logger.error("job %s failed inside the %s:\n%s", self.job_id, runner, outcome.detail)
        state: EndState = "cancelled" if isinstance(error, Cancelled) else "failed"
        self.finish(state, error=error)

    def finish_lost(self, error: BaseException) -> None:
        """End the job whose worker died under it: as it was told, if it was told to stop, else with ``error``."""
        if self.stop_reason is not None:
            self.finish_stopped()
        else:
            self.finish("failed", error=error)


class JobQueue:
    """The bounded FIFO of jobs waiting for a worker; positions count from 1 for the next job to start."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._jobs: collections.deque[PoolJob] = collections.deque()

    def __len__(self) -> int:
        return len(self._jobs)

    def __iter__(self) -> Iterator[PoolJob]:
        return iter(self._jobs)

    def check_room(self, *, idle_worker: bool) -> None:
        """Refuse at once (QueueFullError) when no worker is idle and ``limit`` jobs already wait."""
        if not idle_worker and len(self._jobs) >= self.limit:
            raise QueueFullError(f"the queue is full ({len(self._jobs)} jobs waiting); try again in a few minutes")

    def append(self, job: PoolJob) -> None:
        self._jobs.append(job)

    def admit(
        self, request: StyleRequest, *, default_timeout: float, idle_worker: bool, cancel: Callable[[PoolJob], None]
    ) -> PoolJob:
        """Check ``request`` (OptionsError) and the room left (QueueFullError), then queue its new handle.

        The job's timeout is the request's own, else ``default_timeout``; ``cancel`` is the backend's.
        """
        validate_request(request)
        self.check_room(idle_worker=idle_worker)
        timeout = request.timeout if request.timeout is not None else default_timeout * clip_cost(request.clip)
        job = PoolJob(request, timeout, cancel=cancel, position=self.position)
        self._jobs.append(job)
        return job

    def cancel_waiting(self, job: PoolJob) -> bool:
        """End ``job`` as cancelled if it is still waiting here; False when it is not (it runs, or has ended)."""
        if not self.discard(job):
            return False
        job.finish("cancelled", error=Cancelled("the job was cancelled before it started"))
        return True

    def popleft(self) -> PoolJob:
        return self._jobs.popleft()

    def discard(self, job: PoolJob) -> bool:
        try:
            self._jobs.remove(job)
        except ValueError:
            return False
        return True

    def position(self, job: PoolJob) -> int:
        try:
            return self._jobs.index(job) + 1
        except ValueError:
            return 0

    def cancel_all(self, message: str) -> None:
        while self._jobs:
            self._jobs.popleft().finish("cancelled", error=Cancelled(message))


def stopped_outcome(reason: StopReason, timeout: float, frames: int = 1) -> tuple[EndState, Exception]:
    """How a job told to stop for ``reason`` ends, and the error its caller sees."""
    if reason == "timeout":
        limit = f"{timeout:g} s" if frames == 1 else f"{timeout:g} s (the limit for {frames} frames)"
        return "failed", JobTimeoutError(
            f"the job took longer than {limit} and was stopped; "
            "try a smaller size, fewer iterations" + (", fewer frames" if frames > 1 else "") + " or the 'fast' preset",
            seconds=timeout, frames=frames,
        )
    if reason == "shutdown":
        return "cancelled", Cancelled("the style service is shutting down; the job was stopped")
    return "cancelled", Cancelled("the job was cancelled")

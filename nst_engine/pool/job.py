"""``PoolJob``: the asyncio-side handle of a job submitted to the process pool."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Literal

from nst_engine.pool.protocol import JobState, StyleRequest
from nst_engine.types import ProgressEvent, StyleResult

if TYPE_CHECKING:
    from nst_engine.pool.backend import ProcessPoolBackend

StopReason = Literal["cancel", "timeout", "shutdown"]
EVENT_BACKLOG = 32  # events kept for a slow reader; older ones are dropped (only the latest matter)
_END = object()


class EventStream:
    """Async iterator over a job's progress events from the moment it was made; ends when the job ends."""

    def __init__(self, job: PoolJob) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        job._streams.append(self)
        if job.done:
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
        return item


class PoolJob:
    """A job of ``ProcessPoolBackend`` (implements the JobHandle protocol).

    Besides the protocol it exposes timings (``submitted_at``/``started_at``/``finished_at``, monotonic seconds),
    ``worker_pid``, ``steps`` (iterations the worker ran) and ``last_event``. Use it from the event loop's thread.
    """

    def __init__(self, pool: ProcessPoolBackend, request: StyleRequest, timeout: float) -> None:
        self.request = request
        self.timeout = timeout
        self.submitted_at = time.monotonic()
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.worker_pid: int | None = None
        self.steps = 0
        self.last_event: ProgressEvent | None = None
        # Pool-side state (only the pool writes these).
        self.seq = 0
        self.stop_reason: StopReason | None = None
        self.worker: Any = None
        self.timers: list[asyncio.TimerHandle] = []
        self._pool = pool
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
        return self._pool._position(self)

    def events(self) -> EventStream:
        return EventStream(self)

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
        self._pool._cancel(self)

    def __repr__(self) -> str:
        return f"<PoolJob {self.job_id} {self._state} owner={self.owner!r}>"

    # Called by the pool ------------------------------------------------------------------------------------------

    def mark_running(self, worker: Any, pid: int | None, seq: int) -> None:
        self._state = "running"
        self.worker = worker
        self.worker_pid = pid
        self.seq = seq
        self.started_at = time.monotonic()

    def push_event(self, event: ProgressEvent) -> None:
        self.last_event = event
        for stream in self._streams:
            stream.push(event)

    def finish(self, state: JobState, result: StyleResult | None, error: BaseException | None) -> None:
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()
        self._state = state
        self._result = result
        self._error = error
        self.finished_at = time.monotonic()
        self.worker = None
        self._finished.set()
        for stream in self._streams:
            stream.end()
        self._streams.clear()

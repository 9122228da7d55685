"""An in-memory StyleBackend: jobs run on the event loop in milliseconds, as the test steers them.

It implements the real ``StyleBackend`` / ``JobHandle`` protocols (checked with isinstance in the tests), so the job
service is exercised exactly as with the process pool, minus the processes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from PIL import Image

from nst_engine.errors import Cancelled, PoolClosedError
from nst_engine.pool.protocol import JobState, StyleRequest
from nst_engine.types import LossSummary, LossTerms, ProgressEvent, StyleResult


def result_for(request: StyleRequest) -> StyleResult:
    terms = LossTerms(content=1.0, style=2.0, tv=0.1, total=3.1)
    side = request.options.size or 64
    summary = LossSummary(
        start=terms, end=terms, style_layers_start={}, style_layers_end={}, iterations=3, seconds=0.01,
        device="memory", precision="fp32", preset=request.options.preset, width=side, height=side,
        scales=((side, side, 3),), optimizer="adam",
    )
    return StyleResult(image=Image.new("RGB", (side, side), "purple"), summary=summary)


def progress(step: int, total: int) -> ProgressEvent:
    return ProgressEvent(scale=1, scales=1, width=64, height=64, iteration=step, iterations=total, step=step,
                         total_steps=total, losses={"total": 1.0}, elapsed=0.0, eta=None)


class MemoryJob:
    def __init__(self, request: StyleRequest, steps: int) -> None:
        self.request = request
        self.steps = steps
        self._state: JobState = "queued"
        self.release = asyncio.Event()  # the test sets it to let the job finish
        self.failure: BaseException | None = None  # raised by result() instead of returning a picture
        self._events: asyncio.Queue[ProgressEvent | None] = asyncio.Queue()
        self._done: asyncio.Future[StyleResult] = asyncio.get_running_loop().create_future()
        # A job nobody waits for (closed, drained) must not log "exception was never retrieved".
        self._done.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._runner = asyncio.ensure_future(self._run())

    @property
    def job_id(self) -> str:
        return self.request.job_id

    @property
    def state(self) -> JobState:
        return self._state

    def position(self) -> int:
        return 0

    async def _run(self) -> None:
        self._state = "running"
        try:
            for step in range(1, self.steps + 1):
                await self._events.put(progress(step, self.steps))
            await self.release.wait()
            if self.failure is not None:
                raise self.failure
            self._done.set_result(result_for(self.request))
            self._state = "done"
        except asyncio.CancelledError:
            self._done.set_exception(Cancelled("cancelled"))
            self._state = "cancelled"
        except Exception as exc:
            self._done.set_exception(exc)
            self._state = "failed"
        finally:
            await self._events.put(None)

    async def events(self) -> AsyncIterator[ProgressEvent]:
        while (event := await self._events.get()) is not None:
            yield event

    async def result(self) -> StyleResult:
        return await asyncio.shield(self._done)

    def cancel(self) -> None:
        self._runner.cancel()


class MemoryBackend:
    """``capacity`` jobs at once (the fair queue in front of it holds the rest)."""

    def __init__(self, *, capacity: int = 1, steps: int = 3, auto_finish: bool = True) -> None:
        self._capacity = capacity
        self.steps = steps
        self.auto_finish = auto_finish
        self.jobs: list[MemoryJob] = []
        self.closed = False

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def queued(self) -> int:
        return 0

    async def start(self) -> None:
        self.closed = False

    def submit(self, request: StyleRequest) -> MemoryJob:
        if self.closed:
            raise PoolClosedError("closed")
        job = MemoryJob(request, self.steps)
        if self.auto_finish:
            job.release.set()
        self.jobs.append(job)
        return job

    async def close(self, timeout: float = 10.0) -> None:
        self.closed = True
        for job in self.jobs:
            job.cancel()

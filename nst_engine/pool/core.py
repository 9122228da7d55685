"""The job lifecycle both style backends share, written once: queue, dispatch, cancel, time limit, stop then kill,
a dead worker failing only its own job, and the start of ``close``.

A backend subclasses ``BackendCore`` with its kind of ``Slot`` and supplies the transport: how a job reaches a
worker (``_send``), how a worker is told to stop (``_signal_stop``) or killed (``_kill``), how a lost worker is
replaced (``_replace``) and how the workers are torn down (``_shut_down``). The transport reports back through
``_job_reported``, ``_job_unsent`` and ``_slot_died``. Everything here runs on the event loop's thread.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from types import TracebackType
from typing import Any, ClassVar, Generic, Self, TypeVar

from nst_engine.errors import Cancelled, JobFailedError, NSTError, PoolClosedError, PoolError, WorkerCrashedError
from nst_engine.pool.job import JobQueue, PoolJob, StopReason
from nst_engine.pool.protocol import StyleRequest, WorkerInfo, WorkerState
from nst_engine.pool.settings import BackendKind, PoolSettings, backend_arguments, load_pool_settings, or_setting
from nst_engine.pool.wire import ErrorInfo
from nst_engine.types import StyleResult

CLOSE_STOP_SHARE = 0.4  # of close()'s budget, what running jobs get to stop cooperatively
RESPAWN_ATTEMPTS = 3  # a worker whose weights fail to load this many times in a row is given up


class Slot:
    """One worker slot as the core sees it: its state, the job it runs, and its counters."""

    def __init__(self, index: int, device: str, restarts: int = 0) -> None:
        self.index = index
        self.device = device
        self.restarts = restarts
        self.state: WorkerState = "starting"
        self.job: PoolJob | None = None
        self.seq = 0
        self.jobs_done = 0

    @property
    def pid(self) -> int | None:
        return None

    @property
    def where(self) -> str:
        """The worker in words, for logs and error messages."""
        return f"worker {self.index}"

    @property
    def ready(self) -> bool:
        """Weights loaded and taking jobs (idle or running one)."""
        return self.state in ("idle", "busy")

    def info(self) -> WorkerInfo:
        job_id = self.job.job_id if self.job is not None else None
        return WorkerInfo(self.index, self.device, self.pid, self.state, job_id, self.jobs_done, self.restarts)


S = TypeVar("S", bound=Slot)


def check_backend_settings(
    *, positive_seconds: dict[str, float], stop_grace: float, progress_interval: float, max_queue: int
) -> None:
    """ValueError naming the first backend setting out of range."""
    for name, value in positive_seconds.items():
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number of seconds, got {value}")
    for name, value in (("stop_grace", stop_grace), ("progress_interval", progress_interval)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be >= 0 seconds, got {value}")
    if max_queue < 0:
        raise ValueError(f"max_queue must be >= 0, got {max_queue}")


class BackendCore(Generic[S]):
    """The lifecycle of jobs on worker slots (implements ``StyleBackend`` with a subclass's transport).

    weights: imagenet | random | a state_dict path (None: the NST_WEIGHTS setting). job_timeout: default seconds a job
    may run (a request's ``timeout`` wins). max_queue: jobs that may wait. progress_interval: at most one progress
    event per job per this many seconds (the final one always comes). start_timeout: seconds to wait for the weights
    to load. stop_grace: seconds a cancelled or timed-out job has to stop before its worker is killed and replaced.
    """

    kind: ClassVar[BackendKind]  # which NST_BACKEND this is
    runner = "worker"  # what the log calls a worker of this backend
    unsent = "the job could not be handed to a worker"  # a job's error when its transport failed
    log = logging.getLogger("nst_engine.pool")

    def __init__(
        self,
        *,
        weights: str | None,
        job_timeout: float,
        max_queue: int,
        progress_interval: float,
        start_timeout: float,
        stop_grace: float,
        more_positive_seconds: dict[str, float] | None = None,
    ) -> None:
        check_backend_settings(
            positive_seconds={
                "job_timeout": job_timeout,
                "start_timeout": start_timeout,
                **(more_positive_seconds or {}),
            },
            stop_grace=stop_grace,
            progress_interval=progress_interval,
            max_queue=max_queue,
        )
        self.weights = or_setting(weights, "nst_weights") or "imagenet"
        self.job_timeout = float(job_timeout)
        self.max_queue = max_queue
        self.progress_interval = float(progress_interval)
        self.start_timeout = float(start_timeout)
        self.stop_grace = float(stop_grace)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: list[S] = []
        self._queue = JobQueue(max_queue)
        self._started = False
        self._closing = False
        self._closed = asyncio.Event()
        self._changed = asyncio.Event()  # replaced on every slot change; see _notify
        self._broken: str | None = None  # why no worker can serve any more

    @classmethod
    def from_settings(cls, settings: PoolSettings, **overrides: Any) -> Self:
        """A backend configured from the NST_* settings; keyword overrides win."""
        return cls(**(backend_arguments(settings, cls.kind) | overrides))

    @classmethod
    def from_env(cls, **overrides: Any) -> Self:
        """A backend configured from the environment and ``.env`` (``nst_engine.pool.settings``)."""
        return cls.from_settings(load_pool_settings(), **overrides)

    # Transport: what a backend supplies ---------------------------------------------------------------------------

    def _send(self, slot: S, job: PoolJob) -> None:
        """Hand ``job`` to ``slot``'s worker; report with ``_job_reported`` / ``_job_unsent`` / ``_slot_died``."""
        raise NotImplementedError

    def _signal_stop(self, slot: S, seq: int) -> None:
        """Tell ``slot``'s worker to stop job ``seq`` before its next iteration."""
        raise NotImplementedError

    def _kill(self, slot: S) -> None:
        """Kill ``slot``'s worker (its death is then reported through ``_slot_died``)."""
        raise NotImplementedError

    def _replace(self, slot: S) -> None:
        """Put a new worker in the place of ``slot``, whose worker died."""
        raise NotImplementedError

    async def _shut_down(self, left: Callable[[float], float]) -> None:
        """Stop every worker within ``left(share)`` seconds (the rest of ``close``'s budget, or a share of it)."""
        raise NotImplementedError

    def _begin_close(self) -> None:
        """Stop background work (replacements, watching the cluster) as ``close`` starts."""

    def _changing(self) -> bool:
        """True while the number of slots is about to change (``wait_ready`` waits for that too)."""
        return False

    # StyleBackend ------------------------------------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        return len(self._slots)

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def running(self) -> int:
        return sum(1 for s in self._slots if s.job is not None)

    @property
    def slots_ready(self) -> int:
        """Slots whose worker has loaded the weights and takes jobs."""
        return sum(1 for s in self._slots if s.ready)

    @property
    def workers(self) -> list[WorkerInfo]:
        return [s.info() for s in self._slots]

    def submit(self, request: StyleRequest) -> PoolJob:
        """Queue a job; raises QueueFullError, PoolClosedError, or OptionsError for an invalid request."""
        if self._closing:
            raise PoolClosedError("the style service is shutting down and accepts no new jobs")
        if self._broken is not None and self.slots_ready == 0:
            raise PoolClosedError(self._broken)
        if not self._started:
            raise PoolClosedError("the style backend has not been started; await backend.start() first")
        job = self._queue.admit(
            request,
            default_timeout=self.job_timeout,
            idle_worker=any(s.state == "idle" for s in self._slots),
            cancel=self._cancel,
        )
        self._dispatch()
        return job

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until every slot has a loaded worker (after ``start``, a replacement, or the cluster changing).

        Raises TimeoutError after ``timeout`` seconds, PoolError when a slot had to be given up.
        """
        async with asyncio.timeout(timeout):
            while True:
                if self._closing:
                    raise PoolClosedError("the style backend is closed")
                broken = self._broken or (
                    "a style worker could not be restarted" if any(s.state == "broken" for s in self._slots) else None
                )
                if broken is not None:
                    raise PoolError(broken)
                if self._started and self._slots and all(s.ready for s in self._slots) and not self._changing():
                    return
                await self._changed.wait()

    async def close(self, timeout: float = 10.0) -> None:
        """Stop accepting, cancel queued and running jobs, and leave no worker behind within about ``timeout`` s.

        Running jobs get a cooperative stop first; the transport then stops its workers in what is left.
        """
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        self._notify()
        self._begin_close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)

        def left(share: float = 1.0) -> float:
            return max(0.0, (deadline - loop.time()) * share)

        self._queue.cancel_all("the style service is shutting down; the job never started")
        busy = [s for s in self._slots if s.job is not None and not s.job.done]
        running = [s.job for s in busy if s.job is not None]
        for slot in busy:
            self._stop_running(slot, "shutdown")
        if running:  # a cooperative stop takes one iteration; give it part of the budget
            await asyncio.wait([asyncio.ensure_future(j.wait_done()) for j in running], timeout=left(CLOSE_STOP_SHARE))
        await self._shut_down(left)
        for slot in self._slots:  # anything still unresolved (a worker that could not even be killed)
            if slot.job is not None:
                slot.job.finish("cancelled", error=Cancelled("the style service shut down"))
                slot.job = None
        self._closed.set()

    async def start(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # The lifecycle -----------------------------------------------------------------------------------------------

    def _begin_start(self) -> bool:
        """Mark the backend started (False when it already was); PoolClosedError once it has been closed."""
        if self._closing:
            raise PoolClosedError("the style backend is closed; make a new one")
        if self._started:
            return False
        self._loop = asyncio.get_running_loop()
        self._started = True
        return True

    def _notify(self) -> None:
        """Wake ``wait_ready`` callers: a slot changed."""
        self._changed.set()
        self._changed = asyncio.Event()

    def _dispatch(self) -> None:
        if self._closing:
            return
        while self._queue:
            slot = next((s for s in self._slots if s.state == "idle"), None)
            if slot is None:
                return
            self._run(slot, self._queue.popleft())

    def _run(self, slot: S, job: PoolJob) -> None:
        assert self._loop is not None
        slot.seq += 1
        slot.state = "busy"
        slot.job = job
        job.mark_running(slot.seq, slot.where, slot.pid)
        job.add_timer(self._loop.call_later(job.timeout, self._on_timeout, slot, job))
        self._send(slot, job)

    def _release(self, slot: S, job: PoolJob) -> bool:
        """``job`` has ended on ``slot``: the slot is free for the next one. False when it had moved on already."""
        if slot.job is not job:
            return False
        slot.job = None
        if slot.state == "busy":
            slot.state = "idle"
        return True

    def _job_reported(self, slot: S, job: PoolJob, outcome: StyleResult | ErrorInfo, steps: int) -> None:
        """The worker reported the end of ``job``: its result, or the error it ended with."""
        if not self._release(slot, job):
            return
        slot.jobs_done += 1
        job.steps = steps
        job.finish_reported(outcome, runner=self.runner, logger=self.log)
        self._dispatch()

    def _job_unsent(self, slot: S, job: PoolJob, exc: BaseException) -> None:
        """``job`` could not be handed to (or run on) ``slot``'s worker, which is still alive."""
        if self._closing or not self._release(slot, job):
            return
        self.log.error("job %s could not be run on %s", job.job_id, slot.where, exc_info=exc)
        error = exc if isinstance(exc, NSTError) else JobFailedError(f"{self.unsent} ({exc})")
        job.finish("failed", error=error)
        self._dispatch()

    def _slot_died(self, slot: S, crash: str) -> None:
        """``slot``'s worker is gone: its job alone fails with ``crash`` (or ends as it was told to)."""
        slot.state = "dead"
        job, slot.job = slot.job, None
        if job is not None:
            job.finish_lost(WorkerCrashedError(crash))
        self._notify()
        if not self._closing:
            self._replace(slot)

    def _cancel(self, job: PoolJob) -> None:
        if job.done or self._queue.cancel_waiting(job):
            return
        slot = next((s for s in self._slots if s.job is job), None)
        if slot is not None:
            self._stop_running(slot, "cancel")

    def _stop_running(self, slot: S, reason: StopReason) -> None:
        """Ask the worker to stop its job (checked every iteration); kill it if it does not, in time."""
        job = slot.job
        if job is None or not job.request_stop(reason):
            return
        self._signal_stop(slot, job.seq)
        if reason != "shutdown" and self._loop is not None:  # close() has its own deadline
            job.add_timer(self._loop.call_later(self.stop_grace, self._kill_stuck, slot, job))

    def _on_timeout(self, slot: S, job: PoolJob) -> None:
        if slot.job is job and not job.done and job.stop_reason is None:
            self.log.warning("job %s exceeded its %g s limit; stopping it", job.job_id, job.timeout)
            self._stop_running(slot, "timeout")

    def _kill_stuck(self, slot: S, job: PoolJob) -> None:
        if slot.job is job and not job.done:
            self.log.warning(
                "%s did not stop job %s within %g s; killing and replacing it", slot.where, job.job_id, self.stop_grace
            )
            self._kill(slot)  # the worker's death then ends the job as it was told

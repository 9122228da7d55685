"""``ProcessPoolBackend``: runs style jobs in worker processes and gives asyncio an interface to them.

Each worker is a ``spawn``ed process that loads VGG19 once and then runs one job at a time (on GPUs one worker per
device, pinned to it). Jobs wait in a bounded FIFO queue and go to idle workers. Each worker has a reader thread
that blocks on the worker's result pipe and hands messages to the event loop with ``call_soon_threadsafe``: no
polling, and the loop never blocks on a pipe. Jobs are sent from a small thread pool for the same reason.

Environment variables (read by ``ProcessPoolBackend.from_env``; keyword overrides win):

==========================  ===============================================================================
``NST_WORKERS``             worker processes, or ``auto`` (the default): one per visible CUDA device, else 1
``NST_DEVICE``              ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` (default ``auto``: CUDA when available).
                            The constructor also falls back to it when ``device`` is None.
``NST_WEIGHTS``             ``imagenet`` | ``random`` (tests only) | path to a state_dict (default ``imagenet``).
                            The workers' engine also falls back to it when ``weights`` is None.
``NST_JOB_TIMEOUT``         seconds one job may run before it is stopped (default 600)
``NST_MAX_QUEUE``           jobs that may wait for a worker before submit raises QueueFullError (default 32)
``NST_PROGRESS_INTERVAL``   at most one progress event per job per this many seconds (default 0.5)
``NST_THREADS_PER_WORKER``  torch CPU threads per worker (default: usable cores divided among the workers)
``NST_START_TIMEOUT``       seconds ``start()`` waits for the workers to load the weights (default 180)
``NST_STOP_GRACE``          seconds a cancelled or timed-out job has to stop before its worker is killed and
                            replaced (default 10)
==========================  ===============================================================================
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

from PIL import Image

from nst_engine.errors import (
    Cancelled,
    JobFailedError,
    NSTError,
    PoolClosedError,
    PoolError,
    WorkerCrashedError,
)
from nst_engine.pool.config import (
    backend_settings_from_env,
    check_backend_settings,
    default_threads,
    env_int,
    plan_devices,
)
from nst_engine.pool.job import Assignment, JobQueue, PoolJob, StopReason
from nst_engine.pool.prepare import shrink_request_images
from nst_engine.pool.protocol import StyleRequest, WorkerInfo, WorkerState
from nst_engine.pool.wire import (
    Done,
    ErrorInfo,
    Failed,
    JobSpec,
    LoadFailed,
    Progress,
    RawImage,
    Ready,
    decode_load_error,
)
from nst_engine.pool.worker import worker_main
from nst_engine.types import ProgressEvent, StyleResult

log = logging.getLogger("nst_engine.pool")

RESPAWN_ATTEMPTS = 3
_spawn_lock = threading.Lock()  # multiprocessing's bookkeeping of children is not meant for concurrent starts


@dataclass(frozen=True)
class _ProgressIn:
    seq: int
    event: ProgressEvent


@dataclass(frozen=True)
class _DoneIn:
    seq: int
    result: StyleResult
    steps: int


def _inflate(message: Any) -> Any:
    """Turn raw images back into PIL images (on the reader thread, so the event loop does not pay for it)."""
    if isinstance(message, Progress):
        event = message.event
        if message.preview is not None:
            event = _with_preview(event, message.preview.to_pil())
        return _ProgressIn(message.seq, event)
    if isinstance(message, Done):
        return _DoneIn(
            message.seq, StyleResult(message.image.to_pil(), message.summary, message.history), message.steps
        )
    return message


def _with_preview(event: ProgressEvent, preview: Image.Image) -> ProgressEvent:
    import dataclasses

    return dataclasses.replace(event, preview=preview)


def describe_exit(exitcode: int | None) -> str:
    """``exitcode`` of a dead process in words."""
    if exitcode is None:
        return "exited with an unknown status"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (often the system's out-of-memory killer)" if -exitcode == signal.SIGKILL else ""
        return f"was killed by {name}{hint}"
    return f"exited with code {exitcode}"


class _Worker:
    """One worker process (a slot gets a new ``_Worker`` when its process is replaced)."""

    def __init__(self, pool: ProcessPoolBackend, index: int, device: str) -> None:
        ctx = pool._ctx
        self.pool = pool
        self.index = index
        self.device = device
        child_jobs, self.jobs = ctx.Pipe(duplex=False)
        self.results, child_results = ctx.Pipe(duplex=False)
        self._child_ends = (child_jobs, child_results)
        self.cancel_seq = ctx.Value("q", 0, lock=False)  # one aligned int64: reads and writes are atomic
        self.process = ctx.Process(
            target=worker_main,
            name=f"nst-worker-{index}",
            daemon=True,  # the interpreter's exit handler terminates daemonic children if close() was skipped
            args=(
                index,
                device,
                pool.weights,
                pool.threads_per_worker,
                pool.progress_interval,
                child_jobs,
                child_results,
                self.cancel_seq,
                os.getpid(),
            ),
        )
        loop = pool._loop
        assert loop is not None
        self.loop = loop
        self.state: WorkerState = "starting"
        self.pid: int | None = None
        self.current: Assignment | None = None  # the job it runs, with the pool's bookkeeping of it
        self.seq = 0
        self.jobs_done = 0
        self.exitcode: int | None = None
        self.ready: asyncio.Future[Ready] = loop.create_future()
        self.exited: asyncio.Future[int | None] = loop.create_future()
        self.launched: asyncio.Future[None] | None = None
        self.sending: asyncio.Future[None] | None = None
        self.reader: threading.Thread | None = None
        # Nobody may wait on these; mark their exceptions as seen so asyncio does not log them.
        self.ready.add_done_callback(lambda f: f.cancelled() or f.exception())

    def launch(self) -> None:
        """Start the process and its reader thread (blocking: runs in a helper thread)."""
        with _spawn_lock:
            self.process.start()
        self.pid = self.process.pid
        for end in self._child_ends:  # the child holds its own copies; ours would hide its death (no EOF)
            end.close()
        self.reader = threading.Thread(target=self._read, name=f"nst-pool-reader-{self.index}", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                message = self.results.recv()
            except (EOFError, OSError):
                break
            except Exception:  # a message that cannot be unpickled: log it and keep the pipe going
                log.exception("worker %d sent a message that could not be read", self.index)
                continue
            try:
                message = _inflate(message)
            except Exception:
                log.exception("worker %d sent a malformed message", self.index)
                continue
            self._post(self.pool._on_message, self, message)
        # The worker closed its end: it is exiting (or was killed). Reap it to learn how it ended.
        self.process.join(timeout=5)
        if self.process.exitcode is None:
            self.process.kill()
            self.process.join(timeout=5)
        for _ in range(50):  # another thread (multiprocessing.active_children) may be reaping it right now
            if self.process.exitcode is not None:
                break
            time.sleep(0.01)
        self._post(self.pool._on_exit, self, self.process.exitcode)

    def _post(self, callback: Any, *args: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the event loop is closed: nobody is listening any more
            pass

    def signal(self, sig: int) -> None:
        """Send ``sig`` unless the process has already been reaped (so a reused pid is never hit)."""
        if self.pid is not None and self.process.exitcode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def close_jobs_pipe(self) -> None:
        if not self.jobs.closed:
            self.jobs.close()

    def info(self, restarts: int) -> WorkerInfo:
        job_id = self.current.job.job_id if self.current is not None else None
        return WorkerInfo(self.index, self.device, self.pid, self.state, job_id, self.jobs_done, restarts)


def _send_job(worker: _Worker, assignment: Assignment) -> None:
    """Serialise a job and write it to the worker's pipe (runs in a sender thread)."""
    request = assignment.job.request
    content, styles = shrink_request_images(request.content, request.styles, request.options)
    spec = JobSpec(
        assignment.seq,
        request.job_id,
        RawImage.from_pil(content),
        tuple(RawImage.from_pil(s) for s in styles),
        request.options,
    )
    worker.jobs.send(spec)


class ProcessPoolBackend:
    """Runs style jobs in worker processes (implements ``StyleBackend``).

    Use ``async with ProcessPoolBackend(...) as pool`` or ``await pool.start()`` / ``await pool.close()``; submit and
    cancel from the event loop's thread. ``ProcessPoolBackend.from_env()`` reads the NST_* variables (module docs).

    workers: processes (None or ``auto``: one per visible CUDA device, else 1). device: auto | cpu | cuda | cuda:N (None:
    NST_DEVICE, else auto). weights: imagenet | random | a state_dict path (None: the engine's default, NST_WEIGHTS).
    job_timeout: default seconds a job may run (a request's ``timeout`` wins). max_queue: jobs that may wait.
    progress_interval: at most one progress event per job per this many seconds (the final one always comes).
    threads_per_worker: torch CPU threads in each worker (None: the usable cores divided among the workers).
    start_timeout: seconds to wait for the weights to load. stop_grace: seconds a cancelled or timed-out job has to
    stop before its worker is killed and replaced.
    """

    def __init__(
        self,
        *,
        workers: int | Literal["auto"] | None = None,
        device: str | None = None,
        weights: str | None = None,
        job_timeout: float = 600.0,
        max_queue: int = 32,
        progress_interval: float = 0.5,
        threads_per_worker: int | None = None,
        start_timeout: float = 180.0,
        stop_grace: float = 10.0,
    ) -> None:
        check_backend_settings(
            positive_seconds={"job_timeout": job_timeout, "start_timeout": start_timeout},
            stop_grace=stop_grace,
            progress_interval=progress_interval,
            max_queue=max_queue,
        )
        if threads_per_worker is not None and threads_per_worker < 1:
            raise ValueError(f"threads_per_worker must be at least 1, got {threads_per_worker}")
        self.devices = plan_devices(device, None if workers == "auto" else workers)
        self.weights = weights
        self.job_timeout = float(job_timeout)
        self.max_queue = max_queue
        self.progress_interval = float(progress_interval)
        self.threads_per_worker = threads_per_worker or default_threads(len(self.devices))
        self.start_timeout = float(start_timeout)
        self.stop_grace = float(stop_grace)
        self._ctx = mp.get_context("spawn")  # CUDA cannot be initialised in a forked child
        self._loop: asyncio.AbstractEventLoop | None = None
        self._workers: list[_Worker] = []
        self._restarts = [0] * len(self.devices)
        self._live: set[_Worker] = set()  # started and not yet seen exiting
        self._queue = JobQueue(max_queue)
        self._respawns: set[asyncio.Task[None]] = set()
        self._sender: ThreadPoolExecutor | None = None
        self._started = False
        self._closing = False
        self._closed = asyncio.Event()
        self._broken: str | None = None
        self._changed = asyncio.Event()  # replaced on every worker state change; see _notify

    @classmethod
    def from_env(cls, **overrides: Any) -> ProcessPoolBackend:
        """A pool configured from the NST_* environment variables (see the module docstring)."""
        settings = backend_settings_from_env({"threads_per_worker": env_int("NST_THREADS_PER_WORKER")}, overrides)
        return cls(**settings)

    # StyleBackend ------------------------------------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        return len(self.devices)

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def running(self) -> int:
        return sum(1 for w in self._workers if w.current is not None)

    @property
    def workers(self) -> list[WorkerInfo]:
        return [w.info(self._restarts[w.index]) for w in self._workers]

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until every worker slot has a loaded worker (after ``start`` or after a crashed one's replacement).

        Raises TimeoutError after ``timeout`` seconds, PoolError when a slot had to be given up.
        """
        async with asyncio.timeout(timeout):
            while True:
                if self._broken is not None or any(w.state == "broken" for w in self._workers):
                    raise PoolError(self._broken or "a style worker could not be restarted")
                if self._closing:
                    raise PoolClosedError("the style pool is closed")
                if self._started and all(w.state in ("idle", "busy") for w in self._workers):
                    return
                await self._changed.wait()

    def _notify(self) -> None:
        """Wake ``wait_ready`` callers: a worker's state changed."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def start(self) -> None:
        """Start the workers and wait until every one has loaded the weights (bounded by ``start_timeout``)."""
        if self._closing:
            raise PoolClosedError("the style pool is closed; make a new one")
        if self._started:
            return
        self._loop = asyncio.get_running_loop()
        self._started = True
        self._sender = ThreadPoolExecutor(max_workers=len(self.devices), thread_name_prefix="nst-pool-send")
        workers = [self._new_worker(index) for index in range(len(self.devices))]
        try:
            await asyncio.gather(*(w.launched for w in workers if w.launched is not None))
            await asyncio.wait_for(asyncio.gather(*(asyncio.shield(w.ready) for w in workers)), self.start_timeout)
        except TimeoutError:
            await self.close(timeout=5)
            raise PoolError(
                f"the style workers did not finish loading the VGG19 weights within {self.start_timeout:g} s "
                "(NST_START_TIMEOUT); the machine may be overloaded"
            ) from None
        except BaseException:
            await self.close(timeout=5)
            raise
        log.info(
            "pool ready: %d worker(s) on %s, %d thread(s) each, weights=%s",
            len(workers),
            ", ".join(self.devices),
            self.threads_per_worker,
            self.weights or os.environ.get("NST_WEIGHTS") or "imagenet",
        )

    def submit(self, request: StyleRequest) -> PoolJob:
        """Queue a job; raises QueueFullError, PoolClosedError, or OptionsError for an invalid request."""
        if self._closing:
            raise PoolClosedError("the style service is shutting down and accepts no new jobs")
        if self._broken is not None:
            raise PoolClosedError(self._broken)
        if not self._started:
            raise PoolClosedError("the style pool has not been started; await pool.start() first")
        job = self._queue.admit(
            request,
            default_timeout=self.job_timeout,
            idle_worker=any(w.state == "idle" for w in self._workers),
            cancel=self._cancel,
        )
        self._dispatch()
        return job

    async def close(self, timeout: float = 10.0) -> None:
        """Stop accepting, cancel queued and running jobs, and leave no worker process behind.

        Running jobs get a cooperative stop first; workers still alive near the deadline are terminated, then
        killed, so the call returns in about ``timeout`` seconds (at most ~2 s more if a kill is needed).
        """
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        self._notify()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)

        def left(share: float = 1.0) -> float:
            return max(0.0, (deadline - loop.time()) * share)

        for task in self._respawns:
            task.cancel()
        self._queue.cancel_all("the style service is shutting down; the job never started")
        busy = [w for w in self._workers if w.current is not None and not w.current.job.done]
        running = [w.current.job for w in busy if w.current is not None]
        for worker in busy:
            self._stop_running(worker, "shutdown")
        if running:  # a cooperative stop takes one iteration; give it part of the budget
            await asyncio.wait([asyncio.ensure_future(j.wait_done()) for j in running], timeout=left(0.4))
        launches = [w.launched for w in self._live if w.launched is not None and not w.launched.done()]
        if launches:
            await asyncio.wait(launches, timeout=left(0.5))
        for worker in list(self._live):
            if worker.sending is None or worker.sending.done():  # never close a pipe under a sender thread
                worker.close_jobs_pipe()  # the worker's recv loop ends: it exits by itself
        await self._wait_exits(left(0.7))
        for sig, wait in ((signal.SIGTERM, max(0.5, left(0.8))), (signal.SIGKILL, 2.0)):
            if not self._live:
                break
            for worker in self._live:
                log.warning("worker %d (pid %s) did not exit in time; sending %s", worker.index, worker.pid, sig.name)
                worker.signal(sig)
            await self._wait_exits(wait)
        for worker in self._workers:  # anything still unresolved (a worker that could not even be killed)
            if worker.current is not None:
                worker.current.finish("cancelled", error=Cancelled("the style service shut down"))
        readers = [w.reader for w in self._workers if w.reader is not None]
        await asyncio.to_thread(_join_threads, readers, 2.0)
        for worker in self._workers:
            worker.close_jobs_pipe()
            worker.results.close()
        if self._sender is not None:
            self._sender.shutdown(wait=False, cancel_futures=True)
        if self._live:
            log.error("pool closed with %d worker(s) still alive: %s", len(self._live), [w.pid for w in self._live])
        else:
            log.info("pool closed")
        self._closed.set()

    async def __aenter__(self) -> ProcessPoolBackend:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # Internals: all run on the event loop's thread ------------------------------------------------------------

    def _new_worker(self, index: int) -> _Worker:
        worker = _Worker(self, index, self.devices[index])
        if index < len(self._workers):
            self._workers[index] = worker
        else:
            self._workers.append(worker)
        self._live.add(worker)
        self._notify()
        worker.launched = asyncio.ensure_future(asyncio.to_thread(worker.launch))
        worker.launched.add_done_callback(functools.partial(self._on_launched, worker))
        return worker

    def _on_launched(self, worker: _Worker, future: asyncio.Future[None]) -> None:
        if future.cancelled() or future.exception() is None:
            return
        # The process could not even be started (e.g. out of file descriptors).
        error = PoolError(f"worker {worker.index} could not be started: {future.exception()}")
        if not worker.ready.done():
            worker.ready.set_exception(error)
        self._on_exit(worker, None)

    async def _wait_exits(self, timeout: float) -> None:
        pending = [w.exited for w in self._live]
        if pending and timeout > 0:
            await asyncio.wait(pending, timeout=timeout)

    def _dispatch(self) -> None:
        if self._closing:
            return
        while self._queue:
            worker = next((w for w in self._workers if w.state == "idle"), None)
            if worker is None:
                return
            self._run(worker, self._queue.popleft())

    def _run(self, worker: _Worker, job: PoolJob) -> None:
        assert self._loop is not None and self._sender is not None
        worker.seq += 1
        worker.state = "busy"
        assignment = Assignment(job, worker.seq)
        worker.current = assignment
        job.mark_running(f"worker {worker.index} (pid {worker.pid})", worker.pid)
        assignment.timers.append(self._loop.call_later(job.timeout, self._on_timeout, worker, assignment))
        sending = self._loop.run_in_executor(self._sender, _send_job, worker, assignment)
        worker.sending = sending
        sending.add_done_callback(lambda f: self._on_sent(worker, assignment, f))

    def _on_sent(self, worker: _Worker, assignment: Assignment, future: asyncio.Future[None]) -> None:
        if future.cancelled():
            exc: BaseException | None = Cancelled("the style service is shutting down")
        else:
            exc = future.exception()
        if exc is None or isinstance(exc, OSError) or self._closing or worker.current is not assignment:
            return  # sent; or the worker is dying, which its reader thread reports; or nobody waits any more
        log.error("could not send job %s to worker %d", assignment.job.job_id, worker.index, exc_info=exc)
        self._release(worker)
        error = exc if isinstance(exc, NSTError) else JobFailedError(f"the job could not be handed to a worker ({exc})")
        assignment.finish("failed", error=error)
        self._dispatch()

    def _release(self, worker: _Worker) -> None:
        """The worker's job has ended: it is free for the next one."""
        worker.current = None
        if worker.state == "busy":
            worker.state = "idle"

    def _cancel(self, job: PoolJob) -> None:
        if job.done or self._queue.cancel_waiting(job):
            return
        worker = next((w for w in self._workers if w.current is not None and w.current.job is job), None)
        if worker is not None:
            self._stop_running(worker, "cancel")

    def _stop_running(self, worker: _Worker, reason: StopReason) -> None:
        """Ask the worker to stop its job (it polls the flag every iteration); kill it if it does not, in time."""
        assignment = worker.current
        if assignment is None or not assignment.request_stop(reason):
            return
        worker.cancel_seq.value = assignment.seq
        if reason != "shutdown" and self._loop is not None:  # close() has its own deadline
            assignment.timers.append(self._loop.call_later(self.stop_grace, self._kill_stuck, worker, assignment))

    def _on_timeout(self, worker: _Worker, assignment: Assignment) -> None:
        if worker.current is assignment and not assignment.job.done and assignment.stop_reason is None:
            log.warning("job %s exceeded its %g s limit; stopping it", assignment.job.job_id, assignment.job.timeout)
            self._stop_running(worker, "timeout")

    def _kill_stuck(self, worker: _Worker, assignment: Assignment) -> None:
        if worker.current is assignment and not assignment.job.done:
            log.warning(
                "worker %d (pid %s) did not stop job %s within %g s; killing and replacing it",
                worker.index,
                worker.pid,
                assignment.job.job_id,
                self.stop_grace,
            )
            worker.signal(signal.SIGKILL)

    def _on_message(self, worker: _Worker, message: Any) -> None:
        try:
            self._handle(worker, message)
        except Exception:  # a bug here must not leave a job waiting forever
            log.exception("pool failed to handle %s from worker %d", type(message).__name__, worker.index)
            assignment = worker.current
            if assignment is not None and isinstance(message, _DoneIn | Failed):
                self._release(worker)
                assignment.finish("failed", error=JobFailedError("the pool could not read the job's outcome"))
                self._dispatch()

    def _handle(self, worker: _Worker, message: Any) -> None:
        if isinstance(message, _ProgressIn):
            assignment = worker.current
            if assignment is not None and assignment.seq == message.seq:
                assignment.job.push_event(message.event)
        elif isinstance(message, _DoneIn | Failed):
            self._on_job_end(worker, message)
        elif isinstance(message, Ready):
            worker.pid = message.pid
            if worker.state == "starting":
                worker.state = "idle"
            if not worker.ready.done():
                worker.ready.set_result(message)
            log.info(
                "worker %d ready: pid %d on %s, weights loaded in %.1f s",
                worker.index,
                message.pid,
                message.device,
                message.load_seconds,
            )
            self._notify()
            self._dispatch()
        elif isinstance(message, LoadFailed):
            if not worker.ready.done():
                worker.ready.set_exception(self._load_error(worker, message.error))

    def _on_job_end(self, worker: _Worker, message: _DoneIn | Failed) -> None:
        assignment = worker.current
        if assignment is None or assignment.seq != message.seq:
            log.warning("worker %d reported on job seq %d it is not running; ignored", worker.index, message.seq)
            return
        self._release(worker)
        worker.jobs_done += 1
        assignment.job.steps = message.steps
        outcome = message.result if isinstance(message, _DoneIn) else message.error
        assignment.finish_reported(outcome, runner="worker", logger=log)
        self._dispatch()

    def _on_exit(self, worker: _Worker, exitcode: int | None) -> None:
        if worker.exited.done():
            return
        worker.exitcode = exitcode
        was_ready = worker.ready.done() and not worker.ready.cancelled() and worker.ready.exception() is None
        worker.state = "dead"
        self._live.discard(worker)
        how = describe_exit(exitcode)
        if not worker.ready.done():
            worker.ready.set_exception(
                WorkerCrashedError(f"worker {worker.index} (pid {worker.pid}) {how} while loading the weights")
            )
        assignment = worker.current
        if assignment is not None:
            worker.current = None
            assignment.finish_lost(
                WorkerCrashedError(
                    f"the worker process running this job {how} (pid {worker.pid}); the job is lost and the "
                    "worker is being replaced: try again, perhaps at a smaller size"
                )
            )
        if not self._closing:
            (log.warning if was_ready else log.info)("worker %d (pid %s) %s", worker.index, worker.pid, how)
        worker.exited.set_result(exitcode)
        self._notify()
        if was_ready and not self._closing and self._workers[worker.index] is worker:
            task = asyncio.ensure_future(self._respawn(worker.index))
            self._respawns.add(task)
            task.add_done_callback(self._respawns.discard)

    async def _respawn(self, index: int) -> None:
        """Replace a dead worker; after RESPAWN_ATTEMPTS failures in a row the slot is given up."""
        for attempt in range(1, RESPAWN_ATTEMPTS + 1):
            self._restarts[index] += 1
            worker = self._new_worker(index)
            try:
                await asyncio.wait_for(asyncio.shield(worker.ready), self.start_timeout)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("restarting worker %d failed (attempt %d): %s", index, attempt, exc)
                worker.signal(signal.SIGKILL)
                await asyncio.sleep(min(30.0, 2.0**attempt))
        self._workers[index].state = "broken"
        log.error("worker %d could not be restarted %d times; giving it up", index, RESPAWN_ATTEMPTS)
        self._notify()
        if all(w.state == "broken" for w in self._workers):
            self._broken = "no style worker is running (they failed to restart); the bot needs attention"
            while self._queue:
                self._queue.popleft().finish("failed", error=WorkerCrashedError(self._broken))

    def _load_error(self, worker: _Worker, info: ErrorInfo) -> Exception:
        return decode_load_error(f"worker {worker.index} ({worker.device}) could not load the VGG19 weights", info, log)


def _join_threads(threads: list[threading.Thread], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))

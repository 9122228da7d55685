"""``ProcessPoolBackend``: runs style jobs in worker processes on this machine (the transport of ``BackendCore``).

Each worker is a ``spawn``ed process that loads VGG19 once and then runs one job at a time (on GPUs one worker per
device, pinned to it). Each worker has a reader thread that blocks on the worker's result pipe and hands messages to
the event loop with ``call_soon_threadsafe``: no polling, and the loop never blocks on a pipe. Jobs are sent from a
small thread pool for the same reason. A job is stopped through a shared value the worker checks every iteration; a
worker that ignores it is killed and replaced. Settings: ``nst_engine.pool.settings``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing as mp
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from nst_engine.errors import Cancelled, JobFailedError, PoolError, WorkerCrashedError
from nst_engine.pool.core import RESPAWN_ATTEMPTS, BackendCore
from nst_engine.pool.devices import default_threads, plan_devices
from nst_engine.pool.job import PoolJob
from nst_engine.pool.settings import or_setting
from nst_engine.pool.wire import Failed, LoadFailed, WeightsLoaded, decode_load_error
from nst_engine.pool.worker_process import DoneIn, ProgressIn, WorkerProcess, describe_exit, send_job

log = logging.getLogger("nst_engine.pool")



class ProcessPoolBackend(BackendCore[WorkerProcess]):
    """Runs style jobs in worker processes (implements ``StyleBackend``).

    Use ``async with ProcessPoolBackend(...) as pool`` or ``await pool.start()`` / ``await pool.close()``; submit and
    cancel from the event loop's thread. ``ProcessPoolBackend.from_settings(load_pool_settings())`` (or
    ``from_env()``) takes the NST_* settings.

    workers: processes (None or ``auto``: one per visible CUDA device, else 1). device: auto | cpu | cuda | cuda:N
    (None: the NST_DEVICE setting). weights: imagenet | random | a state_dict path (None: the NST_WEIGHTS setting).
    threads_per_worker: torch CPU threads in each worker (None: the usable cores divided among the workers). The
    others as for ``BackendCore``.
    """

    kind = "process"

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
        super().__init__(
            weights=weights,
            job_timeout=job_timeout,
            max_queue=max_queue,
            progress_interval=progress_interval,
            start_timeout=start_timeout,
            stop_grace=stop_grace,
        )
        if threads_per_worker is not None and threads_per_worker < 1:
            raise ValueError(f"threads_per_worker must be at least 1, got {threads_per_worker}")
        spec = or_setting(device, "nst_device") or "auto"
        self.devices = plan_devices(spec, None if workers == "auto" else workers)
        self.threads_per_worker = threads_per_worker or default_threads(len(self.devices))
        self._ctx = mp.get_context("spawn")  # CUDA cannot be initialised in a forked child
        self._live: set[WorkerProcess] = set()  # started and not yet seen exiting
        self._respawns: set[asyncio.Task[None]] = set()
        self._sender: ThreadPoolExecutor | None = None

    @property
    def capacity(self) -> int:
        return len(self.devices)

    async def start(self) -> None:
        """Start the workers and wait until every one has loaded the weights (bounded by ``start_timeout``)."""
        if not self._begin_start():
            return
        self._sender = ThreadPoolExecutor(max_workers=len(self.devices), thread_name_prefix="nst-pool-send")
        workers = [self._new_worker(index, 0) for index in range(len(self.devices))]
        try:
            await asyncio.gather(*(w.launched for w in workers if w.launched is not None))
            await asyncio.wait_for(asyncio.gather(*(asyncio.shield(w.loaded) for w in workers)), self.start_timeout)
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
            self.weights,
        )

    # Transport ---------------------------------------------------------------------------------------------------

    def _new_worker(self, index: int, restarts: int) -> WorkerProcess:
        assert self._loop is not None
        worker = WorkerProcess(
            self._ctx,
            self._loop,
            index,
            self.devices[index],
            restarts,
            weights=self.weights,
            threads=self.threads_per_worker,
            progress_interval=self.progress_interval,
            on_message=self._on_message,
            on_exit=self._on_exit,
        )
        if index < len(self._slots):
            self._slots[index] = worker
        else:
            self._slots.append(worker)
        self._live.add(worker)
        self._notify()
        worker.launched = asyncio.ensure_future(asyncio.to_thread(worker.launch))
        worker.launched.add_done_callback(functools.partial(self._on_launched, worker))
        return worker

    def _on_launched(self, worker: WorkerProcess, future: asyncio.Future[None]) -> None:
        if future.cancelled() or future.exception() is None:
            return
        # The process could not even be started (e.g. out of file descriptors).
        error = PoolError(f"worker {worker.index} could not be started: {future.exception()}")
        if not worker.loaded.done():
            worker.loaded.set_exception(error)
        self._on_exit(worker, None)

    def _send(self, slot: WorkerProcess, job: PoolJob) -> None:
        assert self._loop is not None and self._sender is not None
        sending = self._loop.run_in_executor(self._sender, send_job, slot, job)
        slot.sending = sending
        sending.add_done_callback(lambda f: self._on_sent(slot, job, f))

    def _on_sent(self, worker: WorkerProcess, job: PoolJob, future: asyncio.Future[None]) -> None:
        exc = Cancelled("the style service is shutting down") if future.cancelled() else future.exception()
        if exc is not None and not isinstance(exc, OSError):  # OSError: the worker is dying; its reader reports it
            self._job_unsent(worker, job, exc)

    def _signal_stop(self, slot: WorkerProcess, seq: int) -> None:
        slot.cancel_seq.value = seq

    def _kill(self, slot: WorkerProcess) -> None:
        slot.signal(signal.SIGKILL)

    def _on_message(self, worker: WorkerProcess, message: Any) -> None:
        try:
            self._handle(worker, message)
        except Exception:  # a bug here must not leave a job waiting forever
            log.exception("pool failed to handle %s from worker %d", type(message).__name__, worker.index)
            job = worker.job
            if job is not None and isinstance(message, DoneIn | Failed) and self._release(worker, job):
                job.finish("failed", error=JobFailedError("the pool could not read the job's outcome"))
                self._dispatch()

    def _handle(self, worker: WorkerProcess, message: Any) -> None:
        job = worker.job
        if isinstance(message, ProgressIn):
            if job is not None and job.seq == message.seq:
                job.push_event(message.event)
        elif isinstance(message, DoneIn | Failed):
            if job is None or job.seq != message.seq:
                log.warning("worker %d reported on job seq %d it is not running; ignored", worker.index, message.seq)
                return
            outcome = message.result if isinstance(message, DoneIn) else message.error
            self._job_reported(worker, job, outcome, message.steps)
        elif isinstance(message, WeightsLoaded):
            worker.process_id = message.pid
            if worker.state == "starting":
                worker.state = "idle"
            if not worker.loaded.done():
                worker.loaded.set_result(message)
            log.info(
                "worker %d ready: pid %d on %s, weights loaded in %.1f s",
                worker.index,
                message.pid,
                message.device,
                message.load_seconds,
            )
            self._notify()
            self._dispatch()
        elif isinstance(message, LoadFailed) and not worker.loaded.done():
            prefix = f"worker {worker.index} ({worker.device}) could not load the VGG19 weights"
            worker.loaded.set_exception(decode_load_error(prefix, message.error, log))

    def _on_exit(self, worker: WorkerProcess, exitcode: int | None) -> None:
        if worker.exited.done():
            return
        worker.exitcode = exitcode
        self._live.discard(worker)
        how = describe_exit(exitcode)
        if not worker.loaded.done():
            worker.loaded.set_exception(
                WorkerCrashedError(f"worker {worker.index} (pid {worker.pid}) {how} while loading the weights")
            )
        if not self._closing:
            (log.warning if worker.has_loaded else log.info)("worker %d (pid %s) %s", worker.index, worker.pid, how)
        worker.exited.set_result(exitcode)
        self._slot_died(
            worker,
            f"the worker process running this job {how} (pid {worker.pid}); the job is lost and the worker is being "
            "replaced: try again, perhaps at a smaller size",
        )

    def _replace(self, slot: WorkerProcess) -> None:
        if slot.has_loaded and self._slots[slot.index] is slot:
            task = asyncio.ensure_future(self._respawn(slot.index))
            self._respawns.add(task)
            task.add_done_callback(self._respawns.discard)

    async def _respawn(self, index: int) -> None:
        """Replace a dead worker; after RESPAWN_ATTEMPTS failures in a row the slot is given up."""
        for attempt in range(1, RESPAWN_ATTEMPTS + 1):
            worker = self._new_worker(index, self._slots[index].restarts + 1)
            try:
                await asyncio.wait_for(asyncio.shield(worker.loaded), self.start_timeout)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("restarting worker %d failed (attempt %d): %s", index, attempt, exc)
                worker.signal(signal.SIGKILL)
                await asyncio.sleep(min(30.0, 2.0**attempt))
        self._slots[index].state = "broken"
        log.error("worker %d could not be restarted %d times; giving it up", index, RESPAWN_ATTEMPTS)
        self._notify()
        if all(w.state == "broken" for w in self._slots):
            self._broken = "no style worker is running (they failed to restart); the bot needs attention"
            while self._queue:
                self._queue.popleft().finish("failed", error=WorkerCrashedError(self._broken))

    def _begin_close(self) -> None:
        for task in self._respawns:
            task.cancel()

    async def _shut_down(self, left: Callable[[float], float]) -> None:
        """Close the job pipes (workers exit by themselves), then SIGTERM, then SIGKILL what is left."""
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
        readers = [w.reader for w in self._slots if w.reader is not None]
        await asyncio.to_thread(_join_threads, readers, 2.0)
        for worker in self._slots:
            worker.close_jobs_pipe()
            worker.results.close()
        if self._sender is not None:
            self._sender.shutdown(wait=False, cancel_futures=True)
        if self._live:
            log.error("pool closed with %d worker(s) still alive: %s", len(self._live), [w.pid for w in self._live])
        else:
            log.info("pool closed")

    async def _wait_exits(self, timeout: float) -> None:
        pending = [w.exited for w in self._live]
        if pending and timeout > 0:
            await asyncio.wait(pending, timeout=timeout)


def _join_threads(threads: list[threading.Thread], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))

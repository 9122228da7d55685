"""The pool's side of one worker process: its pipes, its reader thread, its stop flag, and how it ended.

The reader thread blocks on the worker's result pipe and posts each message (images already turned back into PIL)
to the event loop with ``call_soon_threadsafe``; when the pipe ends it reaps the process and posts its exit code.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.context import SpawnContext
from typing import Any

from nst_engine.pool.core import Slot
from nst_engine.pool.job import PoolJob
from nst_engine.pool.prepare import pack_request
from nst_engine.pool.wire import Done, Progress, RawImage, WeightsLoaded
from nst_engine.pool.worker import worker_main
from nst_engine.types import ProgressEvent, StyleResult

log = logging.getLogger("nst_engine.pool")

_spawn_lock = threading.Lock()  # multiprocessing's bookkeeping of children is not meant for concurrent starts


@dataclass(frozen=True)
class ProgressIn:
    """A worker's ``Progress`` message with its preview back in PIL form."""

    seq: int
    event: ProgressEvent


@dataclass(frozen=True)
class DoneIn:
    """A worker's ``Done`` message with its picture back in PIL form."""

    seq: int
    result: StyleResult
    steps: int


def _inflate(message: Any) -> Any:
    """Turn raw images back into PIL images (on the reader thread, so the event loop does not pay for it)."""
    if isinstance(message, Progress):
        event = message.event
        if message.preview is not None:
            event = dataclasses.replace(event, preview=message.preview.to_pil())
        return ProgressIn(message.seq, event)
    if isinstance(message, Done):
        return DoneIn(message.seq, message.unpack(), message.steps)
    return message


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


class WorkerProcess(Slot):
    """One worker process in its slot (a slot gets a new ``WorkerProcess`` when its process is replaced).

    ``on_message`` and ``on_exit`` run on ``loop``'s thread with this worker and the message, or the exit code.
    """

    def __init__(
        self,
        ctx: SpawnContext,
        loop: asyncio.AbstractEventLoop,
        index: int,
        device: str,
        restarts: int,
        *,
        weights: str,
        threads: int,
        progress_interval: float,
        on_message: Callable[[WorkerProcess, Any], None],
        on_exit: Callable[[WorkerProcess, int | None], None],
    ) -> None:
        super().__init__(index, device, restarts)
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
                weights,
                threads,
                progress_interval,
                child_jobs,
                child_results,
                self.cancel_seq,
                os.getpid(),
            ),
        )
        self.loop = loop
        self.on_message = on_message
        self.on_exit = on_exit
        self.process_id: int | None = None
        self.exitcode: int | None = None
        self.loaded: asyncio.Future[WeightsLoaded] = loop.create_future()
        self.exited: asyncio.Future[int | None] = loop.create_future()
        self.launched: asyncio.Future[None] | None = None
        self.sending: asyncio.Future[None] | None = None
        self.reader: threading.Thread | None = None
        # Nobody may wait on these; mark their exceptions as seen so asyncio does not log them.
        self.loaded.add_done_callback(lambda f: f.cancelled() or f.exception())

    @property
    def pid(self) -> int | None:
        return self.process_id

    @property
    def where(self) -> str:
        return f"worker {self.index} (pid {self.process_id})"

    @property
    def has_loaded(self) -> bool:
        """The weights loaded (whatever happened since)."""
        return self.loaded.done() and not self.loaded.cancelled() and self.loaded.exception() is None

    def launch(self) -> None:
        """Start the process and its reader thread (blocking: runs in a helper thread)."""
        with _spawn_lock:
            self.process.start()
        self.process_id = self.process.pid
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
            self._post(self.on_message, self, message)
        # The worker closed its end: it is exiting (or was killed). Reap it to learn how it ended.
        self.process.join(timeout=5)
        if self.process.exitcode is None:
            self.process.kill()
            self.process.join(timeout=5)
        for _ in range(50):  # another thread (multiprocessing.active_children) may be reaping it right now
            if self.process.exitcode is not None:
                break
            time.sleep(0.01)
        self._post(self.on_exit, self, self.process.exitcode)

    def _post(self, callback: Any, *args: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the event loop is closed: nobody is listening any more
            pass

    def signal(self, sig: int) -> None:
        """Send ``sig`` unless the process has already been reaped (so a reused pid is never hit)."""
        if self.process_id is not None and self.process.exitcode is None:
            try:
                os.kill(self.process_id, sig)
            except ProcessLookupError:
                pass

    def close_jobs_pipe(self) -> None:
        if not self.jobs.closed:
            self.jobs.close()


def send_job(worker: WorkerProcess, job: PoolJob) -> None:
    """Serialise a job and write it to the worker's pipe (runs in a sender thread)."""
    worker.jobs.send(pack_request(job.request, job.seq, RawImage.from_pil))

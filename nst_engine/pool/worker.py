"""The worker process: loads VGG19 once, then runs the jobs it receives one at a time.

Started with the ``spawn`` method (CUDA cannot survive a fork). It talks to the pool through two one-way pipes:
``RunMessage`` (or None = exit) in, ``wire`` messages out. A running job stops when the shared ``cancel_seq`` value
equals its ``seq``: the engine polls ``should_stop`` before every iteration, so a cancel takes effect within one.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, NoReturn

from nst_engine.pool.wire import (
    Done,
    Failed,
    ImageCodec,
    LoadFailed,
    PackedClip,
    Progress,
    RawImage,
    RunMessage,
    WeightsLoaded,
    WorkerMessage,
    encode_error,
)
from nst_engine.types import ProgressEvent, StyleResult

OOM_RETRY_FACTOR = 0.7
PARENT_POLL_SECONDS = 0.5


class ProgressThrottle:
    """The engine's ``progress`` callback: forwards at most one event per ``interval`` seconds, and always the last.

    A dropped event's preview is kept and sent with the next forwarded event, so previews are never lost.
    ``steps`` counts every iteration seen, forwarded or not.
    """

    def __init__(
        self,
        seq: int,
        send: Callable[[WorkerMessage], None],
        interval: float,
        clock: Callable[[], float] = time.monotonic,
        codec: ImageCodec = RawImage.from_pil,
    ) -> None:
        self.seq = seq
        self.send = send
        self.interval = interval
        self.clock = clock
        self.codec = codec
        self.steps = 0
        self._last_sent = -float("inf")
        self._pending: ProgressEvent | None = None
        self._pending_preview: Any = None

    def __call__(self, event: ProgressEvent) -> None:
        self.steps += 1
        if event.preview is not None:
            self._pending_preview = event.preview
        now = self.clock()
        if event.step >= event.total_steps or now - self._last_sent >= self.interval:
            self._emit(event, now)
        else:
            self._pending = event

    def flush(self) -> None:
        """Send the last event if it was held back (the job ended between two forwarded events)."""
        if self._pending is not None:
            self._emit(self._pending, self.clock())

    def _emit(self, event: ProgressEvent, now: float) -> None:
        preview = self._pending_preview
        packed = self.codec(preview) if preview is not None else None
        self.send(Progress(self.seq, dataclasses.replace(event, preview=None), packed))
        self._last_sent = now
        self._pending = None
        self._pending_preview = None


class _OOM(Exception):
    """Out of memory after the retry (or with no smaller size to retry at), phrased for the user."""


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA out-of-memory errors (and the CPU allocator's, which read the same to a user)."""
    if isinstance(exc, MemoryError):
        return True
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return False
    oom_type = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    if isinstance(exc, oom_type):
        return True
    text = str(exc)
    # oneDNN (the CPU's convolutions) reports a failed allocation while it sets a call up only as "could not create a
    # primitive"; the engine's convolutions are the same at every size, so there it means memory ran out.
    return isinstance(exc, RuntimeError) and any(
        m in text for m in ("CUDA out of memory", "can't allocate memory", "could not create a primitive")
    )


def _free_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # freeing is best effort; the retry reports its own error
        pass


def _effective_size(spec: RunMessage) -> int:
    from nst_engine.presets import get_preset

    return spec.options.size if spec.options.size is not None else get_preset(spec.options.preset).size


def run_job(
    spec: RunMessage,
    *,
    model: Any,
    send: Callable[[WorkerMessage], None],
    should_stop: Callable[[], bool],
    progress_interval: float,
    stylize: Callable[..., StyleResult] | None = None,
    codec: ImageCodec = RawImage.from_pil,
) -> Done | Failed:
    """Run one job (a picture, or every frame of an animation) and describe its outcome. Out of memory is retried
    once at ~0.7x the size.

    ``codec`` packs the previews and the result for the trip back (raw bytes through a local pipe; PNG over a
    network).
    """
    from nst_engine.engine import stylize as engine_stylize
    from nst_engine.options import MIN_SIDE
    from nst_engine.temporal import stylize_clip

    content: Any = spec.clip.unpack() if spec.clip is not None else spec.content.to_pil()
    run: Callable[..., StyleResult] = stylize or (stylize_clip if spec.clip is not None else engine_stylize)
    throttle = ProgressThrottle(spec.seq, send, progress_interval, codec=codec)
    styles = [s.to_pil() for s in spec.styles]
    device_word = "GPU memory" if str(getattr(model, "device", "cpu")).startswith("cuda") else "memory"
    options, notes = spec.options, []
    try:
        failed_at: int | None = None
        try:
            result = run(content, styles, options=options, model=model, progress=throttle, should_stop=should_stop)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            failed_at = _effective_size(spec)
        # The retry runs after the except block on purpose: inside it the exception's traceback still holds the
        # failed attempt's frames, and with them its tensors, so the retry would run out again.
        if failed_at is not None:
            smaller = round(failed_at * OOM_RETRY_FACTOR)
            _free_memory()
            if smaller < MIN_SIDE:
                raise _OOM(f"the job ran out of {device_word} at {failed_at} px; try fewer style images")
            options = dataclasses.replace(options, size=smaller)
            out_again = False
            try:
                result = run(
                    content, styles, options=options, model=model, progress=throttle, should_stop=should_stop
                )
            except Exception as again:
                if not is_out_of_memory(again):
                    raise
                out_again = True
            if out_again:
                _free_memory()
                raise _OOM(
                    f"the job ran out of {device_word} at {failed_at} px and again at {smaller} px; "
                    "try a smaller size, the 'fast' preset or fewer style images"
                )
            notes.append(f"retried at {smaller} px after running out of {device_word} at {failed_at} px")
        throttle.flush()
        summary = dataclasses.replace(result.summary, notes=(*result.summary.notes, *notes))
        clip = PackedClip.pack(result.clip, codec) if result.clip is not None else None
        return Done(spec.seq, codec(result.image), summary, result.history, throttle.steps, clip)
    except _OOM as exc:
        return Failed(spec.seq, encode_error(exc, oom=True), throttle.steps)
    except Exception as exc:
        return Failed(spec.seq, encode_error(exc), throttle.steps)


def _watch_parent(parent_pid: int) -> None:
    """Exit when the parent is gone (killed without closing the pool): orphans would hold a GPU forever."""

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_SECONDS)
            if os.getppid() != parent_pid:
                os._exit(3)

    threading.Thread(target=watch, name="nst-parent-watch", daemon=True).start()


def worker_main(
    index: int,
    device: str,
    weights: str | None,
    threads: int | None,
    progress_interval: float,
    jobs: Connection,
    results: Connection,
    cancel_seq: Any,
    parent_pid: int,
) -> None:
    """Entry point of a worker process (runs in the child)."""
    # Ctrl-C reaches the whole process group; the parent decides how workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _watch_parent(parent_pid)
    started = time.perf_counter()
    try:
        import torch

        if threads:
            torch.set_num_threads(threads)
            try:
                torch.set_num_interop_threads(1)
            except RuntimeError:  # already fixed by an earlier parallel call; harmless
                pass
        from nst_engine.engine import load_vgg

        if device.startswith("cuda"):
            torch.cuda.set_device(torch.device(device))
        model = load_vgg(weights, device)
    except Exception as exc:
        results.send(LoadFailed(encode_error(exc)))
        _exit(1)
    results.send(WeightsLoaded(os.getpid(), str(model.device), time.perf_counter() - started))

    while True:
        try:
            spec = jobs.recv()
        except (EOFError, OSError):  # the pool closed our pipe: time to go
            _exit(0)
        if spec is None:
            _exit(0)

        def should_stop(seq: int = spec.seq) -> bool:
            return cancel_seq.value == seq

        outcome = run_job(
            spec, model=model, send=results.send, should_stop=should_stop, progress_interval=progress_interval
        )
        try:
            results.send(outcome)
        except (BrokenPipeError, OSError):
            _exit(0)


def _exit(code: int) -> NoReturn:
    """Leave at once: everything was sent (pipes are unbuffered), and tearing torch down takes about a second."""
    os._exit(code)

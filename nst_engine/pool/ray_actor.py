"""The Ray actor behind one worker slot of ``RayBackend``: loads VGG19 once, then runs one job at a time.

This module is imported by the bot's side too (to define the actor class), so torch is imported only inside the
methods, which run in the actor's process on a cluster machine.

The actor is threaded (``max_concurrency`` 3): ``run`` streams a job's wire messages as a generator while ``stop``
(the cancel flag, checked by the engine before every iteration) and ``watch`` (a call that returns only when the
actor dies, so the pool learns of an idle actor's death at once) are served on their own threads.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from nst_engine.pool.versions import Versions, running_versions
from nst_engine.pool.wire import (
    Done,
    ErrorInfo,
    Failed,
    PngImage,
    RunMessage,
    WorkerMessage,
    encode_error,
)

ACTOR_CONCURRENCY = 3  # run + stop + watch


@dataclass(frozen=True)
class ActorPlacement:
    """Where a slot's actor runs, once its weights are loaded."""

    pid: int
    device: str
    load_seconds: float
    node_id: str
    node_ip: str
    hostname: str
    gpu_ids: tuple[str, ...]

    @property
    def node(self) -> str:
        """The machine in words: its address and the start of Ray's node id."""
        return f"{self.node_ip} ({self.hostname}, node {self.node_id[:8]})"


@dataclass(frozen=True)
class ActorLoadFailed:
    """The weights would not load: why, and where (``pid N on <node>``)."""

    error: ErrorInfo
    where: str


class StyleActor:
    """One worker slot on a Ray node (wrapped with ``ray.remote`` by the backend, with the slot's resources).

    device: ``auto`` (the GPU Ray assigned, else the CPU), ``cuda`` or ``cpu``. threads: torch CPU threads (None:
    torch's default, which Ray bounds by the CPUs the slot reserved).
    """

    def __init__(self, device: str, threads: int | None, weights: str | None, progress_interval: float) -> None:
        self._device_spec = device
        self._weights = weights
        self._threads = threads
        self._progress_interval = progress_interval
        self._model: object = None
        self._stop_seq = 0
        self._forever = threading.Event()

    def versions(self) -> tuple[Versions, str]:
        """What this actor runs, and on which machine (the backend compares before anything is loaded)."""
        import ray

        return running_versions(), f"{ray.util.get_node_ip_address()} ({socket.gethostname()})"

    def load(self) -> ActorPlacement | ActorLoadFailed:
        """Load the weights (once); what a slot waits for before it takes jobs."""
        import ray

        started = time.perf_counter()
        context = ray.get_runtime_context()
        place = ActorPlacement(
            pid=os.getpid(),
            device="",
            load_seconds=0.0,
            node_id=context.get_node_id(),
            node_ip=ray.util.get_node_ip_address(),
            hostname=socket.gethostname(),
            gpu_ids=tuple(str(g) for g in context.get_accelerator_ids().get("GPU", [])),
        )
        try:
            import torch

            if self._threads:
                torch.set_num_threads(self._threads)
            device = self._resolve_device()
            from nst_engine.engine import load_vgg

            self._model = load_vgg(self._weights, device)
        except Exception as exc:
            return ActorLoadFailed(encode_error(exc), f"pid {place.pid} on {place.node}")
        return dataclasses.replace(place, device=device, load_seconds=time.perf_counter() - started)

    def _resolve_device(self) -> str:
        import torch

        if self._device_spec == "cpu":
            return "cpu"
        if torch.cuda.is_available():
            return "cuda"  # Ray's CUDA_VISIBLE_DEVICES leaves this actor its own GPU as cuda:0
        if self._device_spec == "cuda":
            raise RuntimeError("this slot was given a GPU, but CUDA is not usable in the actor's process")
        return "cpu"

    def run(self, spec: RunMessage) -> Iterator[WorkerMessage]:
        """Run one job, yielding its throttled progress messages and, last, its ``Done`` or ``Failed``."""
        from nst_engine.pool.worker import run_job

        messages: queue.SimpleQueue[WorkerMessage] = queue.SimpleQueue()

        def work() -> None:
            try:
                outcome: Done | Failed = run_job(
                    spec,
                    model=self._model,
                    send=messages.put,
                    should_stop=lambda: self._stop_seq == spec.seq,
                    progress_interval=self._progress_interval,
                    codec=PngImage.from_pil,
                )
            except BaseException as exc:  # run_job reports errors itself; this is the last line of defence
                outcome = Failed(spec.seq, encode_error(exc), 0)
            messages.put(outcome)

        threading.Thread(target=work, name=f"nst-job-{spec.job_id}", daemon=True).start()
        while True:
            message = messages.get()
            yield message
            if isinstance(message, Done | Failed):
                return

    def stop(self, seq: int) -> None:
        """Ask the running job ``seq`` to stop before its next iteration (a later job is not affected)."""
        self._stop_seq = seq

    def watch(self) -> None:
        """Never returns while the actor lives: its caller hears of the actor's death as an error."""
        self._forever.wait()

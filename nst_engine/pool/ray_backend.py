"""``RayBackend``: runs style jobs on Ray actors, on this machine or on a cluster of GPU machines.

Each worker slot is one Ray actor (``ray_actor.StyleActor``) that loads VGG19 once; on GPU machines a slot reserves
one GPU (``num_gpus=1``), so Ray places one actor per GPU. Jobs wait here, in the same bounded FIFO queue as the
process pool's, and go to idle actors; a job's progress comes back as a stream (an actor generator method), its
images as PNG bytes. The caller sees the same ``PoolJob`` handles and errors as with ``ProcessPoolBackend``.

Where it runs: with an ``address`` (or Ray's own ``RAY_ADDRESS``) the backend connects to that running cluster and
only disconnects on close; without one it starts a private local Ray (dashboard off, small object store, its own
temporary folder) and stops it on close; a Ray this process had already connected to is used as it is.

How many slots: ``workers`` as a number is that many; ``auto`` follows the cluster, checked every ``rescan``
seconds: one slot per GPU, or, on a cluster without GPUs (or with ``device="cpu"``), one per ``cpus_per_worker``
CPUs. Machines joining or leaving change the number of slots, and the log says so.

Failures: an actor that dies (its process killed, or its machine gone) fails only the job it ran, with
``WorkerCrashedError`` naming the machine, and a new actor takes its slot. A cancelled or timed-out job is told to stop
(within one iteration); an actor that ignores that for ``stop_grace`` seconds is killed and replaced.

Environment variables (read by ``RayBackend.from_env``; keyword overrides win): the process pool's ``NST_WORKERS``
(``auto`` by default here), ``NST_DEVICE`` (auto | cpu | cuda), ``NST_WEIGHTS``, ``NST_JOB_TIMEOUT``,
``NST_MAX_QUEUE``, ``NST_PROGRESS_INTERVAL``, ``NST_START_TIMEOUT``, ``NST_STOP_GRACE``, plus:

==========================  ===============================================================================
``RAY_ADDRESS``             the cluster to connect to (``host:6379``); unset: a local Ray on this machine
``NST_CPUS_PER_WORKER``     CPUs each slot reserves, and the torch threads of a CPU slot (default 1)
==========================  ===============================================================================
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import os
from types import TracebackType
from typing import Any, Literal

from nst_engine.errors import (
    Cancelled,
    JobFailedError,
    NSTError,
    PoolClosedError,
    PoolError,
    WorkerCrashedError,
)
from nst_engine.pool.config import backend_settings_from_env, check_backend_settings, env_float, env_str
from nst_engine.pool.job import Assignment, JobQueue, PoolJob, StopReason
from nst_engine.pool.prepare import shrink_request_images
from nst_engine.pool.protocol import StyleRequest, WorkerInfo, WorkerState
from nst_engine.pool.ray_actor import ACTOR_CONCURRENCY, ActorLoadFailed, ActorReady, StyleActor
from nst_engine.pool.ray_connection import RayConnection
from nst_engine.pool.wire import Done, EncodedImage, ErrorInfo, Failed, JobSpec, Progress, decode_load_error
from nst_engine.types import StyleResult

log = logging.getLogger("nst_engine.pool.ray")

REPLACE_BACKOFF = 5.0  # seconds before a slot whose actor could not load is tried again
RESPAWN_ATTEMPTS = 3  # weights failing to load this many times in a row: stop trying


class _Slot:
    """One worker slot: its actor, what it runs, and the pool's bookkeeping of that job."""

    def __init__(self, index: int, actor: Any, device: str) -> None:
        self.index = index
        self.actor = actor
        self.device = device
        self.state: WorkerState = "starting"
        self.ready: ActorReady | None = None
        self.current: Assignment | None = None
        self.seq = 0
        self.jobs_done = 0
        self.restarts = 0
        self.tasks: set[asyncio.Task[Any]] = set()

    @property
    def where(self) -> str:
        if self.ready is None:
            return f"actor {self.index} (not placed yet)"
        return f"actor {self.index} (pid {self.ready.pid} on {self.ready.node})"

    def info(self) -> WorkerInfo:
        job_id = self.current.job.job_id if self.current is not None else None
        pid = self.ready.pid if self.ready is not None else None
        node = self.ready.node if self.ready is not None else None
        device = self.ready.device if self.ready is not None else self.device
        return WorkerInfo(self.index, device, pid, self.state, job_id, self.jobs_done, self.restarts, node)


def _is_actor_death(exc: BaseException) -> bool:
    import ray.exceptions

    return isinstance(exc, ray.exceptions.RayActorError)


def _how_it_died(exc: BaseException) -> str:
    text = str(exc)
    if "node has died" in text or "node was terminated" in text:
        return "its machine left the cluster or died"
    if "ray.kill" in text:
        return "it was stopped by the pool"
    return "its process died (often the system's out-of-memory killer)"


class RayBackend:
    """Runs style jobs on Ray actors (implements ``StyleBackend``; see the module docs).

    workers: slots, or ``auto``/None (one per GPU in the cluster; without GPUs, one per ``cpus_per_worker`` CPUs).
    device: auto | cpu | cuda (None: NST_DEVICE, else auto; auto uses GPU slots when the cluster has GPUs).
    weights, job_timeout, max_queue, progress_interval, start_timeout, stop_grace: as for ``ProcessPoolBackend``.
    cpus_per_worker: CPUs a slot reserves (and a CPU slot's torch threads). address: the Ray cluster (None:
    RAY_ADDRESS; unset: a local Ray this backend starts and stops). rescan: seconds between checks of the cluster's
    size (``auto``) and of slots waiting to be replaced. local_cpus / local_gpus: the resources a local Ray declares
    (None: Ray detects them).
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
        cpus_per_worker: float = 1.0,
        start_timeout: float = 180.0,
        stop_grace: float = 10.0,
        address: str | None = None,
        rescan: float = 15.0,
        local_cpus: int | None = None,
        local_gpus: int | None = None,
    ) -> None:
        check_backend_settings(
            positive_seconds={"job_timeout": job_timeout, "start_timeout": start_timeout, "rescan": rescan},
            stop_grace=stop_grace,
            progress_interval=progress_interval,
            max_queue=max_queue,
        )
        if not (math.isfinite(cpus_per_worker) and cpus_per_worker > 0):
            raise ValueError(f"cpus_per_worker must be a positive number, got {cpus_per_worker}")
        if isinstance(workers, int) and workers < 1:
            raise ValueError(f"workers must be at least 1 or 'auto', got {workers}")
        spec = (device or os.environ.get("NST_DEVICE") or "auto").strip().lower()
        if spec not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device {spec!r} is not for a Ray cluster; use auto, cpu or cuda (one GPU per slot)")
        self.fixed_workers: int | None = workers if isinstance(workers, int) else None
        self.device = spec
        self.weights = weights
        self.job_timeout = float(job_timeout)
        self.max_queue = max_queue
        self.progress_interval = float(progress_interval)
        self.cpus_per_worker = float(cpus_per_worker)
        self.start_timeout = float(start_timeout)
        self.stop_grace = float(stop_grace)
        self.address = address if address is not None else env_str("RAY_ADDRESS")
        self.rescan = float(rescan)
        self.gpu_slots = False  # decided at start: does a slot reserve a GPU?
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: list[_Slot] = []
        self._next_index = 0
        self._queue = JobQueue(max_queue)
        self._actor_class: Any = None
        self._ray = RayConnection(self.address, local_cpus=local_cpus, local_gpus=local_gpus)
        self._monitor: asyncio.Task[None] | None = None
        self._reconciling: asyncio.Task[None] | None = None
        self._started = False
        self._closing = False
        self._closed = asyncio.Event()
        self._changed = asyncio.Event()
        self._load_failures: list[Exception] = []  # weights that would not load, in a row
        self._broken: str | None = None
        self._last_size = 0.0  # the cluster's GPUs (or CPUs, for CPU slots) at the last check

    @classmethod
    def from_env(cls, **overrides: Any) -> RayBackend:
        """A backend configured from the environment (see the module docstring)."""
        settings = backend_settings_from_env({"cpus_per_worker": env_float("NST_CPUS_PER_WORKER")}, overrides)
        return cls(**settings)

    # StyleBackend ------------------------------------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        """Worker slots, loaded or still loading (it follows the cluster: machines joining and leaving change it)."""
        return len(self._slots)

    @property
    def ready(self) -> int:
        """Slots whose actor has loaded the weights and takes jobs."""
        return sum(1 for s in self._slots if s.state in ("idle", "busy"))

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def running(self) -> int:
        return sum(1 for s in self._slots if s.current is not None)

    @property
    def workers(self) -> list[WorkerInfo]:
        return [s.info() for s in self._slots]

    @property
    def placements(self) -> list[ActorReady]:
        """Where each loaded actor runs: node, process, device and the GPU Ray gave it."""
        return [s.ready for s in self._slots if s.ready is not None and s.state in ("idle", "busy")]

    @property
    def temp_dir(self) -> str | None:
        """The private temporary folder of a local Ray this backend started (removed by ``close``), else None."""
        return self._ray.temp_dir

    async def start(self) -> None:
        """Connect to (or start) Ray, create the slots' actors and wait until they have loaded the weights.

        Slots that cannot be placed yet (the cluster is busy or still growing) keep waiting after ``start``
        returns; it raises only when no slot is ready within ``start_timeout`` or the weights fail to load.
        """
        if self._closing:
            raise PoolClosedError("the style backend is closed; make a new one")
        if self._started:
            return
        self._loop = asyncio.get_running_loop()
        self._started = True
        try:
            await asyncio.to_thread(self._ray.connect)
            import ray

            self._actor_class = ray.remote(StyleActor)
            resources = await asyncio.to_thread(ray.cluster_resources)
            self.gpu_slots = self.device == "cuda" or (self.device == "auto" and resources.get("GPU", 0) >= 1)
            self._last_size = self._cluster_size(resources)
            for _ in range(self._target(resources)):
                self._add_slot()
            await self._wait_first_ready()
        except BaseException:
            await self.close(timeout=5)
            raise
        self._monitor = asyncio.ensure_future(self._watch_cluster())
        log.info(
            "Ray backend ready: %d of %d actor(s) loaded, %s slots, weights=%s, cluster %s",
            self.ready,
            len(self._slots),
            "GPU" if self.gpu_slots else f"CPU ({self.cpus_per_worker:g} each)",
            self.weights or os.environ.get("NST_WEIGHTS") or "imagenet",
            self.address or "local",
        )

    def submit(self, request: StyleRequest) -> PoolJob:
        """Queue a job; raises QueueFullError, PoolClosedError, or OptionsError for an invalid request."""
        if self._closing:
            raise PoolClosedError("the style service is shutting down and accepts no new jobs")
        if self._broken is not None and self.ready == 0:
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
        """Wait until every slot has a loaded actor and the number of slots is what the cluster calls for."""
        async with asyncio.timeout(timeout):
            while True:
                if self._closing:
                    raise PoolClosedError("the style backend is closed")
                if self._broken is not None:
                    raise PoolError(self._broken)
                if self._slots and all(s.state in ("idle", "busy") for s in self._slots) and not self._pending_change():
                    return
                await self._changed.wait()

    async def wait_slots(self, count: int, timeout: float) -> None:
        """Wait until exactly ``count`` slots are loaded and none is starting (tests and operators' scripts)."""
        async with asyncio.timeout(timeout):
            while not (self.ready == count and len(self._slots) == count):
                await self._changed.wait()

    async def close(self, timeout: float = 10.0) -> None:
        """Stop accepting, cancel queued and running jobs, and leave no actor, no local Ray and no temp files."""
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        self._notify()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        for task in (self._monitor, self._reconciling):
            if task is not None:
                task.cancel()
        self._queue.cancel_all("the style service is shutting down; the job never started")
        busy = [s for s in self._slots if s.current is not None]
        running = [s.current.job for s in busy if s.current is not None]
        for slot in busy:
            self._stop_running(slot, "shutdown")
        if running:  # a cooperative stop takes one iteration; give it part of the budget
            await asyncio.wait(
                [asyncio.ensure_future(j.wait_done()) for j in running],
                timeout=max(0.0, (deadline - loop.time()) * 0.5),
            )
        for slot in list(self._slots):
            if slot.current is not None:
                slot.current.finish("cancelled", error=Cancelled("the style service shut down"))
                slot.current = None
            self._kill(slot)
            for task in slot.tasks:
                task.cancel()
        self._slots.clear()
        await asyncio.to_thread(self._ray.disconnect)
        log.info("Ray backend closed")
        self._closed.set()

    async def __aenter__(self) -> RayBackend:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # Slots ------------------------------------------------------------------------------------------------------

    def _cluster_size(self, resources: dict[str, float]) -> float:
        return resources.get("GPU", 0.0) if self.gpu_slots else resources.get("CPU", 0.0)

    def _target(self, resources: dict[str, float]) -> int:
        """How many slots the cluster calls for (``workers`` when fixed)."""
        if self.fixed_workers is not None:
            return self.fixed_workers
        if self.gpu_slots:
            return int(resources.get("GPU", 0))
        return max(1, int(resources.get("CPU", 0) // self.cpus_per_worker))

    def _add_slot(self, restarts: int = 0) -> _Slot:
        threads = None if self.gpu_slots else max(1, int(self.cpus_per_worker))
        options: dict[str, Any] = {
            "num_cpus": self.cpus_per_worker,
            "num_gpus": 1 if self.gpu_slots else 0,
            "max_concurrency": ACTOR_CONCURRENCY,
            "max_restarts": 0,  # the pool replaces a dead actor itself, where the cluster still has room
        }
        actor = self._actor_class.options(**options).remote(
            "cuda" if self.gpu_slots and self.device == "cuda" else ("cpu" if not self.gpu_slots else "auto"),
            self.weights,
            threads,
            self.progress_interval,
        )
        slot = _Slot(self._next_index, actor, "gpu" if self.gpu_slots else "cpu")
        slot.restarts = restarts
        self._next_index += 1
        self._slots.append(slot)
        self._spawn(slot, self._load(slot))
        self._notify()
        return slot

    def _spawn(self, slot: _Slot, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        slot.tasks.add(task)
        task.add_done_callback(slot.tasks.discard)
        return task

    async def _load(self, slot: _Slot) -> None:
        try:
            outcome = await slot.actor.load.remote()
        except Exception as exc:
            if _is_actor_death(exc):
                self._on_death(slot, exc)
            else:
                log.exception("%s could not be loaded", slot.where)
                self._drop(slot, replace_after=REPLACE_BACKOFF)
            return
        if slot not in self._slots:
            return
        if isinstance(outcome, ActorLoadFailed):
            slot.state = "broken"
            error = decode_load_error(
                f"actor {slot.index} ({outcome.where}) could not load the VGG19 weights", outcome.error, log
            )
            log.error("%s", error)
            self._load_failures.append(error)
            if len(self._load_failures) >= RESPAWN_ATTEMPTS:
                self._broken = f"the style actors could not load the weights {RESPAWN_ATTEMPTS} times in a row: {error}"
                log.error("%s; no more actors will be started", self._broken)
            self._drop(slot, replace_after=REPLACE_BACKOFF)
            return
        self._load_failures.clear()
        slot.ready = outcome
        slot.state = "idle"
        gpus = f", GPU {','.join(outcome.gpu_ids)}" if outcome.gpu_ids else ""
        log.info(
            "%s ready on %s%s: weights loaded in %.1f s (%d slot(s) serving)",
            slot.where,
            outcome.device,
            gpus,
            outcome.load_seconds,
            self.ready,
        )
        self._spawn(slot, self._watch(slot))
        self._notify()
        self._dispatch()

    async def _watch(self, slot: _Slot) -> None:
        """Learn of the actor's death even while it is idle (``watch`` only returns by failing)."""
        try:
            await slot.actor.watch.remote()
        except Exception as exc:
            self._on_death(slot, exc)

    async def _wait_first_ready(self) -> None:
        try:
            async with asyncio.timeout(self.start_timeout):
                while self.ready == 0:
                    if self._load_failures:
                        raise self._load_failures[0]
                    if not self._slots:
                        raise PoolError("the Ray cluster has no room for a style actor (no GPU and no CPU to reserve)")
                    await self._changed.wait()
        except TimeoutError:
            raise PoolError(
                f"no style actor was ready within {self.start_timeout:g} s (NST_START_TIMEOUT): the cluster has no "
                f"free {'GPU' if self.gpu_slots else f'{self.cpus_per_worker:g} CPU(s)'} for one, or loading the "
                "weights is slow"
            ) from None

    def _on_death(self, slot: _Slot, exc: BaseException) -> None:
        """The slot's actor is gone: fail (or end as told) its job, and put a new actor in its place."""
        if slot not in self._slots or self._closing:
            return
        how = _how_it_died(exc)
        assignment = slot.current
        slot.current = None
        slot.state = "dead"
        if assignment is not None:
            assignment.finish_lost(
                WorkerCrashedError(
                    f"the Ray {slot.where} running this job died: {how}; the job is lost and the actor is "
                    "being replaced: try again, perhaps at a smaller size"
                )
            )
        (log.warning if slot.ready is not None else log.info)("%s died: %s", slot.where, how)
        self._drop(slot, replace_after=0.0, restarts=slot.restarts + 1)

    def _drop(self, slot: _Slot, *, replace_after: float | None, restarts: int = 0) -> None:
        """Remove a slot (killing its actor) and, unless the cluster shrank, add a new one after ``replace_after``."""
        if slot in self._slots:
            self._slots.remove(slot)
        self._kill(slot)
        for task in slot.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        self._notify()
        if replace_after is not None and not self._closing:
            self._schedule_reconcile(replace_after, restarts)
        self._dispatch()

    def _kill(self, slot: _Slot) -> None:
        import ray

        try:
            ray.kill(slot.actor, no_restart=True)
        except Exception:  # already gone, or Ray is shutting down
            pass

    def _schedule_reconcile(self, delay: float, restarts: int = 0) -> None:
        if self._reconciling is not None and not self._reconciling.done():
            return
        self._reconciling = asyncio.ensure_future(self._reconcile_later(delay, restarts))

    async def _reconcile_later(self, delay: float, restarts: int) -> None:
        try:
            await asyncio.sleep(delay)
            await self._reconcile(restarts)
        finally:
            self._notify()  # wait_ready waits for this task too

    async def _watch_cluster(self) -> None:
        """Every ``rescan`` seconds, match the number of slots to the cluster (machines join and leave)."""
        while not self._closing:
            await asyncio.sleep(self.rescan)
            try:
                await self._reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not check the Ray cluster's size")

    def _pending_change(self) -> bool:
        return self._reconciling is not None and not self._reconciling.done()

    async def _reconcile(self, restarts: int = 0) -> None:
        import ray

        if self._closing:
            return
        resources = await asyncio.to_thread(ray.cluster_resources)
        if self._closing:
            return
        target = self._target(resources)
        have = len(self._slots)
        if target > have and self._broken is not None:
            target = have
        if target > have:
            for _ in range(target - have):
                self._add_slot(restarts)
        elif target < have:
            # Shrink: slots still waiting for a place first, then idle ones; a busy slot finishes its job first.
            order = {"starting": 0, "broken": 0, "dead": 0, "idle": 1, "busy": 2}
            spare = sorted((s for s in self._slots if s.current is None), key=lambda s: order[s.state])
            for slot in spare[: have - target]:
                self._slots.remove(slot)
                self._kill(slot)
                for task in slot.tasks:
                    task.cancel()
        size = self._cluster_size(resources)
        if size != self._last_size:
            unit = "GPU(s)" if self.gpu_slots else "CPU(s)"
            log.warning(
                "the Ray cluster now has %g %s (was %g): style actor slots %d -> %d%s",
                size,
                unit,
                self._last_size,
                have,
                len(self._slots),
                "" if len(self._slots) == target else f" (target {target}; busy ones finish their job first)",
            )
            self._last_size = size
        elif target != have:
            log.info("style actor slots %d -> %d (replacing lost actors)", have, len(self._slots))
        if target == 0 and self._queue:
            log.error("no style actor can run: %d job(s) wait for a machine to join the cluster", len(self._queue))
        if target != have:
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # Jobs -------------------------------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        if self._closing:
            return
        while self._queue:
            slot = next((s for s in self._slots if s.state == "idle"), None)
            if slot is None:
                return
            self._run(slot, self._queue.popleft())

    def _run(self, slot: _Slot, job: PoolJob) -> None:
        assert self._loop is not None and slot.ready is not None
        slot.seq += 1
        slot.state = "busy"
        assignment = Assignment(job, slot.seq)
        slot.current = assignment
        job.mark_running(f"Ray {slot.where}", slot.ready.pid)
        assignment.timers.append(self._loop.call_later(job.timeout, self._on_timeout, slot, assignment))
        self._spawn(slot, self._drive(slot, assignment))

    async def _drive(self, slot: _Slot, assignment: Assignment) -> None:
        """Send the job, relay its progress, and end it with the actor's outcome (or the actor's death)."""
        job = assignment.job
        try:
            spec = await asyncio.to_thread(_pack, assignment)
            if assignment.job.done:  # cancelled while its images were being encoded
                return
            outcome: Done | Failed | None = None
            async for ref in slot.actor.run.remote(spec):
                message = await ref
                if isinstance(message, Progress):
                    event = message.event
                    if message.preview is not None:
                        preview = await asyncio.to_thread(message.preview.to_pil)
                        event = dataclasses.replace(event, preview=preview)
                    job.push_event(event)
                elif isinstance(message, Done | Failed):
                    outcome = message
            if outcome is None:
                raise JobFailedError("the style actor ended the job without a result")
            reported: StyleResult | ErrorInfo
            if isinstance(outcome, Done):
                image = await asyncio.to_thread(outcome.image.to_pil)
                reported = StyleResult(image, outcome.summary, outcome.history)
            else:
                reported = outcome.error
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if _is_actor_death(exc):
                self._on_death(slot, exc)
                return
            log.exception("job %s on %s could not be run", job.job_id, slot.where)
            self._end(slot, assignment)
            error = exc if isinstance(exc, NSTError) else JobFailedError(f"the job could not be run on Ray ({exc})")
            assignment.finish("failed", error=error)
            self._dispatch()
            return
        if slot.current is not assignment:
            return
        self._end(slot, assignment)
        slot.jobs_done += 1
        job.steps = outcome.steps
        assignment.finish_reported(reported, runner="actor", logger=log)
        self._dispatch()

    def _end(self, slot: _Slot, assignment: Assignment) -> None:
        if slot.current is assignment:
            slot.current = None
            if slot.state == "busy":
                slot.state = "idle"

    def _cancel(self, job: PoolJob) -> None:
        if job.done or self._queue.cancel_waiting(job):
            return
        slot = next((s for s in self._slots if s.current is not None and s.current.job is job), None)
        if slot is not None:
            self._stop_running(slot, "cancel")

    def _stop_running(self, slot: _Slot, reason: StopReason) -> None:
        """Tell the actor to stop its job (checked every iteration); kill the actor if it does not, in time."""
        assignment = slot.current
        if assignment is None or not assignment.request_stop(reason):
            return
        slot.actor.stop.remote(assignment.seq)
        if reason != "shutdown" and self._loop is not None:  # close() has its own deadline
            assignment.timers.append(self._loop.call_later(self.stop_grace, self._kill_stuck, slot, assignment))

    def _on_timeout(self, slot: _Slot, assignment: Assignment) -> None:
        if slot.current is assignment and not assignment.job.done and assignment.stop_reason is None:
            log.warning("job %s exceeded its %g s limit; stopping it", assignment.job.job_id, assignment.job.timeout)
            self._stop_running(slot, "timeout")

    def _kill_stuck(self, slot: _Slot, assignment: Assignment) -> None:
        if slot.current is assignment and not assignment.job.done:
            log.warning(
                "%s did not stop job %s within %g s; killing and replacing it",
                slot.where,
                assignment.job.job_id,
                self.stop_grace,
            )
            self._kill(slot)  # the job's stream then fails with the actor's death, which ends it as told


def _pack(assignment: Assignment) -> JobSpec:
    """The job as the actor gets it: PNG images no larger than the job needs (runs in a helper thread)."""
    request = assignment.job.request
    content, styles = shrink_request_images(request.content, request.styles, request.options)
    return JobSpec(
        assignment.seq,
        request.job_id,
        EncodedImage.from_pil(content),
        tuple(EncodedImage.from_pil(s) for s in styles),
        request.options,
    )

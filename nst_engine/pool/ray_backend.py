"""``RayBackend``: runs style jobs on Ray actors, on this machine or on a cluster of GPU machines (the transport of
``BackendCore``, which owns the queue, stops, time limits and replacing dead workers).

Each slot is one Ray actor (``ray_actor.StyleActor``) that loads VGG19 once; on GPU machines a slot reserves one GPU,
so Ray places one actor per GPU. A job's progress comes back as a stream (an actor generator method), its images as
PNG bytes. With an ``address`` (RAY_ADDRESS) the backend joins that cluster and only disconnects on close; without
one it starts a private local Ray and stops it on close. ``workers="auto"`` follows the cluster, checked every
``rescan`` seconds: one slot per GPU, or without GPUs one per ``cpus_per_worker`` CPUs; the log says when it changes.
An actor that dies fails only the job it ran, naming the machine; an actor of another version is refused.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from collections.abc import Callable
from typing import Any, Literal

from nst_engine.errors import ClusterSetupError, JobFailedError, PoolError
from nst_engine.pool.core import RESPAWN_ATTEMPTS, BackendCore
from nst_engine.pool.job import PoolJob
from nst_engine.pool.ray_actor import ActorLoadFailed, ActorPlacement, StyleActor
from nst_engine.pool.ray_attach import head_lost_report
from nst_engine.pool.ray_connection import RayConnection
from nst_engine.pool.ray_slot import (
    ActorSlot,
    actor_arguments,
    cluster_size,
    how_actor_died,
    is_actor_death,
    pack_for_actor,
    slots_wanted,
    spare_slots,
)
from nst_engine.pool.settings import or_setting
from nst_engine.pool.versions import mismatch, running_versions
from nst_engine.pool.wire import Done, ErrorInfo, Failed, Progress, decode_load_error
from nst_engine.types import StyleResult

log = logging.getLogger("nst_engine.pool.ray")

REPLACE_BACKOFF = 5.0  # seconds before a slot whose actor could not load is tried again


class RayBackend(BackendCore[ActorSlot]):
    """Runs style jobs on Ray actors (implements ``StyleBackend``; see the module docs).

    workers: slots, or ``auto``/None (one per GPU in the cluster; without GPUs, one per ``cpus_per_worker`` CPUs).
    device: auto | cpu | cuda (None: the NST_DEVICE setting; auto uses GPU slots when the cluster has GPUs).
    weights (None: the NST_WEIGHTS setting), job_timeout, max_queue, progress_interval, start_timeout, stop_grace: as
    for ``ProcessPoolBackend``. cpus_per_worker: CPUs a slot reserves (and a CPU slot's torch threads). address: the
    Ray cluster (None: the RAY_ADDRESS setting; unset: a local Ray this backend starts and stops). rescan: seconds
    between checks of the cluster's size (``auto``) and of slots waiting to be replaced. local_cpus / local_gpus: the
    resources a local Ray declares (None: Ray detects them).
    """

    kind = "ray"
    runner = "actor"
    unsent = "the job could not be run on Ray"
    log = log

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
        super().__init__(
            weights=weights,
            job_timeout=job_timeout,
            max_queue=max_queue,
            progress_interval=progress_interval,
            start_timeout=start_timeout,
            stop_grace=stop_grace,
            more_positive_seconds={"rescan": rescan},
        )
        if not (math.isfinite(cpus_per_worker) and cpus_per_worker > 0):
            raise ValueError(f"cpus_per_worker must be a positive number, got {cpus_per_worker}")
        if isinstance(workers, int) and workers < 1:
            raise ValueError(f"workers must be at least 1 or 'auto', got {workers}")
        spec = (or_setting(device, "nst_device") or "auto").strip().lower()
        if spec not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device {spec!r} is not for a Ray cluster; use auto, cpu or cuda (one GPU per slot)")
        self.fixed_workers: int | None = workers if isinstance(workers, int) else None
        self.device = spec
        self.cpus_per_worker = float(cpus_per_worker)
        self.address = or_setting(address, "ray_address")
        self.rescan = float(rescan)
        self.gpu_slots = False  # decided at start: does a slot reserve a GPU?
        self._next_index = 0
        self._actor_class: Any = None
        self._ray = RayConnection(self.address, local_cpus=local_cpus, local_gpus=local_gpus)
        self._monitor: asyncio.Task[None] | None = None
        self._reconciling: asyncio.Task[None] | None = None
        self._sizing: asyncio.Task[None] | None = None  # the periodic size check (``_watch_cluster``)
        self._load_failures: list[Exception] = []  # weights that would not load, in a row
        self._versions = running_versions()
        self._refused: list[ClusterSetupError] = []  # actors that run another version of the project or of Ray
        self._last_size = 0.0  # the cluster's GPUs (or CPUs, for CPU slots) at the last check

    @property
    def placements(self) -> list[ActorPlacement]:
        """Where each loaded actor runs: node, process, device and the GPU Ray gave it."""
        return [s.placement for s in self._slots if s.placement is not None and s.ready]

    @property
    def temp_dir(self) -> str | None:
        """The private temporary folder of a local Ray this backend started (removed by ``close``), else None."""
        return self._ray.temp_dir

    async def start(self) -> None:
        """Connect to (or start) Ray, create the slots' actors and wait until they have loaded the weights.

        Slots that cannot be placed yet (the cluster is busy or still growing) keep waiting after ``start``
        returns; it raises only when no slot is ready within ``start_timeout`` or the weights fail to load.
        """
        if not self._begin_start():
            return
        try:
            await asyncio.to_thread(self._ray.connect)
            import ray

            self._actor_class = ray.remote(StyleActor)
            resources = await asyncio.to_thread(ray.cluster_resources)
            self.gpu_slots = self.device == "cuda" or (self.device == "auto" and resources.get("GPU", 0) >= 1)
            self._last_size = cluster_size(resources, self.gpu_slots)
            for _ in range(slots_wanted(resources, self.fixed_workers, self.gpu_slots, self.cpus_per_worker)):
                self._add_slot()
            await self._wait_first_ready()
        except BaseException:
            await self.close(timeout=5)
            raise
        self._monitor = asyncio.ensure_future(self._watch_cluster())
        kind = "GPU" if self.gpu_slots else f"CPU ({self.cpus_per_worker:g} each)"
        log.info("Ray backend ready: %d of %d actor(s) loaded, %s slots, weights=%s, cluster %s; %s",
                 self.slots_ready, len(self._slots), kind, self.weights, self.address or "local", self._versions)

    async def wait_slots(self, count: int, timeout: float) -> None:
        """Wait until exactly ``count`` slots are loaded and none is starting (tests and operators' scripts)."""
        async with asyncio.timeout(timeout):
            while not (self.slots_ready == count and len(self._slots) == count):
                await self._changed.wait()

    # Transport ---------------------------------------------------------------------------------------------------

    def _send(self, slot: ActorSlot, job: PoolJob) -> None:
        slot.spawn(self._drive(slot, job))

    async def _drive(self, slot: ActorSlot, job: PoolJob) -> None:
        """Send the job, relay its progress, and end it with the actor's outcome (or the actor's death)."""
        try:
            message = await asyncio.to_thread(pack_for_actor, job)
            if job.done:  # cancelled while its images were being encoded
                return
            outcome: Done | Failed | None = None
            async for ref in slot.actor.run.remote(message):
                reply = await ref
                if isinstance(reply, Progress):
                    event = reply.event
                    if reply.preview is not None:
                        preview = await asyncio.to_thread(reply.preview.to_pil)
                        event = dataclasses.replace(event, preview=preview)
                    job.push_event(event)
                elif isinstance(reply, Done | Failed):
                    outcome = reply
            if outcome is None:
                raise JobFailedError("the style actor ended the job without a result")
            reported: StyleResult | ErrorInfo
            if isinstance(outcome, Done):
                reported = await asyncio.to_thread(outcome.unpack)
            else:
                reported = outcome.error
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_actor_death(exc):
                await self._on_death(slot, exc)
            else:
                self._job_unsent(slot, job, exc)
            return
        self._job_reported(slot, job, reported, outcome.steps)

    def _signal_stop(self, slot: ActorSlot, seq: int) -> None:
        slot.actor.stop.remote(seq)

    def _kill(self, slot: ActorSlot) -> None:
        slot.kill()

    async def _on_death(self, slot: ActorSlot, exc: BaseException) -> None:
        """The slot's actor is gone: fail (or end as told) its job, and put a new actor in its place."""
        if slot not in self._slots or self._closing:
            return
        how = await asyncio.to_thread(how_actor_died, exc, slot.placement)
        if slot not in self._slots or self._closing:
            return
        (log.warning if slot.placement is not None else log.info)("%s died: %s", slot.where, how)
        self._slot_died(
            slot,
            f"the {slot.where} running this job died: {how}; the job is lost and the actor is being replaced: try "
            "again, perhaps at a smaller size",
        )

    def _replace(self, slot: ActorSlot) -> None:
        self._drop(slot, replace_after=0.0, restarts=slot.restarts + 1)

    def _begin_close(self) -> None:
        for task in (self._monitor, self._reconciling, self._sizing):
            if task is not None:
                task.cancel()

    async def _shut_down(self, left: Callable[[float], float]) -> None:
        for slot in self._slots:
            slot.retire()
        await asyncio.to_thread(self._ray.disconnect)
        log.info("Ray backend closed")

    def _changing(self) -> bool:
        return self._reconciling is not None and not self._reconciling.done()

    # Slots ------------------------------------------------------------------------------------------------------

    def _add_slot(self, restarts: int = 0) -> ActorSlot:
        options, arguments = actor_arguments(self.gpu_slots, self.device, self.cpus_per_worker)
        actor = self._actor_class.options(**options).remote(*arguments, self.weights, self.progress_interval)
        slot = ActorSlot(self._next_index, actor, "gpu" if self.gpu_slots else "cpu", restarts)
        self._next_index += 1
        self._slots.append(slot)
        slot.spawn(self._load(slot))
        self._notify()
        return slot

    async def _load(self, slot: ActorSlot) -> None:
        try:
            theirs, where = await slot.actor.versions.remote()
            refusal = mismatch(where, theirs, self._versions)
            if refusal is not None:
                self._refuse(slot, refusal)
                return
            outcome = await slot.actor.load.remote()
        except Exception as exc:
            if is_actor_death(exc):
                await self._on_death(slot, exc)
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
        slot.placement = outcome
        slot.state = "idle"
        gpus = f", GPU {','.join(outcome.gpu_ids)}" if outcome.gpu_ids else ""
        log.info(
            "%s ready on %s%s: weights loaded in %.1f s (%d slot(s) serving)",
            slot.where,
            outcome.device,
            gpus,
            outcome.load_seconds,
            self.slots_ready,
        )
        slot.spawn(self._watch(slot))
        self._notify()
        self._dispatch()

    def _refuse(self, slot: ActorSlot, refusal: str) -> None:
        """Keep an actor of another version out of service, holding its place (none other lands there) while it lives."""
        log.error("%s", refusal)
        slot.state = "broken"
        self._refused.append(ClusterSetupError(refusal))
        slot.spawn(self._watch(slot))
        self._notify()

    async def _watch(self, slot: ActorSlot) -> None:
        """Learn of the actor's death even while it is idle (``watch`` only returns by failing)."""
        try:
            await slot.actor.watch.remote()
        except Exception as exc:
            await self._on_death(slot, exc)

    async def _wait_first_ready(self) -> None:
        try:
            async with asyncio.timeout(self.start_timeout):
                while self.slots_ready == 0:
                    if self._load_failures:
                        raise self._load_failures[0]
                    if self._refused and all(s.state == "broken" for s in self._slots):
                        raise self._refused[-1]
                    if not self._slots:
                        raise PoolError("the Ray cluster has no room for a style actor (no GPU and no CPU to reserve)")
                    await self._changed.wait()
        except TimeoutError:
            raise PoolError(
                f"no style actor was ready within {self.start_timeout:g} s (NST_START_TIMEOUT): the cluster has no "
                f"free {'GPU' if self.gpu_slots else f'{self.cpus_per_worker:g} CPU(s)'} for one, or loading the "
                "weights is slow"
            ) from None

    def _drop(self, slot: ActorSlot, *, replace_after: float | None, restarts: int = 0) -> None:
        """Remove a slot (killing its actor) and, unless the cluster shrank, add a new one after ``replace_after``."""
        if slot in self._slots:
            self._slots.remove(slot)
        slot.retire()
        self._notify()
        if replace_after is not None and not self._closing:
            self._schedule_reconcile(replace_after, restarts)
        self._dispatch()

    def _schedule_reconcile(self, delay: float, restarts: int = 0) -> None:
        if not self._changing():
            self._reconciling = asyncio.ensure_future(self._reconcile_later(delay, restarts))

    async def _reconcile_later(self, delay: float, restarts: int) -> None:
        try:
            await asyncio.sleep(delay)
            await self._reconcile(restarts)
        finally:
            self._notify()  # wait_ready waits for this task too

    async def _watch_cluster(self) -> None:
        """Every ``rescan`` seconds: is the head there (``head_lost_report``), and how many slots the cluster wants;
        the size check runs beside (a head lost during it blocks it until Ray ends the process: the log says why first)."""
        head_lost = False
        while not self._closing:
            await asyncio.sleep(self.rescan)
            head_lost = self.address is not None and await asyncio.to_thread(
                head_lost_report, self.address, head_lost, log)
            if not head_lost and (self._sizing is None or self._sizing.done()):
                self._sizing = asyncio.ensure_future(self._size_check())

    async def _size_check(self) -> None:
        try:
            await self._reconcile()
        except Exception:
            log.exception("could not check the Ray cluster's size")

    async def _reconcile(self, restarts: int = 0) -> None:
        import ray

        if self._closing:
            return
        resources = await asyncio.to_thread(ray.cluster_resources)
        if self._closing:
            return
        target = slots_wanted(resources, self.fixed_workers, self.gpu_slots, self.cpus_per_worker)
        have = len(self._slots)
        if target > have and self._broken is not None:
            target = have
        if target > have:
            for _ in range(target - have):
                self._add_slot(restarts)
        elif target < have:
            for slot in spare_slots(self._slots, have - target):
                self._slots.remove(slot)
                slot.retire()
        size = cluster_size(resources, self.gpu_slots)
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

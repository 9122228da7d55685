"""The Ray backend's slots: one actor each, how many the cluster calls for, and the job as it travels to one."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import Coroutine
from typing import Any

from nst_engine.pool.core import Slot
from nst_engine.pool.job import PoolJob
from nst_engine.pool.prepare import pack_request
from nst_engine.pool.protocol import WorkerInfo
from nst_engine.pool.ray_actor import ACTOR_CONCURRENCY, ActorPlacement
from nst_engine.pool.wire import PngImage, RunMessage

NODE_CHECK_TIMEOUT = 2.0  # seconds for a dead actor's machine to accept a connection


class ActorSlot(Slot):
    """One worker slot: its actor, where the actor runs once loaded, and the tasks that talk to it."""

    def __init__(self, index: int, actor: Any, device: str, restarts: int) -> None:
        super().__init__(index, device, restarts)
        self.actor = actor
        self.placement: ActorPlacement | None = None
        self.tasks: set[asyncio.Task[Any]] = set()

    @property
    def pid(self) -> int | None:
        return self.placement.pid if self.placement is not None else None

    @property
    def where(self) -> str:
        if self.placement is None:
            return f"Ray actor {self.index} (not placed yet)"
        return f"Ray actor {self.index} (pid {self.placement.pid} on {self.placement.node})"

    def info(self) -> WorkerInfo:
        info = super().info()
        if self.placement is None:
            return info
        return dataclasses.replace(info, device=self.placement.device, node=self.placement.node)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as one of the tasks that talk to this slot's actor (cancelled when the slot retires)."""
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def kill(self) -> None:
        """Kill the actor (its calls then fail with its death)."""
        import ray

        try:
            ray.kill(self.actor, no_restart=True)
        except Exception:  # already gone, or Ray is shutting down
            pass

    def retire(self) -> None:
        """Kill the actor and stop talking to it: the slot is gone."""
        self.kill()
        self.cancel_tasks()

    def cancel_tasks(self) -> None:
        for task in self.tasks:
            if task is not asyncio.current_task():
                task.cancel()


def is_actor_death(exc: BaseException) -> bool:
    """True when a call failed because its actor is gone."""
    import ray.exceptions

    return isinstance(exc, ray.exceptions.RayActorError)


def how_actor_died(exc: BaseException, placement: ActorPlacement | None) -> str:
    """How an actor died, in words, from the error its caller got and whether its machine's Ray still answers (the
    caller hears of the process's death seconds before the cluster counts a machine switched off as gone).
    Blocking: run it in a helper thread."""
    text = str(exc)
    if "node has died" in text or "node was terminated" in text:
        return "its machine left the cluster or died"
    if placement is not None and not node_answers(placement.node_id):
        return "its machine left the cluster or died (its Ray node no longer answers)"
    if "ray.kill" in text:
        return "it was stopped by the pool"
    return "its process died (often the system's out-of-memory killer)"


def node_answers(node_id: str, timeout: float = NODE_CHECK_TIMEOUT) -> bool:
    """True when the Ray node ``node_id`` accepts a connection on its node manager port (or is not known)."""
    import ray

    try:
        node = next((n for n in ray.nodes() if n.get("NodeID") == node_id), None)
    except Exception:  # the cluster's state is out of reach (its head is gone): nothing to tell
        return True
    if node is None or not node.get("Alive", False):
        return node is None
    try:
        with socket.create_connection((node["NodeManagerAddress"], int(node["NodeManagerPort"])), timeout=timeout):
            return True
    except OSError:
        return False


def pack_for_actor(job: PoolJob) -> RunMessage:
    """The job as the actor gets it: PNG images no larger than the job needs (runs in a helper thread)."""
    return pack_request(job.request, job.seq, PngImage.from_pil)


def cluster_size(resources: dict[str, float], gpu_slots: bool) -> float:
    """The cluster's GPUs, or CPUs for CPU slots."""
    return resources.get("GPU", 0.0) if gpu_slots else resources.get("CPU", 0.0)


def slots_wanted(resources: dict[str, float], fixed: int | None, gpu_slots: bool, cpus_per_worker: float) -> int:
    """How many slots the cluster calls for (``fixed`` when the number of workers was given)."""
    if fixed is not None:
        return fixed
    if gpu_slots:
        return int(resources.get("GPU", 0))
    return max(1, int(resources.get("CPU", 0) // cpus_per_worker))


def actor_arguments(gpu_slots: bool, device: str, cpus_per_worker: float) -> tuple[dict[str, Any], tuple[Any, ...]]:
    """A slot's actor: its Ray options (the resources it reserves) and its device and torch threads."""
    options: dict[str, Any] = {
        "num_cpus": cpus_per_worker,
        "num_gpus": 1 if gpu_slots else 0,
        "max_concurrency": ACTOR_CONCURRENCY,
        "max_restarts": 0,  # the pool replaces a dead actor itself, where the cluster still has room
    }
    if not gpu_slots:
        return options, ("cpu", max(1, int(cpus_per_worker)))
    return options, ("cuda" if device == "cuda" else "auto", None)


def spare_slots(slots: list[ActorSlot], count: int) -> list[ActorSlot]:
    """The ``count`` slots to retire when the cluster shrinks: those without a place (or refused) first, then idle
    ones; a busy slot finishes its job first."""
    order = {"starting": 0, "broken": 0, "dead": 0, "idle": 1, "busy": 2}
    return sorted((s for s in slots if s.job is None), key=lambda s: order[s.state])[:count]

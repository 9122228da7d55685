"""A fair scheduler in front of the worker pool: round robin across users, per-user caps, a bounded queue.

The pool runs ``slots`` jobs at once. When a slot frees, the next job is the oldest waiting job of the user
who was served least recently (and may run one more job), so users take turns and one user sending many
jobs cannot starve the others.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field


class QueueRefused(Exception):
    """The request cannot be queued; the message is for the user."""


class FairQueueFull(QueueRefused):
    """The fair queue holds as many waiting jobs as it may."""


class UserLimitReached(QueueRefused):
    """This user has as many jobs running and waiting as one person may."""


@dataclass(eq=False)
class _Place:
    """The queue's bookkeeping of one job it holds (callers name the job by its id)."""

    user_id: int
    job_id: str
    seq: int = 0
    state: str = "waiting"  # waiting, running, done, cancelled
    turn: asyncio.Future[None] | None = field(default=None, repr=False)


class FairQueue:
    """Admits, orders and releases jobs, named by their job id; a job is admitted before its download, so a burst is
    refused before anything is downloaded, then queued, then running, then released."""

    def __init__(
        self,
        *,
        slots: int | Callable[[], int],
        max_queue: int,
        user_max_running: int = 1,
        user_max_waiting: int = 1,
    ):
        # A callable is read at every decision: a Ray cluster's capacity follows the machines that join and leave.
        if isinstance(slots, int) and slots < 1:
            raise ValueError("slots must be at least 1")
        self._slots = slots if callable(slots) else (lambda: slots)
        self.max_queue = max_queue
        self.user_max_running = user_max_running
        self.user_max_waiting = user_max_waiting
        self._admitted: dict[str, int] = {}  # job id -> user id: accepted, still downloading, not queued yet
        self._places: dict[str, _Place] = {}  # job id -> its place while waiting or running
        self._waiting: list[_Place] = []
        self._running: dict[int, list[_Place]] = defaultdict(list)
        self._last_served: dict[int, int] = {}
        self._seq = itertools.count(1)
        self._serve_seq = itertools.count(1)
        self._changed = asyncio.Event()

    # -- inspection ------------------------------------------------------------------------------------

    @property
    def slots(self) -> int:
        """How many jobs may run at once right now (at least 1)."""
        return max(1, self._slots())

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def running(self) -> int:
        return sum(len(v) for v in self._running.values())

    def state(self, job_id: str) -> str:
        """``admitted``, ``waiting``, ``running``, or ``gone`` (released, cancelled, or never here)."""
        if job_id in self._admitted:
            return "admitted"
        place = self._places.get(job_id)
        return place.state if place is not None else "gone"

    def user_counts(self, user_id: int) -> tuple[int, int]:
        """(running, waiting) jobs of this user."""
        return len(self._running.get(user_id, ())), sum(1 for t in self._waiting if t.user_id == user_id)

    def order(self) -> list[str]:
        """Waiting job ids in the order they will start, simulating that running jobs end oldest first."""
        running = [t.user_id for t in sorted(self._all_running(), key=lambda t: self._last_served[t.user_id])]
        waiting = list(self._waiting)
        last = dict(self._last_served)
        serve = max(last.values(), default=0)
        out: list[_Place] = []
        while waiting:
            while len(running) < self.slots:
                place = self._pick(waiting, running, last)
                if place is None:
                    break
                waiting.remove(place)
                out.append(place)
                running.append(place.user_id)
                serve += 1
                last[place.user_id] = serve
            if waiting:
                if not running:  # cannot happen with valid caps; avoid looping forever
                    out.extend(sorted(waiting, key=lambda t: t.seq))
                    break
                running.pop(0)
        return [place.job_id for place in out]

    def position(self, job_id: str) -> int:
        """0 unless waiting, else 1 for the next job to start, 2 behind it, ..."""
        if self.state(job_id) != "waiting":
            return 0
        return self.order().index(job_id) + 1

    # -- changes ---------------------------------------------------------------------------------------

    def check_room(self, user_id: int) -> None:
        """Raise QueueRefused when ``admit`` would refuse this user now; holds nothing (checked before a request
        posts anything public)."""
        mine = sum(1 for user in self._admitted.values() if user == user_id)
        self._check(user_id, pending=mine, pending_total=len(self._admitted))

    def admit(self, user_id: int, job_id: str) -> None:
        """Hold a place for a job about to download (raises QueueRefused): admitted jobs count towards the caps
        like waiting ones, so a burst is refused before its downloads, not after."""
        self.check_room(user_id)
        self._admitted[job_id] = user_id

    def enqueue(self, user_id: int, job_id: str) -> None:
        """Queue a job (its admission, if any, becomes its place; raises QueueRefused); it starts when
        ``wait_turn`` returns."""
        self._admitted.pop(job_id, None)
        self._check(user_id)
        place = _Place(user_id=user_id, job_id=job_id, seq=next(self._seq))
        place.turn = asyncio.get_running_loop().create_future()
        self._places[job_id] = place
        self._waiting.append(place)
        self._dispatch()
        self._notify()

    async def wait_turn(self, job_id: str) -> bool:
        """Wait until the job runs (True) or is cancelled while waiting (False)."""
        place = self._places.get(job_id)
        if place is None or place.turn is None:
            raise RuntimeError(f"job {job_id} was not enqueued")
        try:
            await asyncio.shield(place.turn)
        except asyncio.CancelledError:
            if place.turn.cancelled():
                return False
            raise
        return True

    async def wait_changed(self) -> None:
        """Wait until the queue changes (a job starts, ends or is cancelled)."""
        await self._changed.wait()

    def release(self, job_id: str) -> None:
        """The job is over here, whatever it held (an admission, a waiting place, a running slot): free it and start
        the next one."""
        self._admitted.pop(job_id, None)
        place = self._places.get(job_id)
        if place is None:
            return
        if place.state == "waiting":
            self.cancel(job_id)
            return
        del self._places[job_id]
        self._running[place.user_id].remove(place)
        if not self._running[place.user_id]:
            del self._running[place.user_id]
        place.state = "done"
        self._dispatch()
        self._notify()

    def cancel(self, job_id: str) -> bool:
        """Drop a waiting job; returns False when it is not waiting (already running or gone)."""
        place = self._places.get(job_id)
        if place is None or place.state != "waiting":
            return False
        del self._places[job_id]
        self._waiting.remove(place)
        place.state = "cancelled"
        if place.turn is not None and not place.turn.done():
            place.turn.cancel()
        self._notify()
        return True

    def _check(self, user_id: int, *, pending: int = 0, pending_total: int = 0) -> None:
        running, waiting = self.user_counts(user_id)
        waiting += pending
        allowed = self.user_max_running + self.user_max_waiting
        if running + waiting >= allowed:
            raise UserLimitReached(
                f"You already have {running} job(s) running and {waiting} waiting; the limit is "
                f"{self.user_max_running} running + {self.user_max_waiting} waiting per person. "
                "Wait for one to finish (or cancel it), then send this again."
            )
        if len(self._waiting) + pending_total >= self.max_queue:
            raise FairQueueFull(
                f"The queue is full ({self.max_queue} jobs waiting). Please try again in a few minutes."
            )

    def _pick(self, waiting: list[_Place], running: list[int], last: dict[int, int]) -> _Place | None:
        """The next job to start: the eligible user served least recently, their oldest job."""
        eligible = [t for t in waiting if running.count(t.user_id) < self.user_max_running]
        if not eligible:
            return None
        return min(eligible, key=lambda t: (last.get(t.user_id, 0), t.seq))

    def _all_running(self) -> list[_Place]:
        return [t for places in self._running.values() for t in places]

    def _dispatch(self) -> None:
        while self.running < self.slots:
            running = [t.user_id for t in self._all_running()]
            place = self._pick(self._waiting, running, self._last_served)
            if place is None:
                return
            self._waiting.remove(place)
            place.state = "running"
            self._running[place.user_id].append(place)
            self._last_served[place.user_id] = next(self._serve_seq)
            if place.turn is not None and not place.turn.done():
                place.turn.set_result(None)

    def _notify(self) -> None:
        # Wake everyone waiting for a change, then arm the event again.
        self._changed.set()
        self._changed = asyncio.Event()

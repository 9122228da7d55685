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


class QueueFull(QueueRefused):
    pass


class UserLimitReached(QueueRefused):
    pass


@dataclass(eq=False)
class Ticket:
    """One job's place in the scheduler."""

    user_id: int
    job_id: str
    seq: int = 0
    state: str = "new"  # new, waiting, running, done, cancelled
    _turn: asyncio.Future[None] | None = field(default=None, repr=False)


class FairQueue:
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
        self._waiting: list[Ticket] = []
        self._running: dict[int, list[Ticket]] = defaultdict(list)
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

    def user_counts(self, user_id: int) -> tuple[int, int]:
        """(running, waiting) jobs of this user."""
        return len(self._running.get(user_id, ())), sum(1 for t in self._waiting if t.user_id == user_id)

    def check_admission(self, user_id: int, *, pending: int = 0, pending_total: int = 0) -> None:
        """Raise QueueRefused when this user may not queue another job now (call before downloading).

        ``pending`` counts the user's requests accepted but not queued yet (still downloading), ``pending_total``
        everyone's: they will want a place in the queue too, so a burst is refused before its downloads, not after.
        """
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
            raise QueueFull(
                f"The queue is full ({self.max_queue} jobs waiting). Please try again in a few minutes."
            )

    def order(self) -> list[Ticket]:
        """Waiting tickets in the order they will start, simulating that running jobs end oldest first."""
        running = [t.user_id for t in sorted(self._all_running(), key=lambda t: self._last_served[t.user_id])]
        waiting = list(self._waiting)
        last = dict(self._last_served)
        serve = max(last.values(), default=0)
        out: list[Ticket] = []
        while waiting:
            while len(running) < self.slots:
                ticket = self._pick(waiting, running, last)
                if ticket is None:
                    break
                waiting.remove(ticket)
                out.append(ticket)
                running.append(ticket.user_id)
                serve += 1
                last[ticket.user_id] = serve
            if waiting:
                if not running:  # cannot happen with valid caps; avoid looping forever
                    out.extend(sorted(waiting, key=lambda t: t.seq))
                    break
                running.pop(0)
        return out

    def _pick(self, waiting: list[Ticket], running: list[int], last: dict[int, int]) -> Ticket | None:
        """The next ticket to start: the eligible user served least recently, their oldest job."""
        eligible = [t for t in waiting if running.count(t.user_id) < self.user_max_running]
        if not eligible:
            return None
        return min(eligible, key=lambda t: (last.get(t.user_id, 0), t.seq))

    def _all_running(self) -> list[Ticket]:
        return [t for tickets in self._running.values() for t in tickets]

    def position(self, ticket: Ticket) -> int:
        """0 when running (or finished), else 1 for the next job to start, 2 behind it, ..."""
        if ticket.state != "waiting":
            return 0
        return self.order().index(ticket) + 1

    # -- changes ---------------------------------------------------------------------------------------

    def enqueue(self, user_id: int, job_id: str) -> Ticket:
        """Add a job (raises QueueRefused); it starts when ``wait_turn`` returns."""
        self.check_admission(user_id)
        ticket = Ticket(user_id=user_id, job_id=job_id, seq=next(self._seq), state="waiting")
        ticket._turn = asyncio.get_running_loop().create_future()
        self._waiting.append(ticket)
        self._dispatch()
        self._notify()
        return ticket

    async def wait_turn(self, ticket: Ticket) -> bool:
        """Wait until the ticket runs (True) or is cancelled while waiting (False)."""
        if ticket._turn is None:
            raise RuntimeError("ticket was not enqueued")
        try:
            await asyncio.shield(ticket._turn)
        except asyncio.CancelledError:
            if ticket._turn.cancelled():
                return False
            raise
        return True

    async def wait_changed(self) -> None:
        """Wait until the queue changes (a job starts, ends or is cancelled)."""
        await self._changed.wait()

    def release(self, ticket: Ticket) -> None:
        """The job ended (for any reason): free its slot and start the next one."""
        if ticket.state == "waiting":
            self.cancel(ticket)
            return
        if ticket.state == "running":
            self._running[ticket.user_id].remove(ticket)
            if not self._running[ticket.user_id]:
                del self._running[ticket.user_id]
            ticket.state = "done"
            self._dispatch()
            self._notify()

    def cancel(self, ticket: Ticket) -> bool:
        """Drop a waiting ticket; returns False when it is not waiting (already running or done)."""
        if ticket.state != "waiting":
            return False
        self._waiting.remove(ticket)
        ticket.state = "cancelled"
        if ticket._turn is not None and not ticket._turn.done():
            ticket._turn.cancel()
        self._notify()
        return True

    def _dispatch(self) -> None:
        while self.running < self.slots:
            running = [t.user_id for t in self._all_running()]
            ticket = self._pick(self._waiting, running, self._last_served)
            if ticket is None:
                return
            self._waiting.remove(ticket)
            ticket.state = "running"
            self._running[ticket.user_id].append(ticket)
            self._last_served[ticket.user_id] = next(self._serve_seq)
            if ticket._turn is not None and not ticket._turn.done():
                ticket._turn.set_result(None)

    def _notify(self) -> None:
        # Wake everyone waiting for a change, then arm the event again.
        self._changed.set()
        self._changed = asyncio.Event()

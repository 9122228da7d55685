"""Graceful shutdown on SIGTERM / SIGINT.

The first signal: ``/healthz`` turns 503 ("shutting down"), the job service stops accepting (new requests are told
"restarting, try again in a minute"), the users of waiting and downloading jobs are told within a second or two
(``bot.requests.drain``), then running jobs get ``SHUTDOWN_GRACE`` seconds to finish, and those still running are
stopped and told. The journal marks every told job interrupted. The caller then closes the bot (the pool, the
database, the gateway) and exits 0.

A second signal (or a SIGKILL) stops at once: the jobs left open in the journal are settled after the next start,
like jobs a crash interrupted, once the bot has looked at what Discord already shows their users.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Protocol

log = logging.getLogger(__name__)


class Drainable(Protocol):
    """The job service's shutdown seam."""

    def stop_accepting(self) -> None: ...

    async def drain(self, grace: float) -> None: ...


class HasHealth(Protocol):
    stopping: str | None


class Shutdown:
    """Turns signals into a graceful stop of ``bot`` (anything with a ``jobs`` attribute that is ``Drainable``)."""

    def __init__(self, bot: object, metrics: HasHealth | None, *, grace: float) -> None:
        self.bot = bot
        self.metrics = metrics
        self.grace = grace
        self.signals = 0
        self.requested = asyncio.Event()  # the first signal
        self.immediate = asyncio.Event()  # the second one

    def on_signal(self, sig: int = signal.SIGTERM) -> None:
        self.signals += 1
        name = signal.Signals(sig).name
        if self.signals == 1:
            running, other = self.in_flight()
            log.info("%s: stopping; %d job(s) running have up to %g s to finish, %d waiting or downloading will be "
                     "told (send it again to stop at once)", name, running, self.grace, other)
            if self.metrics is not None:
                self.metrics.stopping = "shutting down"
            self.requested.set()
        else:
            log.warning("%s again: stopping at once; unfinished jobs will be reported after the restart", name)
            self.immediate.set()

    def in_flight(self) -> tuple[int, int]:
        """(jobs running on the backend, jobs waiting or downloading) right now."""
        active = getattr(getattr(self.bot, "jobs", None), "active", {})
        running = sum(1 for job in active.values() if getattr(job, "handle", None) is not None)
        return running, len(active) - running

    async def run(self) -> None:
        """Drain the job service (bounded by the grace, plus a little for the interrupted-job messages)."""
        jobs: Drainable | None = getattr(self.bot, "jobs", None)
        if jobs is None:  # not started far enough to have taken any job
            return
        jobs.stop_accepting()
        drain = asyncio.create_task(jobs.drain(self.grace), name="drain")
        now = asyncio.create_task(self.immediate.wait())
        try:
            await asyncio.wait({drain, now}, timeout=self.grace + 30, return_when=asyncio.FIRST_COMPLETED)
        finally:
            now.cancel()
            if not drain.done():
                drain.cancel()
                await asyncio.gather(drain, return_exceptions=True)
                log.warning("drain abandoned; unfinished jobs stay in the journal for the restart notice")
            elif drain.exception() is not None:
                log.error("draining the job service failed", exc_info=drain.exception())
            else:
                log.info("all jobs finished or were told they were interrupted")

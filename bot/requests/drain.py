"""The graceful drain at a shutdown: who is told what, and in which order.

A supervisor may kill the bot a few seconds after SIGTERM whatever the grace says, so the users whose jobs will not
run (waiting or downloading) are told first, within ``NOTICE_TIME``: each status is edited, and those Discord's rate
limits hold back are named in one message per channel (``JobService.batch_notice``). Only then do the running jobs
get their grace; those still running after it are stopped and told too. The journal marks every told job
interrupted; a kill at any point leaves the rest open for the restart notice (``bot.ui.restart_notices``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.requests.jobs import ActiveJob, BatchNotice, JobJournal, StoppedJob

if TYPE_CHECKING:
    from bot.requests.service import JobService

log = logging.getLogger(__name__)

NOTICE_TIME = 2.0  # seconds for the waiting and downloading users' notices, before the running jobs' grace counts


async def drain(jobs: JobService, grace: float, *, notice_time: float = NOTICE_TIME) -> None:
    """Stop accepting; stop the waiting and downloading jobs and tell their users (bounded by ``notice_time``); give
    running jobs ``grace`` seconds to finish, then stop and tell them too."""
    jobs.stop_accepting()
    waiting = [job for job in jobs.active.values() if job.handle is None]
    t0 = time.monotonic()
    for job in waiting:
        jobs.interrupt(job)
    told = await told_within(waiting, notice_time)
    late = [job for job in waiting if not job.ended.is_set()]
    batched = await tell_at_once(jobs.batch_notice, jobs.journal, late, notice_time) if late else 0
    if waiting:
        log.info("told %d of %d waiting or downloading job(s) they were stopped, in %.1f s%s", told + batched,
                 len(waiting), time.monotonic() - t0,
                 f" ({batched} in one message per channel: Discord held back their status edits)" if batched else "")
    if jobs.tasks:
        await asyncio.wait(list(jobs.tasks), timeout=grace)
    for job in list(jobs.active.values()):
        jobs.interrupt(job)
    if jobs.tasks:  # a stopped job may take the pool's NST_STOP_GRACE to end; then its user is told
        await asyncio.wait(list(jobs.tasks), timeout=jobs.settings.nst_stop_grace + 5.0)


async def told_within(jobs: Sequence[ActiveJob], timeout: float) -> int:
    """How many of ``jobs`` ended (their user told) within ``timeout`` seconds."""
    endings = [asyncio.ensure_future(job.ended.wait()) for job in jobs]
    if endings:
        await asyncio.wait(endings, timeout=timeout)
    for ending in endings:
        ending.cancel()
    return sum(1 for job in jobs if job.ended.is_set())


async def tell_at_once(notice: BatchNotice | None, journal: JobJournal, jobs: list[ActiveJob], timeout: float) -> int:
    """Name ``jobs`` in one message per channel (their status edits follow as Discord allows); how many were told."""
    if notice is None:
        return 0
    try:
        await asyncio.wait_for(notice([StoppedJob(j.channel_id, j.user_id, j.job_id) for j in jobs]), timeout)
    except Exception:
        log.exception("the shutdown notice for %d job(s) could not be posted", len(jobs))
        return 0
    for job in jobs:  # told: a stop before their status edits land must not tell them again after the restart
        if job.recorded:
            await journal.set_job_state(job.job_id, "interrupted")
    return len(jobs)

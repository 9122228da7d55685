"""The job as the service keeps it in memory (``ActiveJob``) and the journal it writes down (``JobJournal``)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from bot.requests.policy import Inputs
from nst_engine.pool.protocol import JobHandle
from nst_engine.types import LossSummary, StyleOptions


class JobJournal(Protocol):
    """Where jobs are recorded so a restart can tell their users (``bot.storage.db.Database``)."""

    async def record_job(self, job_id: str, *, user_id: int, guild_id: int | None, channel_id: int) -> None: ...

    async def set_job_state(self, job_id: str, state: str) -> None: ...

    async def set_job_status_message(self, job_id: str, *, channel_id: int, message_id: int) -> None: ...


class StoppedJob(NamedTuple):
    """A job the drain stopped before it ran, for a notice that names several at once."""

    channel_id: int
    user_id: int
    job_id: str


class BatchNotice(Protocol):
    """Tells the users of ``jobs`` in one message per channel (``bot.ui.restart_notices.BatchStoppedNotice``): for
    when Discord's rate limits hold back their status edits at a shutdown."""

    async def __call__(self, jobs: list[StoppedJob]) -> None: ...


@dataclass
class ActiveJob:
    """One request in flight, as the service keeps it: who asked, where it is, and how it ended."""

    job_id: str
    user_id: int
    guild_id: int | None
    channel_id: int = 0  # where the request came from (known at acceptance)
    started: float = field(default_factory=time.monotonic)
    options: StyleOptions | None = None  # known once the policy accepted the request
    timings: dict[str, float] = field(default_factory=dict)
    handle: JobHandle | None = None
    download: asyncio.Future[Inputs] | None = None  # cancelled by the Cancel button: a slow CDN must not delay it
    cancelled_by: str | None = None
    interrupted: bool = False  # stopped by a shutdown (drain), not by a person
    recorded: bool = False  # in the journal (from acceptance)
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # its user has their answer (the request is over)
    closed: bool = False  # out of ``active`` and its ending journaled (at delivery, or when the request ends)
    status_noted: bool = False  # the status message's place is in the journal
    origin: str = "other"  # RequestReporter.origin: prefix, slash or button
    summary: LossSummary | None = None  # set when the engine finished
    result_bytes: int = 0  # set when the result was uploaded

    @property
    def preset(self) -> str | None:
        return self.options.preset if self.options else None


def job_mark(job_id: str) -> str:
    """The job's id as every final notice shows it: a restart finds by it what the user was already told."""
    return f"(job {job_id})"

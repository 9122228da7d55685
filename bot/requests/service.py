"""The job service: one request from acceptance to delivery, top to bottom in ``JobService.handle_request``.

    cog / button ─► JobService.handle_request
                      policy (limits, options, metadata) ─► downloads ─► FairQueue ─► StyleBackend ─► delivery
                      every ending: failures.describe ─► the user's message; events ─► observers

The service is given what it uses when it is made (settings, the backend, the journal, the limits lookup) and never
calls back into the bot; the outside world hears about jobs through ``observers`` (see ``bot.events``).

Glossary of the job types, in the order a request meets them:
  request   ``StyleRequest`` (nst_engine.pool.protocol): images + StyleOptions, the backend's unit of work.
  ticket    ``Ticket`` (bot.queue): a request's place in the fair queue; it says when the request may start.
  handle    ``JobHandle`` (protocol): a submitted backend job: events, result, cancel.
  record    ``JobRecord`` (bot.db): the journal row that survives a restart, so interrupted users are told.
  ActiveJob (here): the service's bookkeeping of one request in flight: its ticket, handle, download, and who
            cancelled it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import discord

from bot.config import Settings
from bot.requests.arguments import StyleArgs
from bot.requests.downloads import Downloader
from bot.requests.events import EventKind, JobEvent, JobObserver
from bot.requests.failures import Context, describe
from bot.requests.fair_queue import FairQueue, Ticket
from bot.requests.policy import InputFile, Inputs, Refusal, Source, plan_request
from bot.requests.redelivery import Redelivery, reason
from bot.requests.reruns import RerunCache, RerunEntry, shrink_inputs
from bot.storage.limits import Limits
from bot.ui import render
from bot.ui.buttons import cancel_view, result_view
from bot.ui.reporters import Reporter, best_effort, deliver_result, preview_file, tell_failure
from nst_engine.errors import Cancelled
from nst_engine.pool.protocol import JobHandle, StyleBackend, StyleRequest
from nst_engine.types import LossSummary, StyleOptions, StyleResult

log = logging.getLogger(__name__)

SHUTTING_DOWN = "The bot is restarting and takes no new jobs right now; please send this again in a minute."
INTERRUPTED = "The bot is restarting, so this job was stopped before it finished. Please send it again in a minute."


class JobJournal(Protocol):
    """Where jobs are recorded so a restart can tell their users (``bot.db.Database``)."""

    async def record_job(self, job_id: str, *, user_id: int, guild_id: int | None, channel_id: int) -> None: ...

    async def set_job_state(self, job_id: str, state: str) -> None: ...

    async def set_job_status_message(self, job_id: str, *, channel_id: int, message_id: int) -> None: ...


LimitsLookup = Callable[[int | None], Awaitable[Limits]]  # guild id (None: a DM) -> the limits that apply


@dataclass
class ActiveJob:
    job_id: str
    user_id: int
    guild_id: int | None
    started: float = field(default_factory=time.monotonic)
    options: StyleOptions | None = None  # known once the policy accepted the request
    timings: dict[str, float] = field(default_factory=dict)
    ticket: Ticket | None = None
    handle: JobHandle | None = None
    download: asyncio.Future[Inputs] | None = None  # cancelled by the Cancel button: a slow CDN must not delay it
    cancelled_by: str | None = None
    interrupted: bool = False  # stopped by a shutdown (drain), not by a person
    cancel_button: discord.ui.View | None = None  # on every status message until the job ends
    delivering: bool = False  # the picture is made; only its delivery is left (the queue slot is free)
    status_noted: bool = False  # the status message's place is in the journal
    origin: str = "other"  # Reporter.origin: prefix, slash or button
    summary: LossSummary | None = None  # set when the engine finished
    result_bytes: int = 0  # set when the result was uploaded

    @property
    def preset(self) -> str | None:
        return self.options.preset if self.options else None


class JobService:
    """Runs requests. One instance per bot; all state is in memory except the journal."""

    def __init__(
        self,
        settings: Settings,
        backend: StyleBackend,
        journal: JobJournal,
        limits_for: LimitsLookup,
        *,
        engine_overrides: dict[str, Any] | None = None,
        observers: Sequence[JobObserver] = (),
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.journal = journal
        self.limits_for = limits_for
        self.engine_overrides = dict(engine_overrides or {})  # StyleOptions fields forced on every job (tests, dev)
        self.observers: list[JobObserver] = list(observers)
        self.downloader = Downloader(timeout=settings.download_timeout)
        self.queue = FairQueue(
            slots=lambda: backend.capacity,  # re-read: a Ray cluster grows and shrinks
            max_queue=settings.max_queue,
            user_max_running=settings.user_max_running,
            user_max_waiting=settings.user_max_waiting,
        )
        self.reruns = RerunCache(max_entries=settings.rerun_cache_size, ttl=settings.rerun_cache_ttl)
        first = settings.delivery_retry_seconds
        self.redelivery = Redelivery(delays=[first * 3**i for i in range(4)])
        self.active: dict[str, ActiveJob] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.accepting = True
        self.closing = False

    async def start(self) -> None:
        await self.downloader.start()

    def stop_accepting(self) -> None:
        """New requests are refused from now on (with SHUTTING_DOWN); those in flight carry on."""
        self.accepting = False

    async def drain(self, grace: float) -> None:
        """Graceful shutdown: stop accepting, stop waiting and downloading jobs at once, give running jobs ``grace``
        seconds to finish, then stop them too. Every stopped user is told (INTERRUPTED) and the journal marks their
        jobs interrupted, so the restart does not tell them twice."""
        self.stop_accepting()
        for job in list(self.active.values()):
            if job.handle is None:
                self._interrupt(job)
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=grace)
        for job in list(self.active.values()):
            self._interrupt(job)
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=max(5.0, grace))

    async def close(self, timeout: float = 5.0) -> None:
        """Stop at once: unfinished jobs stay 'accepted'/'running' in the journal, to be reported after restart."""
        self.accepting = False
        self.closing = True
        for job in list(self.active.values()):
            if job.handle is not None:
                job.handle.cancel()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=timeout)
        await self.downloader.close()

    # -- entry points ----------------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def submit(self, reporter: Reporter, sources: Sequence[Source], args: StyleArgs) -> asyncio.Task[None]:
        """Run a request in the background (what cogs and buttons call)."""
        return self.spawn(self.handle_request(reporter, sources, args))

    def rerun_entry(self, job_id: str) -> RerunEntry | None:
        return self.reruns.get(job_id)

    async def handle_request(self, reporter: Reporter, sources: Sequence[Source], args: StyleArgs) -> None:
        """Everything for one request; never raises (every ending becomes a message and an event)."""
        user, guild = reporter.user, reporter.guild
        job = ActiveJob(job_id=uuid.uuid4().hex[:10], user_id=user.id, guild_id=guild.id if guild else None,
                        origin=reporter.origin)
        job_id = job.job_id
        outcome: str = "error"
        kind: EventKind = "failed"
        recorded = False
        try:
            # 1. Policy: limits, fair-queue admission, options, metadata; nothing is downloaded before these pass.
            limits = await self.limits_for(job.guild_id)
            downloading = [j for j in self.active.values() if j.ticket is None and not j.delivering]
            pending = sum(1 for j in downloading if j.user_id == user.id)
            self.queue.check_admission(user.id, pending=pending, pending_total=len(downloading))
            plan = plan_request(
                sources, args, limits, max_styles=self.settings.max_styles, overrides=self.engine_overrides,
                preview_every=self.settings.preview_interval or None,
            )
            options = job.options = plan.options
            if not self.accepting:  # checked after the awaits above, so drain() sees every accepted job
                raise Refusal(SHUTTING_DOWN, reason="shutting-down")
            job.cancel_button = cancel_view(job_id)
            self.active[job_id] = job
            self._emit("accepted", job)
            # Journaled from acceptance, so a stop during the download is reported after the restart too.
            await self.journal.record_job(job_id, user_id=user.id, guild_id=job.guild_id,
                                          channel_id=_channel_id(reporter))
            recorded = True

            # 2. Inputs: download and decode the attachments.
            files = [s for s in sources if isinstance(s, InputFile)]
            # Started before the status shows its Cancel button, so a Cancel always finds a download to stop.
            job.download = asyncio.ensure_future(self.downloader.fetch(sources, limits))
            if files:
                await best_effort(reporter.status(f"Downloading {len(files)} images…", view=job.cancel_button))
                await self._note_status(job, reporter)
            inputs = await self._download(job, sources, limits)
            job.timings["download"] = time.monotonic() - job.started
            if job.cancelled_by:
                raise Cancelled(f"cancelled by {job.cancelled_by}")

            # 3. The fair queue, then the backend.
            request = StyleRequest(
                content=inputs.content, styles=list(inputs.styles), options=options, job_id=job_id,
                owner=f"{job.guild_id or 'dm'}/{user.id}", timeout=self.settings.nst_job_timeout,
            )
            job.ticket = self.queue.enqueue(user.id, job_id)
            title = plan.title
            await self._wait_turn(job, reporter, title)
            t_start = time.monotonic()
            job.timings["queued"] = t_start - job.started
            await self.journal.set_job_state(job_id, "running")
            job.handle = self.backend.submit(request)
            self._emit("started", job)
            if job.cancelled_by:
                job.handle.cancel()
            result = await self._follow(job, reporter, title)
            job.timings["ran"] = time.monotonic() - t_start
            # The worker's part is over: free its slot now, a delivery Discord delays must not hold the queue.
            self.queue.release(job.ticket)
            job.delivering = True
            job.summary = result.summary

            # 4. Delivery (the inputs are kept for the re-run buttons first); kept and tried again while Discord
            # refuses it (5xx, or 429 beyond discord.py's retries).
            self.reruns.put(job_id, RerunEntry(inputs=shrink_inputs(inputs, self.settings.max_output_side),
                                               args=replace(args, preset=options.preset), guild_id=job.guild_id))
            view = result_view(job_id, preserved_colors=args.preserve_colors)

            async def will_come(exc: BaseException, delay: float) -> None:
                await best_effort(reporter.status(
                    f"{title}\nDone, but Discord would not take the picture just now ({reason(exc)}). I'm keeping "
                    f"it and will try again in {delay:.0f} s: it will come here.", embed=None, view=None))

            async def delivered() -> None:
                self.active.pop(job_id, None)  # the user has it: nothing left to cancel
                await self.journal.set_job_state(job_id, "done")

            job.result_bytes = await self.redelivery.run(
                lambda: deliver_result(reporter, result, job_id=job_id, view=view, on_sent=delivered),
                job_id=job_id, on_retry=will_come)
            outcome, kind = "done", "done"
        except asyncio.CancelledError:
            outcome, kind = "interrupted", "interrupted"
            raise
        except Exception as exc:
            outcome, kind = await self._end_badly(job, reporter, exc)
        finally:
            self.active.pop(job_id, None)
            if job.ticket is not None:
                self.queue.release(job.ticket)
            await self._journal_outcome(job, recorded, kind)
            job.timings["total"] = time.monotonic() - job.started
            self._emit(kind, job, reason=None if kind == "done" else outcome)
            log.info(
                "job %s user=%s guild=%s preset=%s outcome=%s download=%.1fs queued=%.1fs ran=%.1fs total=%.1fs",
                job_id, user.id, job.guild_id or "dm", job.preset or "?", outcome,
                job.timings.get("download", 0.0), job.timings.get("queued", 0.0), job.timings.get("ran", 0.0),
                job.timings["total"],
                extra={"job_id": job_id, "user_id": user.id, "guild_id": job.guild_id, "preset": job.preset,
                       "seconds": round(job.timings["total"], 3), "outcome": outcome, "origin": job.origin},
            )

    def cancel(self, job_id: str, *, by: discord.abc.User, moderator: bool) -> str:
        """Cancel a job for ``by``; returns a sentence for them."""
        job = self.active.get(job_id)
        if job is None:
            return "That job is no longer running."
        if job.user_id != by.id and not moderator:
            return "Only the person who started this job (or a moderator with Manage Messages) can cancel it."
        if job.cancelled_by:
            return "This job is already being cancelled."
        return "Cancelled." if self._stop(job, "you" if job.user_id == by.id else by.display_name) else "Cancelling…"

    # -- steps -----------------------------------------------------------------------------------------

    def _stop(self, job: ActiveJob, by: str) -> bool:
        """Stop a job wherever it is; True when it stopped at once (waiting or downloading)."""
        job.cancelled_by = by
        if job.ticket is not None and self.queue.cancel(job.ticket):
            return True
        if job.download is not None and job.download.cancel():
            return True
        if job.handle is not None:
            job.handle.cancel()
        return False

    def _interrupt(self, job: ActiveJob) -> None:
        if not job.interrupted:
            job.interrupted = True
            self._stop(job, "a restart")

    async def _download(self, job: ActiveJob, sources: Sequence[Source], limits: Limits) -> Inputs:
        """The downloader's fetch as a task the Cancel button can stop at once."""
        if job.download is None:
            job.download = asyncio.ensure_future(self.downloader.fetch(sources, limits))
        try:
            return await job.download
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if job.download.cancelled() and job.cancelled_by and not (task and task.cancelling()):
                raise Cancelled(f"cancelled by {job.cancelled_by}") from None
            job.download.cancel()
            raise

    async def _wait_turn(self, job: ActiveJob, reporter: Reporter, title: str) -> None:
        assert job.ticket is not None
        turn = asyncio.ensure_future(self.queue.wait_turn(job.ticket))
        shown = -1
        try:
            while not turn.done():
                pos = self.queue.position(job.ticket)
                if pos and pos != shown:
                    shown = pos
                    self._emit("queued", job, position=pos)
                    await best_effort(reporter.status(render.queued_text(pos, title=title),
                                                      view=job.cancel_button))
                changed = asyncio.ensure_future(self.queue.wait_changed())
                await asyncio.wait([turn, changed], return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
            if not await turn:
                raise Cancelled("cancelled while waiting")
        finally:
            turn.cancel()

    async def _note_status(self, job: ActiveJob, reporter: Reporter) -> None:
        """Journal where the status message is (once), so a restart can update it."""
        ref = reporter.status_ref
        if ref is not None and not job.status_noted:
            job.status_noted = True
            await self.journal.set_job_status_message(job.job_id, channel_id=ref[0], message_id=ref[1])

    async def _follow(self, job: ActiveJob, reporter: Reporter, title: str) -> StyleResult:
        """Relay progress (status edits at most every ``progress_edit_interval``) until the result."""
        assert job.handle is not None
        await best_effort(reporter.status(f"{title}\nStarting…", view=job.cancel_button))
        await self._note_status(job, reporter)
        interval = self.settings.progress_edit_interval
        last_edit = time.monotonic()
        last_preview = 0.0
        pending: asyncio.Task[None] | None = None
        async for event in job.handle.events():
            self._emit("progress", job, progress=event)
            now = time.monotonic()
            if now - last_edit < interval or (pending is not None and not pending.done()):
                continue
            last_edit = now
            files: list[discord.File] = []
            preview = preview_file(event) if now - last_preview >= self.settings.preview_interval > 0 else None
            if preview is not None:
                last_preview = now
                files = [preview]
            pending = asyncio.create_task(best_effort(reporter.status(
                render.progress_text(event, title=title), view=job.cancel_button, files=files)))
        result = await job.handle.result()
        if pending is not None and not pending.done():
            await asyncio.wait([pending], timeout=5)
        return result

    async def _end_badly(self, job: ActiveJob, reporter: Reporter, exc: Exception) -> tuple[str, EventKind]:
        """Tell the user how the request ended (from the failure table); returns (outcome, event kind)."""
        failure = describe(exc, Context(job_timeout=self.settings.nst_job_timeout))
        if job.interrupted:
            await tell_failure(reporter, INTERRUPTED, title="Interrupted")
            return "interrupted", "interrupted"
        if self.closing and failure.outcome in ("pool-closed", "crashed"):
            return "interrupted", "interrupted"  # shutting down: the journal keeps it open for the restart notice
        if not failure.expected:
            log.exception("job %s failed unexpectedly", job.job_id, exc_info=exc)
        if failure.outcome == "cancelled":
            await best_effort(reporter.status(f"Cancelled by {job.cancelled_by or 'you'}.", embed=None, view=None))
            return "cancelled", "cancelled"
        await tell_failure(reporter, failure.message, title=failure.title)
        return failure.outcome, "refused" if failure.refused else "failed"

    async def _journal_outcome(self, job: ActiveJob, recorded: bool, kind: EventKind) -> None:
        if not recorded or self.closing or (kind == "interrupted" and not job.interrupted):
            return  # left open: the restart tells the user
        state = {"done": "done", "interrupted": "interrupted"}.get(kind, "failed")
        try:
            await self.journal.set_job_state(job.job_id, state)
        except Exception:
            log.exception("could not update job %s in the journal", job.job_id)

    def _emit(self, kind: EventKind, job: ActiveJob, **details: Any) -> None:
        if kind == "done":
            details.update(summary=job.summary, result_bytes=job.result_bytes)
        event = JobEvent(kind=kind, job_id=job.job_id, user_id=job.user_id, guild_id=job.guild_id,
                         preset=job.preset, timings=dict(job.timings), origin=job.origin, **details)
        for observer in list(self.observers):
            try:
                observer(event)
            except Exception:
                log.exception("job observer %r failed on %s", observer, kind)


def _channel_id(reporter: Reporter) -> int:
    channel_id = getattr(reporter.channel, "id", None)
    if not isinstance(channel_id, int):
        raise TypeError("the reporter's channel has no id")
    return channel_id

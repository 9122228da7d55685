"""The job service: one request from acceptance to delivery, top to bottom in ``JobService.handle_request``.

    cog / button ─► JobService.handle_request
                      policy (limits, options, metadata) ─► downloads ─► FairQueue ─► StyleBackend ─► delivery
                      every ending: failures.describe ─► the user's message; events ─► observers

The service is given what it uses when it is made (settings, the backend, the journal, the limits lookup) and never
calls back into the bot; the user hears through the request's reporter (``RequestReporter``), the outside world
through ``observers`` (``bot.requests.events``). The job types are in docs/architecture.md (glossary).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import replace
from typing import Any

import discord

from bot.config import Settings
from bot.requests.arguments import StyleArgs
from bot.requests.downloads import Downloader
from bot.requests.drain import NOTICE_TIME, drain
from bot.requests.events import EventKind, JobEvent, JobObserver
from bot.requests.failures import Context, describe
from bot.requests.fair_queue import FairQueue
from bot.requests.jobs import ActiveJob, BatchNotice, JobJournal, job_mark
from bot.requests.policy import InputFile, Inputs, Refusal, Source, fit_animation, job_title, plan_request, source_name
from bot.requests.redelivery import Redelivery, reason
from bot.requests.reporter import RequestReporter
from bot.requests.reruns import RerunCache, RerunInputs, shrink_inputs
from bot.storage.limits import Limits
from nst_engine.animation import clip_cost
from nst_engine.errors import Cancelled
from nst_engine.pool.protocol import StyleBackend, StyleRequest
from nst_engine.types import StyleResult

log = logging.getLogger(__name__)

SHUTTING_DOWN = "The bot is restarting and takes no new jobs right now; please send this again in a minute."
INTERRUPTED = "The bot is restarting, so this job was stopped before it finished. Please send it again in a minute."


class JobService:
    """Runs requests. One instance per bot; all state is in memory except the journal."""

    def __init__(
        self,
        settings: Settings,
        backend: StyleBackend,
        journal: JobJournal,
        limits_for: Callable[[int | None], Awaitable[Limits]],  # guild id (None: a DM) -> the limits that apply
        *,
        engine_overrides: dict[str, Any] | None = None,
        observers: Sequence[JobObserver] = (),
        batch_notice: BatchNotice | None = None,
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.journal = journal
        self.limits_for = limits_for
        self.engine_overrides = dict(engine_overrides or {})  # StyleOptions fields forced on every job (tests, dev)
        self.observers: list[JobObserver] = list(observers)
        self.batch_notice = batch_notice  # at a shutdown, for the notices Discord's rate limits hold back
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

    async def drain(self, grace: float, *, notice_time: float = NOTICE_TIME) -> None:
        """Graceful shutdown (``bot.requests.drain``): the waiting and downloading users are told at once, running
        jobs get ``grace`` seconds to finish, then they are stopped and told too."""
        await drain(self, grace, notice_time=notice_time)

    async def close(self, timeout: float = 5.0) -> None:
        """Stop at once: unfinished jobs stay open in the journal, to be settled after the restart."""
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

    def submit(self, reporter: RequestReporter, sources: Sequence[Source], args: StyleArgs) -> asyncio.Task[None]:
        """Run a request in the background (what cogs and buttons call)."""
        return self.spawn(self.handle_request(reporter, sources, args))

    def rerun_inputs(self, job_id: str) -> RerunInputs | None:
        return self.reruns.get(job_id)

    async def handle_request(self, reporter: RequestReporter, sources: Sequence[Source], args: StyleArgs) -> None:
        """Everything for one request; never raises (every ending becomes a message and an event)."""
        job = ActiveJob(job_id=uuid.uuid4().hex[:10], user_id=reporter.user_id, guild_id=reporter.guild_id,
                        channel_id=reporter.channel_id, origin=reporter.origin)
        outcome: str = "error"
        kind: EventKind = "failed"
        try:
            result, inputs = await self._make(job, reporter, sources, args)
            job.summary = result.summary

            # 4. Delivery (the inputs are kept for the re-run buttons first); kept and tried again while Discord
            # refuses it (5xx, or 429 beyond discord.py's retries).
            options = job.options
            assert options is not None
            self.reruns.put(job.job_id, RerunInputs(inputs=shrink_inputs(inputs, self.settings.max_output_side),
                                                    args=replace(args, preset=options.preset), guild_id=job.guild_id))

            async def will_come(exc: BaseException, delay: float) -> None:
                await reporter.retrying(reason(exc), delay)

            if job.recorded:  # from here Discord may show the result: a restart looks there before saying "lost"
                await self.journal.set_job_state(job.job_id, "delivering")
            job.result_bytes = await self.redelivery.run(
                lambda: reporter.deliver(result, on_sent=lambda: self._close(job, "done")),
                job_id=job.job_id, on_retry=will_come)
            outcome, kind = "done", "done"
        except asyncio.CancelledError:
            outcome, kind = "interrupted", "interrupted"
            raise
        except Exception as exc:
            outcome, kind = await self._end_badly(job, reporter, exc)
        finally:
            if not job.closed:  # a delivered job was closed the moment Discord had the picture
                await self._close(job, kind)
            job.ended.set()
            job.timings["total"] = time.monotonic() - job.started
            self._emit(kind, job, reason=None if kind == "done" else outcome)
            log.info(
                "job %s user=%s guild=%s preset=%s outcome=%s download=%.1fs queued=%.1fs ran=%.1fs total=%.1fs",
                job.job_id, job.user_id, job.guild_id or "dm", job.preset or "?", outcome,
                job.timings.get("download", 0.0), job.timings.get("queued", 0.0), job.timings.get("ran", 0.0),
                job.timings["total"],
                extra={"job_id": job.job_id, "user_id": job.user_id, "guild_id": job.guild_id, "preset": job.preset,
                       "seconds": round(job.timings["total"], 3), "outcome": outcome, "origin": job.origin},
            )

    async def _make(
        self, job: ActiveJob, reporter: RequestReporter, sources: Sequence[Source], args: StyleArgs
    ) -> tuple[StyleResult, Inputs]:
        """Steps 1 to 3: the picture, and the inputs it was made from. Whatever the job held in the fair queue is
        released here, before delivery: a delivery Discord delays must not hold the queue."""
        job_id = job.job_id
        try:
            # 1. Policy: limits, fair-queue admission, options, metadata; nothing is downloaded before these pass.
            limits = await self.limits_for(job.guild_id)
            self.queue.admit(job.user_id, job_id)
            options = job.options = plan_request(
                sources, args, limits, max_styles=self.settings.max_styles, overrides=self.engine_overrides,
                preview_every=self.settings.preview_interval or None,
            )
            if not self.accepting:  # checked after the awaits above, so drain() sees every accepted job
                raise Refusal(SHUTTING_DOWN, reason="shutting-down")
            reporter.accepted(job_id, title=job_title(options, [source_name(s) for s in sources]),
                              preserve_colors=args.preserve_colors)
            self.active[job_id] = job
            self._emit("accepted", job)
            # Journaled from acceptance, so a stop during the download is reported after the restart too.
            await self.journal.record_job(job_id, user_id=job.user_id, guild_id=job.guild_id,
                                          channel_id=reporter.channel_id)
            job.recorded = True

            # 2. Inputs: download and decode the attachments.
            files = [s for s in sources if isinstance(s, InputFile)]
            # Started before the status shows its Cancel button, so a Cancel always finds a download to stop.
            job.download = asyncio.ensure_future(self.downloader.fetch(sources, limits, shorten=args.fit))
            if files:
                await reporter.downloading(len(files))
                await self._note_status(job, reporter)
            inputs = await self._download(job, sources, limits, shorten=args.fit)
            job.timings["download"] = time.monotonic() - job.started
            if job.cancelled_by:
                raise Cancelled(f"cancelled by {job.cancelled_by}")
            options = job.options = fit_animation(inputs, options, limits, fit_it=args.fit)

            # 3. The fair queue, then the backend (an animation's time limit grows with its frames).
            request = StyleRequest(
                content=inputs.content, styles=list(inputs.styles), options=options, job_id=job_id,
                owner=f"{job.guild_id or 'dm'}/{job.user_id}", clip=inputs.clip,
                timeout=self.settings.nst_job_timeout * clip_cost(inputs.clip),
            )
            self.queue.enqueue(job.user_id, job_id)
            await self._wait_turn(job, reporter)
            t_start = time.monotonic()
            job.timings["queued"] = t_start - job.started
            await self.journal.set_job_state(job_id, "running")
            job.handle = self.backend.submit(request)
            self._emit("started", job)
            if job.cancelled_by:
                job.handle.cancel()
            result = await self._follow(job, reporter)
            job.timings["ran"] = time.monotonic() - t_start
            result.summary = replace(result.summary, notes=(*result.summary.notes, *inputs.notes))
            return result, inputs
        finally:
            self.queue.release(job_id)

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
        if self.queue.cancel(job.job_id):
            return True
        if job.download is not None and job.download.cancel():
            return True
        if job.handle is not None:
            job.handle.cancel()
        return False

    def interrupt(self, job: ActiveJob) -> None:
        """Stop a job because the bot is shutting down (its user is told INTERRUPTED)."""
        if not job.interrupted:
            job.interrupted = True
            self._stop(job, "a restart")

    async def _download(self, job: ActiveJob, sources: Sequence[Source], limits: Limits, *, shorten: bool) -> Inputs:
        """The downloader's fetch as a task the Cancel button can stop at once."""
        if job.download is None:
            job.download = asyncio.ensure_future(self.downloader.fetch(sources, limits, shorten=shorten))
        try:
            return await job.download
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if job.download.cancelled() and job.cancelled_by and not (task and task.cancelling()):
                raise Cancelled(f"cancelled by {job.cancelled_by}") from None
            job.download.cancel()
            raise

    async def _wait_turn(self, job: ActiveJob, reporter: RequestReporter) -> None:
        turn = asyncio.ensure_future(self.queue.wait_turn(job.job_id))
        shown = -1
        try:
            while not turn.done():
                pos = self.queue.position(job.job_id)
                if pos and pos != shown:
                    shown = pos
                    self._emit("queued", job, position=pos)
                    await reporter.queued(pos)
                changed = asyncio.ensure_future(self.queue.wait_changed())
                await asyncio.wait([turn, changed], return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
            if not await turn:
                raise Cancelled("cancelled while waiting")
        finally:
            turn.cancel()

    async def _note_status(self, job: ActiveJob, reporter: RequestReporter) -> None:
        """Journal where the status message is (once), so a restart can update it."""
        ref = reporter.status_ref
        if ref is not None and not job.status_noted:
            job.status_noted = True
            await self.journal.set_job_status_message(job.job_id, channel_id=ref[0], message_id=ref[1])

    async def _follow(self, job: ActiveJob, reporter: RequestReporter) -> StyleResult:
        """Relay progress (status edits at most every ``progress_edit_interval``) until the result."""
        assert job.handle is not None
        await reporter.starting()
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
            preview = event.preview is not None and now - last_preview >= self.settings.preview_interval > 0
            if preview:
                last_preview = now
            pending = asyncio.create_task(reporter.progress(event, preview=preview))
        result = await job.handle.result()
        if pending is not None and not pending.done():
            await asyncio.wait([pending], timeout=5)
        return result

    async def _end_badly(self, job: ActiveJob, reporter: RequestReporter, exc: Exception) -> tuple[str, EventKind]:
        """Tell the user how the request ended (from the failure table); returns (outcome, event kind)."""
        failure = describe(exc, Context(job_timeout=self.settings.nst_job_timeout))
        if job.interrupted:
            await reporter.failed(f"{INTERRUPTED} {job_mark(job.job_id)}", title="Interrupted")
            return "interrupted", "interrupted"
        if self.closing and failure.outcome in ("pool-closed", "crashed"):
            return "interrupted", "interrupted"  # shutting down: the journal keeps it open for the restart notice
        if not failure.expected:
            log.exception("job %s failed unexpectedly", job.job_id, exc_info=exc)
        if failure.outcome == "cancelled":
            await reporter.cancelled(job.cancelled_by or "you")
            return "cancelled", "cancelled"
        await reporter.failed(failure.message, title=failure.title)
        return failure.outcome, "refused" if failure.refused else "failed"

    async def _close(self, job: ActiveJob, kind: EventKind) -> None:
        """The request's one cleanup: it leaves ``active`` (nothing left to cancel) and the journal gets its ending,
        unless the journal keeps it open for the restart notice."""
        job.closed = True
        self.active.pop(job.job_id, None)
        if not job.recorded:
            return
        if kind != "done" and (self.closing or (kind == "interrupted" and not job.interrupted)):
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


"""Metrics and graceful shutdown against the real job service and the in-memory backend (milliseconds)."""

from __future__ import annotations

import asyncio
import signal
import time
from types import SimpleNamespace

from bot.config import Settings
from bot.ops.metrics import BotMetrics, GpuMemory, instrument
from bot.ops.shutdown import Shutdown
from bot.requests.arguments import StyleArgs
from bot.requests.events import JobEvent
from bot.requests.jobs import StoppedJob, job_mark
from bot.requests.service import INTERRUPTED, JobService
from bot.storage.db import Database
from bot.storage.limits import Limits, LimitsLookup
from tests.bot.memory_backend import MemoryBackend
from tests.bot.test_bot_flow import SOURCES, MemoryReporter, User, service, settings, until
from tests.ops.metrics_text import sample, total

__all__ = ["settings"]  # fixtures


async def test_job_events_become_metrics(settings: Settings, db: Database) -> None:
    events: list[JobEvent] = []
    backend = MemoryBackend(auto_finish=False)
    jobs = service(settings, db, backend, events)
    metrics = BotMetrics(gpu=GpuMemory(command=""))
    instrument(SimpleNamespace(jobs=jobs, backend=backend), metrics)  # subscribes to the service's events
    assert metrics.observe in jobs.observers

    jobs.submit(MemoryReporter(User(1)), SOURCES, StyleArgs(preset="fast"))
    await until(lambda: len(backend.jobs) == 1, "the job runs")
    text = metrics.exposition().decode()
    assert sample(text, "nst_jobs_running") == 1 and sample(text, "nst_queue_depth") == 0
    jobs.submit(MemoryReporter(User(2)), SOURCES, StyleArgs(preset="fast"))
    await until(lambda: jobs.queue.waiting == 1, "the second job waits")
    assert sample(metrics.exposition().decode(), "nst_queue_depth") == 1
    await jobs.handle_request(MemoryReporter(User(3)), SOURCES[:1], StyleArgs())  # refused: one image
    backend.jobs[0].release.set()
    # (cancelled once it runs: the in-memory job cancelled before its first step would never end)
    await until(lambda: any(e.kind == "progress" and e.user_id == 2 for e in events), "the second job runs")
    jobs.cancel(backend.jobs[1].job_id, by=SimpleNamespace(id=2, display_name="two"), moderator=False)  # type: ignore[arg-type]
    await until(lambda: sum(e.final for e in events) == 3, "three requests ended")

    text = metrics.exposition().decode()
    assert sample(text, "nst_requests_total", {"kind": "other", "outcome": "done", "reason": ""}) == 1
    assert sample(text, "nst_requests_total", {"outcome": "refused", "reason": "too-few-images"}) == 1
    assert sample(text, "nst_requests_total", {"outcome": "cancelled", "reason": "cancelled"}) == 1
    assert total(text, "nst_requests_total") == 3
    # Timed by the engine's summary: the in-memory backend's device is "memory", 3 iterations in 0.01 s.
    assert sample(text, "nst_job_seconds_count", {"preset": "fast", "device": "memory"}) == 1
    assert sample(text, "nst_engine_iterations_per_second", {"device": "memory"}) == 300
    assert (sample(text, "nst_result_bytes_total") or 0) > 0
    assert sample(text, "nst_downloaded_bytes_total") == 0  # ImageInput sources: nothing to download
    await jobs.close()


async def test_first_signal_drains_second_stops_at_once(settings: Settings, db: Database) -> None:
    events: list[JobEvent] = []
    backend = MemoryBackend(auto_finish=False)
    jobs = service(settings, db, backend, events)
    metrics = BotMetrics(gpu=GpuMemory(command=""))
    reporter = MemoryReporter(User(1))
    jobs.submit(reporter, SOURCES, StyleArgs())
    await until(lambda: len(backend.jobs) == 1, "the job runs")

    shutdown = Shutdown(SimpleNamespace(jobs=jobs), metrics, grace=30)
    assert shutdown.in_flight() == (1, 0)
    shutdown.on_signal(signal.SIGTERM)
    assert shutdown.requested.is_set() and not shutdown.immediate.is_set()
    assert metrics.health().reason == "shutting down"
    drain = asyncio.create_task(shutdown.run())
    await asyncio.sleep(0.05)
    assert not drain.done() and not jobs.accepting  # waiting for the running job, up to the grace
    started = time.monotonic()
    shutdown.on_signal(signal.SIGINT)  # the impatient operator
    await asyncio.wait_for(drain, 5)
    assert time.monotonic() - started < 2
    assert not reporter.sent and not any(INTERRUPTED in s for s in reporter.statuses)  # not told now: the restart notice will
    assert [r.job_id for r in await db.unfinished_jobs()] == [backend.jobs[0].job_id]
    await jobs.close()


async def test_a_short_grace_interrupts_and_tells(settings: Settings, db: Database) -> None:
    events: list[JobEvent] = []
    backend = MemoryBackend(auto_finish=False)
    jobs = service(settings, db, backend, events)
    reporter = MemoryReporter(User(1))
    jobs.submit(reporter, SOURCES, StyleArgs())
    await until(lambda: len(backend.jobs) == 1, "the job runs")
    shutdown = Shutdown(SimpleNamespace(jobs=jobs), None, grace=0.05)
    shutdown.on_signal(signal.SIGTERM)
    await asyncio.wait_for(shutdown.run(), 10)
    assert reporter.statuses[-1] == f"{INTERRUPTED} {job_mark(backend.jobs[0].job_id)}"
    assert [e.kind for e in events if e.final] == ["interrupted"]
    assert await db.unfinished_jobs() == []
    await jobs.close()


class HeldBackReporter(MemoryReporter):
    """A user whose failure notice Discord's rate limits hold back (the edit waits in discord.py's queue)."""

    def __init__(self, user: User, release: asyncio.Event) -> None:
        super().__init__(user)
        self.release = release

    async def failed(self, message: str, *, title: str) -> None:
        await self.release.wait()
        await super().failed(message, title=title)


async def test_waiting_users_are_told_before_the_grace_counts_even_when_discord_holds_edits_back(
        settings: Settings, db: Database, caplog) -> None:
    caplog.set_level("INFO", logger="bot.requests.drain")
    release = asyncio.Event()
    told_at_once: list[list[StoppedJob]] = []

    async def batch(jobs: list[StoppedJob]) -> None:
        told_at_once.append(jobs)

    backend = MemoryBackend(auto_finish=False)
    jobs = JobService(settings, backend, db, LimitsLookup(Limits.from_settings(settings), db),
                      engine_overrides={"size": 48}, batch_notice=batch)
    jobs.submit(MemoryReporter(User(1)), SOURCES, StyleArgs())
    await until(lambda: len(backend.jobs) == 1, "the first job runs")
    quick, held = MemoryReporter(User(2)), HeldBackReporter(User(3), release)
    jobs.submit(quick, SOURCES, StyleArgs())
    jobs.submit(held, SOURCES, StyleArgs())
    await until(lambda: jobs.queue.waiting == 2, "two jobs wait")
    waiting = {job.user_id: job.job_id for job in jobs.active.values() if job.handle is None}

    drain = asyncio.create_task(jobs.drain(grace=30, notice_time=1.0))
    await until(lambda: bool(told_at_once), "the held-back user is named in one message", timeout=3)
    assert StoppedJob(555, 3, waiting[3]) in told_at_once[0]  # the quick one is told by its own status (in time)
    assert quick.statuses[-1] == f"{INTERRUPTED} {job_mark(waiting[2])}"
    await until(lambda: "told 2 of 2 waiting or downloading job(s)" in caplog.text, "the log line", timeout=3)
    assert f"{len(told_at_once[0])} in one message per channel" in caplog.text
    assert not drain.done()  # the grace for the running job counts only now
    release.set()
    backend.jobs[0].release.set()
    await asyncio.wait_for(drain, 5)
    assert held.statuses[-1] == f"{INTERRUPTED} {job_mark(waiting[3])}"  # the status follows as Discord allows
    assert await db.unfinished_jobs() == []
    await jobs.close()

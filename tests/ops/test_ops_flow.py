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
from bot.requests.jobs import job_mark
from bot.requests.service import INTERRUPTED
from bot.storage.db import Database
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

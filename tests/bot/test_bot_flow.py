"""The request flow of the job service (accept, refuse, queue, progress, cancel, deliver, fail, drain), against the
in-memory backend: no Discord, no processes, milliseconds per test."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import discord
import pytest
from PIL import Image

from bot.config import Settings
from bot.requests.arguments import StyleArgs
from bot.requests.events import JobEvent
from bot.requests.policy import ImageInput
from bot.requests.service import INTERRUPTED, SHUTTING_DOWN, JobService
from bot.storage.db import Database
from bot.storage.limits import Limits, LimitsLookup
from bot.ui.reporters import FileFactory, Reporter
from nst_engine.errors import WorkerCrashedError
from nst_engine.pool.protocol import JobHandle, StyleBackend
from tests.bot.memory_backend import MemoryBackend


class User:
    def __init__(self, user_id: int, name: str = "user") -> None:
        self.id = user_id
        self.display_name = name
        self.mention = f"<@{user_id}>"
        self.display_avatar = SimpleNamespace(url="https://cdn.invalid/avatar.png")


class MemoryReporter(Reporter):
    """Keeps what a job shows: every status text (or embed description) and every posted result."""

    def __init__(self, user: User, *, upload_limit: int = 8 * 1024 * 1024) -> None:
        self.user = user  # a plain stand-in for discord.User: only its fields are read
        self.guild = None
        self.channel = SimpleNamespace(id=555)  # only the id is read
        self.limit = upload_limit
        self.statuses: list[str] = []
        self.sent: list[dict[str, Any]] = []

    @property
    def upload_limit(self) -> int:
        return self.limit

    async def status(self, content: str | None = None, *, embed: discord.Embed | None = None,
                     view: discord.ui.View | None = None, files: Sequence[discord.File] = ()) -> None:
        self.statuses.append(content if content is not None else (embed.description or "") if embed else "")

    async def send(self, *, content: str, embeds: list[discord.Embed], files: FileFactory,
                   view: discord.ui.View | None) -> discord.Message | None:
        self.sent.append({"content": content, "embeds": embeds, "files": files(), "view": view})
        return None


def picture(seed: int) -> Image.Image:
    return Image.new("RGB", (64, 48), (seed * 40 % 256, 90, 160))


SOURCES = [ImageInput("content.png", picture(1)), ImageInput("style.png", picture(2))]


async def until(predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Let the event loop run until ``predicate`` holds (bounded and generous: the machine may be busy)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"timed out waiting for: {what}")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, database_path=tmp_path / "bot.sqlite3", progress_edit_interval=0.5,
                    user_max_running=1, user_max_waiting=1, max_queue=3)


def service(settings: Settings, db: Database, backend: StyleBackend, events: list[JobEvent]) -> JobService:
    jobs = JobService(settings, backend, db, LimitsLookup(Limits.from_settings(settings), db),
                      engine_overrides={"size": 48}, observers=[events.append])
    return jobs


def kinds(events: list[JobEvent], job_id: str | None = None) -> list[str]:
    return [e.kind for e in events if job_id is None or e.job_id == job_id]


async def test_protocols_are_the_real_ones() -> None:
    backend = MemoryBackend()
    assert isinstance(backend, StyleBackend)
    from nst_engine.pool.protocol import StyleRequest
    job = backend.submit(StyleRequest(picture(1), [picture(2)]))
    assert isinstance(job, JobHandle)
    await job.result()


async def test_accept_run_deliver(settings: Settings, db: Database) -> None:
    events: list[JobEvent] = []
    backend = MemoryBackend(steps=3)
    jobs = service(settings, db, backend, events)
    reporter = MemoryReporter(User(1))
    await jobs.handle_request(reporter, SOURCES, StyleArgs(strength=2))
    assert kinds(events) == ["accepted", "started", "progress", "progress", "progress", "done"]
    done = events[-1]
    assert done.user_id == 1 and done.guild_id is None and done.preset == "balanced" and done.final
    assert {"queued", "ran", "total"} <= set(done.timings)
    [result] = reporter.sent
    assert result["content"] == "<@1> here is your picture."
    assert result["files"][0].filename.startswith("styled.")
    assert reporter.statuses[-1] == "Done: the result is below."
    entry = jobs.rerun_inputs(done.job_id)
    assert entry is not None and entry.args.strength == 2 and entry.inputs.names == ["content.png", "style.png"]
    assert await db.unfinished_jobs() == []
    # The engine overrides given to the service reach the backend's request.
    assert backend.jobs[0].request.options.size == 48 and backend.jobs[0].request.options.strength == 2


async def test_refusals_reach_the_user_and_the_observers(settings: Settings, db: Database) -> None:
    events: list[JobEvent] = []
    backend = MemoryBackend()
    jobs = service(settings, db, backend, events)
    reporter = MemoryReporter(User(1))
    await jobs.handle_request(reporter, SOURCES[:1], StyleArgs())
    assert "I need two images" in reporter.statuses[-1]
    await jobs.handle_request(reporter, SOURCES, StyleArgs(preset="turbo"))
    assert "`turbo` preset is not allowed here" in reporter.statuses[-1]
    assert kinds(events) == ["refused", "refused"]
    assert [e.reason for e in events] == ["too-few-images", "preset-not-allowed"]
    assert backend.jobs == [] and not jobs.active


async def test_fair_queue_tells_the_position_then_runs(settings: Settings, db: Database) -> None:
    events: list[JobEvent] = []
    backend = MemoryBackend(auto_finish=False)
    jobs = service(settings, db, backend, events)
    first, second = MemoryReporter(User(1)), MemoryReporter(User(2))
    a = jobs.submit(first, SOURCES, StyleArgs())
    await until(lambda: len(backend.jobs) == 1, "first job started")
    b = jobs.submit(second, SOURCES, StyleArgs())
    await until(lambda: any(e.kind == "queued" for e in events), "second job queued")
    queued = next(e for e in events if e.kind == "queued")
    assert queued.user_id == 2 and queued.position == 1
    assert "Queued: you are next." in second.statuses[-1]
    backend.jobs[0].release.set()
    await until(lambda: len(backend.jobs) == 2, "second job started")
    backend.jobs[1].release.set()
    await asyncio.gather(a, b)
    assert len(first.sent) == 1 and len(second.sent) == 1


async def test_cancel_while_running_and_while_waiting(settings: Settings, db: Database) -> None:
    events: list[JobEvent] = []
    backend = MemoryBackend(auto_finish=False)
    jobs = service(settings, db, backend, events)
    owner, other = User(1, "owner"), User(2, "other")
    running = jobs.submit(MemoryReporter(owner), SOURCES, StyleArgs())
    await until(lambda: len(backend.jobs) == 1, "job started")
    waiting_reporter = MemoryReporter(other)
    waiting = jobs.submit(waiting_reporter, SOURCES, StyleArgs())
    await until(lambda: any(e.kind == "queued" for e in events), "second job queued")
    run_id = backend.jobs[0].job_id
    wait_id = next(e.job_id for e in events if e.kind == "queued")

    assert jobs.cancel(run_id, by=other, moderator=False).startswith("Only the person who started")
    assert jobs.cancel(wait_id, by=owner, moderator=True) == "Cancelled."
    assert jobs.cancel(run_id, by=owner, moderator=False) == "Cancelling…"
    assert jobs.cancel(run_id, by=owner, moderator=False) == "This job is already being cancelled."
    await asyncio.gather(running, waiting)
    assert waiting_reporter.statuses[-1] == "Cancelled by owner."
    assert kinds(events, run_id)[-1] == "cancelled" and kinds(events, wait_id)[-1] == "cancelled"
    assert jobs.cancel(run_id, by=owner, moderator=False) == "That job is no longer running."
    assert not jobs.active and jobs.queue.running == 0


async def test_failures_come_from_the_table(settings: Settings, db: Database) -> None:
    events: list[JobEvent] = []
    backend = MemoryBackend(auto_finish=False)
    jobs = service(settings, db, backend, events)
    reporter = MemoryReporter(User(1))
    task = jobs.submit(reporter, SOURCES, StyleArgs())
    await until(lambda: len(backend.jobs) == 1, "job started")
    backend.jobs[0].failure = WorkerCrashedError("worker 0 died")
    backend.jobs[0].release.set()
    await task
    assert "crashed" in reporter.statuses[-1] and "send it again" in reporter.statuses[-1]
    assert events[-1].kind == "failed" and events[-1].reason == "crashed"
    assert await db.unfinished_jobs() == []  # the journal says failed, so no restart notice


async def test_observer_errors_do_not_fail_the_job(settings: Settings, db: Database) -> None:
    events: list[JobEvent] = []
    jobs = service(settings, db, MemoryBackend(), events)

    def broken(event: JobEvent) -> None:
        raise RuntimeError("metrics down")

    jobs.observers.insert(0, broken)
    reporter = MemoryReporter(User(1))
    await jobs.handle_request(reporter, SOURCES, StyleArgs())
    assert events[-1].kind == "done" and len(reporter.sent) == 1


async def test_drain_finishes_running_jobs_and_interrupts_the_rest(settings: Settings, db: Database) -> None:
    events: list[JobEvent] = []
    backend = MemoryBackend(capacity=2, auto_finish=False)
    jobs = service(settings, db, backend, events)
    finishing, stuck_reporter, waiting_reporter = (MemoryReporter(User(i)) for i in (1, 2, 3))
    assert jobs.queue.slots == 2  # the queue follows the backend's two workers
    jobs.submit(finishing, SOURCES, StyleArgs())
    jobs.submit(stuck_reporter, SOURCES, StyleArgs())
    await until(lambda: len(backend.jobs) == 2, "two jobs running")
    jobs.submit(waiting_reporter, SOURCES, StyleArgs())
    await until(lambda: any(e.kind == "queued" for e in events), "third job queued")

    backend.jobs[0].release.set()  # finishes within the grace; the other never does
    await jobs.drain(grace=0.05)
    assert len(finishing.sent) == 1
    for reporter in (stuck_reporter, waiting_reporter):
        assert reporter.statuses[-1].startswith(f"{INTERRUPTED} (job ") and not reporter.sent
    assert sorted(e.user_id for e in events if e.kind == "interrupted") == [2, 3]
    assert await db.unfinished_jobs() == []  # users were told now, not again after the restart

    late = MemoryReporter(User(4))
    await jobs.handle_request(late, SOURCES, StyleArgs())
    assert late.statuses[-1] == SHUTTING_DOWN and (events[-1].kind, events[-1].reason) == ("refused", "shutting-down")
    await jobs.close()


async def test_a_third_job_of_one_user_is_refused_by_the_queue(settings: Settings, db: Database) -> None:
    events: list[JobEvent] = []
    backend = MemoryBackend(auto_finish=False)
    jobs = service(settings, db, backend, events)
    user = User(1)
    first, second, third = (MemoryReporter(user) for _ in range(3))
    tasks = [jobs.submit(first, SOURCES, StyleArgs()), jobs.submit(second, SOURCES, StyleArgs())]
    await until(lambda: len(backend.jobs) == 1 and any(e.kind == "queued" for e in events), "one running, one queued")
    await jobs.handle_request(third, SOURCES, StyleArgs())
    assert "the limit is 1 running + 1 waiting per person" in third.statuses[-1]
    assert (events[-1].kind, events[-1].reason) == ("refused", "user-limit")
    backend.jobs[0].release.set()
    await until(lambda: len(backend.jobs) == 2, "second job started")
    backend.jobs[1].release.set()
    await asyncio.gather(*tasks)
    assert len(first.sent) == len(second.sent) == 1 and not third.sent

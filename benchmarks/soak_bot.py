"""The bot as the soak run starts it: ``python -m benchmarks.soak_bot`` (a subprocess the soak can signal).

It is the real entry point (``bot.__main__.main``: settings from the environment, database checks, the worker
pool, the shutdown path), with three things changed for the soak:

- discord.py is pointed at the fake Discord at ``SOAK_FAKE_URL`` (REST, gateway, CDN), and waits 0.05 s rather than
  2 s for guilds at start-up (the same three constants ``tests.fakediscord.pointed_at`` sets in-process);
- every job uses the engine overrides in ``SOAK_ENGINE_OVERRIDES`` (JSON, e.g. ``{"size": 48, "iterations": 2}``);
- asyncio's default thread pool and the worker pool's sender threads are filled to their fixed sizes at start-up
  (see ``setup_hook``), so that a thread more at the end of the run is a leak, not a pool that grew as designed;
- an observer writes, every second, to ``SOAK_STATS`` (JSON): the event loop's lag samples and the fair queue's
  events (enqueue, start, end, cancel), from which the soak computes lag percentiles and queue fairness.
"""

from __future__ import annotations

import asyncio
import json
import os
import runpy
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import discord
import discord.asset
import discord.gateway
import discord.http
import yarl

LAG_INTERVAL = 0.1  # seconds the probe sleeps; lag = how late it wakes


class Observer:
    """Collects what the soak measures inside the bot process and writes it to a JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lag: list[float] = []
        self.queue_events: list[tuple[str, float, int, str]] = []  # (event, monotonic time, user, job)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._probe()), asyncio.create_task(self._flush_every_second())]

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self.flush()

    def event(self, kind: str, user_id: int, job_id: str) -> None:
        self.queue_events.append((kind, time.monotonic(), user_id, job_id))

    async def _probe(self) -> None:
        while True:
            t0 = time.monotonic()
            await asyncio.sleep(LAG_INTERVAL)
            self.lag.append(max(0.0, time.monotonic() - t0 - LAG_INTERVAL))

    async def _flush_every_second(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.flush()

    def flush(self) -> None:
        data = {"pid": os.getpid(), "lag": self.lag, "queue": self.queue_events}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.path)


def watch_queue(observer: Observer) -> None:
    """Record the fair queue's decisions (class-level wrappers: wherever the bot keeps its queue)."""
    from bot.requests.fair_queue import FairQueue

    enqueue, dispatch, release, cancel = FairQueue.enqueue, FairQueue._dispatch, FairQueue.release, FairQueue.cancel

    def watched_enqueue(self: FairQueue, user_id: int, job_id: str) -> None:
        enqueue(self, user_id, job_id)
        observer.event("enqueue", user_id, job_id)
        if self.state(job_id) == "running":
            observer.event("start", user_id, job_id)

    def watched_dispatch(self: FairQueue) -> None:
        before = list(self._waiting)
        dispatch(self)
        for place in before:
            if place.state == "running":
                observer.event("start", place.user_id, place.job_id)

    def watched_release(self: FairQueue, job_id: str) -> None:
        if self.state(job_id) == "running":
            observer.event("end", self._places[job_id].user_id, job_id)
        release(self, job_id)

    def watched_cancel(self: FairQueue, job_id: str) -> bool:
        place = self._places.get(job_id)
        done = cancel(self, job_id)
        if done and place is not None:
            observer.event("cancel", place.user_id, job_id)
        return done

    # The enqueue wrapper sees tickets that start at once; the dispatch one, those that start later.
    FairQueue.enqueue = watched_enqueue  # type: ignore[method-assign]
    FairQueue._dispatch = watched_dispatch  # type: ignore[method-assign]
    FairQueue.release = watched_release  # type: ignore[method-assign]
    FairQueue.cancel = watched_cancel  # type: ignore[method-assign]


def point_at_fake(base_url: str) -> None:
    discord.http.Route.BASE = f"{base_url}/api/v10"
    ws = yarl.URL(base_url).with_scheme("ws") / "gateway"
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = ws
    discord.asset.Asset.BASE = f"{base_url}/cdn"


def main() -> int:
    point_at_fake(os.environ["SOAK_FAKE_URL"])
    overrides: dict[str, Any] = json.loads(os.environ.get("SOAK_ENGINE_OVERRIDES", "{}"))
    observer = Observer(Path(os.environ["SOAK_STATS"]))
    watch_queue(observer)

    import bot.app

    base = bot.app.StyleBot

    class SoakBot(base):  # type: ignore[valid-type, misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("engine_overrides", overrides)
            super().__init__(*args, **kwargs)
            self._connection.guild_ready_timeout = 0.05

        async def setup_hook(self) -> None:
            observer.start()
            # Fill asyncio's default thread pool to its fixed size now (it only ever grows, to min(32, cpus + 4)),
            # so the soak's thread count compares like with like: a thread more after the run is a leak.
            await asyncio.gather(*(asyncio.to_thread(time.sleep, 0.05) for _ in range(40)))
            await super().setup_hook()
            # Likewise the worker pool's own fixed-size thread pools (its job senders), created as jobs come.
            loop = asyncio.get_running_loop()
            for pool in [v for v in vars(self.backend).values() if isinstance(v, ThreadPoolExecutor)]:
                await asyncio.gather(*(loop.run_in_executor(pool, time.sleep, 0.05) for _ in range(pool._max_workers * 4)))

        async def close(self) -> None:
            try:
                await super().close()
            finally:
                observer.stop()

    bot.app.StyleBot = SoakBot  # type: ignore[misc]
    try:
        runpy.run_module("bot", run_name="__main__", alter_sys=True)  # exactly what `python -m bot` runs
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        observer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Measure the request path: which project files one ``!style`` request passes through, and how often the flow
leaves the job service for each of them.

    python -m benchmarks.request_path

One real request (two PNG attachments served on 127.0.0.1, downloaded, decoded, queued, run by a one-worker
process pool with random weights at 48 px, delivered to an in-memory reporter) under ``sys.setprofile``, on the
event loop's thread. Prints the files touched (at any depth, in first-touch order) and, per file, the calls the job
service (bot/requests/service.py) makes into it (a coroutine counts once, however often it resumes).
"""

from __future__ import annotations

import asyncio
import collections
import io
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import FrameType, SimpleNamespace
from typing import Any

import discord
from aiohttp import web
from PIL import Image

from bot.config import Settings
from bot.requests.arguments import StyleArgs
from bot.requests.policy import InputFile
from bot.requests.service import JobService
from bot.storage.db import Database
from bot.storage.limits import Limits, LimitsLookup
from bot.ui.reporters import FileFactory, Reporter
from nst_engine.pool import ProcessPoolBackend

ROOT = Path(__file__).resolve().parents[1]
PROJECT = (str(ROOT / "bot"), str(ROOT / "nst_engine"))
ORCHESTRATOR = str(ROOT / "bot" / "requests" / "service.py")


class QuietReporter(Reporter):
    """Stands in for Discord: keeps nothing, answers everything."""

    def __init__(self) -> None:
        # Plain stand-ins for discord.py's User and channel: only these fields are read on the way.
        self.user = SimpleNamespace(id=1, mention="<@1>", display_name="u",  # type: ignore[assignment]
                                    display_avatar=SimpleNamespace(url="https://cdn.invalid/a.png"))
        self.guild = None
        self.channel = SimpleNamespace(id=2)  # type: ignore[assignment]  # stand-in, as above

    async def status(self, content: str | None = None, *, embed: discord.Embed | None = None,
                     view: discord.ui.View | None = None, files: Sequence[discord.File] = ()) -> None:
        return None

    async def send(self, *, content: str, embeds: list[discord.Embed], files: FileFactory,
                   view: discord.ui.View | None) -> discord.Message | None:
        files()
        return None


def png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.effect_noise((96, 64), 40 + seed).convert("RGB").save(buf, "PNG")
    return buf.getvalue()


def rel(path: str) -> str:
    return str(Path(path).relative_to(ROOT))


async def main() -> None:
    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=png(len(request.match_info["name"])))

    app = web.Application()
    app.router.add_get("/{name}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    files = [InputFile(name, f"http://127.0.0.1:{port}/{name}", 30_000, "image/png", 96, 64)
             for name in ("content.png", "style.png")]

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(_env_file=None, database_path=Path(tmp) / "bot.sqlite3")
        db = Database(settings.database_path)
        await db.open()
        async with ProcessPoolBackend(workers=1, device="cpu", weights="random") as backend:
            jobs = JobService(settings, backend, db, LimitsLookup(Limits.from_settings(settings), db),
                              engine_overrides={"size": 48, "iterations": 2})
            await jobs.start()
            touched: dict[str, None] = {}
            out_calls: collections.Counter[str] = collections.Counter()
            seen: set[FrameType] = set()  # a coroutine's frame sends a "call" at every resumption: count it once

            def profile(frame: FrameType, event: str, arg: Any) -> None:
                if event != "call":
                    return
                name = frame.f_code.co_filename
                if not name.startswith(PROJECT):
                    return
                touched.setdefault(name)
                if frame in seen:
                    return
                seen.add(frame)
                caller = frame.f_back
                if caller is not None and caller.f_code.co_filename == ORCHESTRATOR and name != ORCHESTRATOR:
                    out_calls[name] += 1

            sys.setprofile(profile)
            try:
                await jobs.handle_request(QuietReporter(), files, StyleArgs())
            finally:
                sys.setprofile(None)
            await jobs.close()
        await db.close()
    await runner.cleanup()

    print(f"{len(touched)} project files touched by one request (any depth, first touch first):")
    for name in touched:
        print(f"  {rel(name)}")
    print(f"calls from the job service into other project files ({sum(out_calls.values())} in all):")
    for name, count in out_calls.most_common():
        print(f"  {count:3d}  {rel(name)}")


if __name__ == "__main__":
    asyncio.run(main())

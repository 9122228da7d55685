"""Helpers for the bot's end-to-end tests: settings, tiny images, a running bot on the fake Discord."""

from __future__ import annotations

import contextlib
import io
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.app import StyleBot
from bot.config import Settings
from tests.fakediscord import FakeDiscord, FakeMessage, run_discord_client

# Every job: 48 px output and 2 iterations per scale, so one job takes a second or two on a CPU.
ENGINE_OVERRIDES: dict[str, Any] = {"size": 48, "iterations": 2}
RESULT_TITLE = "Style transfer done"


def png(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    """A small noisy PNG (noise so the engine has texture to work with)."""
    rng = random.Random(seed)
    im = Image.new("RGB", (width, height))
    im.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(width * height)])
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_path": tmp_path / "bot.sqlite3",
        "progress_edit_interval": 0.5,
        "download_timeout": 5.0,
        "nst_weights": "random",
        "nst_device": "cpu",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@contextlib.asynccontextmanager
async def running_bot(
    fake: FakeDiscord, settings: Settings, backend: Any, **kwargs: Any
) -> AsyncIterator[StyleBot]:
    """A StyleBot on the fake Discord, using ``backend`` (which the caller starts and closes)."""
    kwargs.setdefault("engine_overrides", ENGINE_OVERRIDES)
    bot = StyleBot(settings, backend=backend, manage_backend=False, **kwargs)
    async with run_discord_client(bot, fake) as client:
        yield client


def is_result(msg: FakeMessage) -> bool:
    return any(e.get("title") == RESULT_TITLE for e in msg.embeds) and bool(msg.attachments)


def is_error(msg: FakeMessage) -> bool:
    return any(e.get("title") in ("Can't do that", "Queue") for e in msg.embeds)


def embed_text(msg: FakeMessage) -> str:
    """Everything an embed shows, as one string (for assertions on messages)."""
    parts = [msg.content or ""]
    for e in msg.embeds:
        parts += [e.get("title", ""), e.get("description", "")]
        parts += [f"{f['name']}: {f['value']}" for f in e.get("fields", [])]
    return "\n".join(parts)


class InlineBackend:
    """TEMPORARY stand-in until nst_engine.pool.ProcessPoolBackend lands: the real engine in a thread."""

    capacity = 1

    def __init__(self) -> None:
        self.model = None
        self.queued = 0

    async def start(self) -> None:
        import asyncio

        from nst_engine import load_vgg

        self.model = await asyncio.to_thread(load_vgg, "random", "cpu")

    def submit(self, request):  # type: ignore[no-untyped-def]
        return _InlineHandle(self, request)

    async def close(self, timeout: float = 10.0) -> None:
        pass


class _InlineHandle:
    def __init__(self, backend: InlineBackend, request: Any) -> None:
        import asyncio

        from nst_engine import stylize

        self.job_id = request.job_id
        self.state = "running"
        self._stop = False
        self._events: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def run():  # type: ignore[no-untyped-def]
            try:
                return stylize(
                    request.content, list(request.styles), options=request.options, model=backend.model,
                    progress=lambda ev: loop.call_soon_threadsafe(self._events.put_nowait, ev),
                    should_stop=lambda: self._stop,
                )
            finally:
                loop.call_soon_threadsafe(self._events.put_nowait, None)

        self._future = loop.run_in_executor(None, run)

    def position(self) -> int:
        return 0

    async def events(self):  # type: ignore[no-untyped-def]
        while (ev := await self._events.get()) is not None:
            yield ev

    async def result(self):  # type: ignore[no-untyped-def]
        return await self._future

    def cancel(self) -> None:
        self._stop = True


@pytest.fixture
async def backend() -> AsyncIterator[Any]:
    """A started style backend (random weights, CPU), closed after the test."""
    b = InlineBackend()
    await b.start()
    try:
        yield b
    finally:
        await b.close()

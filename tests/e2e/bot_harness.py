"""Helpers for the bot's end-to-end tests: settings, tiny images, a running bot on the fake Discord."""

from __future__ import annotations

import contextlib
import io
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from PIL import Image

from bot.app import StyleBot
from bot.config import Settings
from nst_engine.pool import ProcessPoolBackend
from tests.fakediscord import FakeDiscord, FakeMessage, run_discord_client, serving_fake

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


def images(seed: int) -> list[tuple[str, bytes]]:
    """A request's two attachments: a content and a style picture, different for each ``seed``."""
    return [(f"c{seed}.png", png(seed=seed)), (f"s{seed}.png", png(seed=seed + 100))]


def make_backend(**overrides: Any) -> ProcessPoolBackend:
    """The real worker pool, with random weights on the CPU: one worker, short job limit."""
    options: dict[str, Any] = {
        "workers": 1, "device": "cpu", "weights": "random", "job_timeout": 60.0, "progress_interval": 0.2,
    }
    options.update(overrides)
    return ProcessPoolBackend(**options)


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_path": tmp_path / "bot.sqlite3",
        "progress_edit_interval": 0.5,
        "download_timeout": 5.0,
        "nst_weights": "random",
        "nst_device": "cpu",
        "user_cooldown": 0,  # tests send requests back to back; the cooldown's own tests set it
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
    return msg.shown_text()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool() -> AsyncIterator[ProcessPoolBackend]:
    """One started worker pool per test module (starting one takes seconds); tests share it in turn."""
    b = make_backend()
    await b.start()
    try:
        yield b
    finally:
        await b.close()


@pytest_asyncio.fixture(loop_scope="module")
async def fake() -> AsyncIterator[FakeDiscord]:
    """A fresh fake Discord per test, on the module's event loop (the pool lives there too)."""
    async with serving_fake() as server:
        yield server


# Test modules: ``pytestmark = E2E`` and import the fixtures ``pool`` and ``fake`` from here.
E2E = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

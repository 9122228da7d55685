"""Run an unmodified discord.py client against a FakeDiscord."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, TypeVar

import discord
import discord.asset
import discord.gateway
import discord.http
import yarl

if TYPE_CHECKING:
    from .server import FakeDiscord

C = TypeVar("C", bound=discord.Client)


@contextlib.contextmanager
def pointed_at(fake: FakeDiscord):  # type: ignore[no-untyped-def]
    """Point discord.py's REST base, default gateway and asset CDN at the fake; restore on exit."""
    saved = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY, discord.asset.Asset.BASE)
    discord.http.Route.BASE = fake.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    discord.asset.Asset.BASE = fake.cdn_base
    try:
        yield
    finally:
        (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
         discord.asset.Asset.BASE) = saved


@contextlib.asynccontextmanager
async def run_discord_client(client: C, fake: FakeDiscord, token: str = "fake-token", *,
                             ready_timeout: float = 10.0, fast_ready: bool = True,
                             close_timeout: float = 10.0) -> AsyncIterator[C]:
    """Start `client` against `fake` (client.start in a task), wait until ready, yield it, then close it.

    fast_ready lowers discord.py's guild_ready_timeout (a 2 s quiet period after the last GUILD_CREATE)
    to 0.05 s; it is a connection option, the bot's own code paths are untouched.
    """
    if fast_ready:
        client._connection.guild_ready_timeout = 0.05
    with pointed_at(fake):
        task = asyncio.create_task(client.start(token), name="discord-client")
        body_failed = False
        try:
            deadline = time.monotonic() + ready_timeout
            while not client.is_ready():
                if task.done():
                    exc = None if task.cancelled() else task.exception()
                    raise AssertionError(f"discord client stopped before it was ready: {exc!r}\n  "
                                         + fake.recent_requests()) from exc
                if time.monotonic() > deadline:
                    raise AssertionError(f"discord client not ready after {ready_timeout}s\n  "
                                         + fake.recent_requests())
                await asyncio.sleep(0.01)
            yield client
        except BaseException:
            body_failed = True
            raise
        finally:
            if not client.is_closed():
                await asyncio.wait_for(client.close(), timeout=close_timeout)
            try:
                await asyncio.wait_for(task, timeout=close_timeout)
            except Exception:
                # a client crash is reported unless the test body already failed (its error matters more)
                if not body_failed:
                    raise

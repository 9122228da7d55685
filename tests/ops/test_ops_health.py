"""/healthz on the running bot: 503 while the backend has no ready worker (its only one killed), 200 again after."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import aiohttp

from bot.ops.health import MetricsServer
from bot.ops.metrics import BotMetrics, instrument
from tests.e2e.bot_harness import E2E, fake, make_settings, pool, running_bot
from tests.ops.metrics_text import sample

pytestmark = E2E
__all__ = ["fake", "pool"]  # fixtures


async def poll(http: aiohttp.ClientSession, url: str, status: int, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    seen: list[tuple[int, str]] = []
    while time.monotonic() < deadline:
        async with http.get(url) as resp:
            text = await resp.text()
            if resp.status == status:
                return text
            seen.append((resp.status, text.strip()))
        await asyncio.sleep(0.02)
    raise AssertionError(f"{url} never answered {status} within {timeout:g} s; last answers: {seen[-3:]}")


async def test_healthz_follows_the_workers_and_the_gateway(fake, tmp_path, pool):
    metrics = BotMetrics()
    server = MetricsServer(metrics, "127.0.0.1:0")
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.url}/healthz") as resp:  # nothing attached yet
                assert resp.status == 503 and await resp.text() == "not connected to Discord yet\n"
            async with running_bot(fake, make_settings(tmp_path), pool) as bot:
                instrument(bot, metrics)
                assert (await poll(http, f"{server.url}/healthz", 200)).startswith("ok: 1 of 1 style worker(s) ready")
                old = pool.workers[0]
                assert old.pid is not None
                os.kill(old.pid, signal.SIGKILL)
                reason = await poll(http, f"{server.url}/healthz", 503, timeout=10)
                assert reason.startswith("no style worker is ready (workers: cpu "), reason
                await poll(http, f"{server.url}/healthz", 200)  # the pool replaced it
                assert pool.workers[0].pid != old.pid
                async with http.get(f"{server.url}/metrics") as resp:
                    text = await resp.text()
                assert sample(text, "nst_worker_restarts_total", {"worker": "0", "device": "cpu"}) == old.restarts + 1
                assert sample(text, "nst_gateway_connected", {"shard": "0"}) == 1
                await fake.gateway.drop()  # the gateway goes away: discord.py resumes; health follows
                await poll(http, f"{server.url}/healthz", 200, timeout=30)
            reason = await poll(http, f"{server.url}/healthz", 503, timeout=10)  # the bot closed
            assert "not connected" in reason
    finally:
        await server.stop()

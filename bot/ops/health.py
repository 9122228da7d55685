"""Health: what ``/healthz`` answers (every gateway shard connected, a style worker ready), and the HTTP server
that serves it next to ``/metrics``."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from bot.ops.metrics import BotMetrics

log = logging.getLogger(__name__)


@runtime_checkable
class WorkerStatus(Protocol):
    """One worker slot as a backend reports it (``nst_engine.pool.WorkerInfo`` has these)."""

    @property
    def index(self) -> int: ...

    @property
    def device(self) -> str: ...

    @property
    def state(self) -> str: ...

    @property
    def restarts(self) -> int: ...

    @property
    def ready(self) -> bool: ...


@runtime_checkable
class ReportsWorkers(Protocol):
    """What a backend offers for health and metrics: ``workers``, a snapshot of its slots.

    ``ProcessPoolBackend`` has it; a backend without it is taken as ready whenever it has capacity.
    """

    @property
    def workers(self) -> Sequence[WorkerStatus]: ...


class Gateway(Protocol):
    """The Discord side of health: which shards are connected, and their heartbeat latency."""

    def shards(self) -> list[tuple[int, bool, float]]:
        """(shard id, connected, latency in seconds or NaN) for every shard."""
        ...


class DiscordGateway:
    """``Gateway`` for a discord.py ``Client`` or ``AutoShardedClient``."""

    def __init__(self, client: object) -> None:
        self.client = client

    def shards(self) -> list[tuple[int, bool, float]]:
        import discord

        client = self.client
        if isinstance(client, discord.AutoShardedClient):
            infos = list(client.shards.values())
            if not infos:
                return [(0, False, math.nan)]
            return [(s.id, client.is_ready() and not s.is_closed(), s.latency) for s in infos]
        if not isinstance(client, discord.Client):
            return []
        ws = client.ws
        connected = client.is_ready() and not client.is_closed() and ws is not None and ws.open
        return [(0, connected, client.latency)]


@dataclass(frozen=True)
class Health:
    ok: bool
    reason: str  # one line: "ok", or what is wrong


def check_health(stopping: str | None, shards: list[tuple[int, bool, float]], backend: object | None) -> Health:
    """OK only while every gateway shard is connected and the backend has a ready worker."""
    if stopping:
        return Health(False, stopping)
    if not shards:
        return Health(False, "not connected to Discord yet")
    down = [str(shard) for shard, up, _ in shards if not up]
    if down:
        which = "the gateway" if len(shards) == 1 else f"gateway shard(s) {', '.join(down)} of {len(shards)}"
        return Health(False, f"{which} not connected to Discord")
    if backend is None:
        return Health(False, "the style backend is not started")
    if isinstance(backend, ReportsWorkers):
        slots = list(backend.workers)
        ready = sum(1 for w in slots if w.ready)
        if not ready:
            states = ", ".join(f"{w.device} {w.state}" for w in slots) or "none"
            return Health(False, f"no style worker is ready (workers: {states})")
        return Health(True, f"ok: {ready} of {len(slots)} style worker(s) ready")
    capacity = getattr(backend, "capacity", 0)
    if not capacity:
        return Health(False, "the style backend has no capacity")
    return Health(True, "ok")


class MetricsServer:
    """``/metrics`` and ``/healthz`` over HTTP (aiohttp, on the bot's event loop)."""

    def __init__(self, metrics: BotMetrics, address: str) -> None:
        self.metrics = metrics
        host, _, port = address.rpartition(":")
        self.host = host.strip("[]")
        self.port = int(port)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Listen; raises OSError (address in use, not permitted) with the address in the message."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise OSError(exc.errno, f"cannot listen on {self.host}:{self.port} ({exc.strerror or exc})") from exc
        self._runner = runner
        sockets = getattr(site._server, "sockets", None)
        if sockets:
            self.port = sockets[0].getsockname()[1]  # the real port when 0 was asked for
        log.info("metrics on %s/metrics, health on %s/healthz", self.url, self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        await self.metrics.gpu.refresh()
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        health = self.metrics.health()
        return web.Response(status=200 if health.ok else 503, text=health.reason + "\n")

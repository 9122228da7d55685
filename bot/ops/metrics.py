"""Prometheus metrics and the health check, served on ``METRICS_ADDRESS`` (``/metrics`` and ``/healthz``).

Counters and histograms follow the job service's events (``BotMetrics.observe``, a ``bot.requests.events`` observer);
everything that is a state rather than an event (queue depth, jobs running, bytes downloaded, workers, restarts, GPU
memory, gateway latency) is read when Prometheus scrapes, from the sources given to ``BotMetrics.watch``, so it can
never drift from the truth. ``instrument(bot, metrics)`` connects both to a running StyleBot.

Every metric is named ``nst_*`` and says what it counts in its help text (``/metrics`` shows them), plus the
standard ``process_*`` metrics of the bot's own process. ``/healthz`` is ``bot.ops.health``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from bot.ops.health import DiscordGateway, Gateway, Health, ReportsWorkers, WorkerStatus, check_health

if TYPE_CHECKING:
    from bot.requests.events import JobEvent
    from bot.requests.service import JobService

log = logging.getLogger(__name__)

# Seconds: jobs take from about a second (tiny, GPU) to the 10-minute default limit.
JOB_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200)
WAIT_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)



class GpuMemory:
    """Used and total memory per CUDA device from ``nvidia-smi`` (the bot process itself never touches CUDA).

    Read asynchronously before a scrape and cached for ``ttl`` seconds; empty when there is no NVIDIA GPU.
    Devices are named as the workers see them (``cuda:N``, honouring ``CUDA_VISIBLE_DEVICES``).
    """

    def __init__(self, ttl: float = 5.0, command: str | None = None) -> None:
        self.ttl = ttl
        self.command = command if command is not None else shutil.which("nvidia-smi")
        self.values: dict[str, tuple[float, float]] = {}
        self._read_at = -math.inf

    async def refresh(self) -> None:
        if self.command is None or time.monotonic() - self._read_at < self.ttl:
            return
        self._read_at = time.monotonic()
        try:
            proc = await asyncio.create_subprocess_exec(
                self.command, "--query-gpu=index,memory.used,memory.total", "--format=csv,noheader,nounits",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            )
            out, _ = await asyncio.wait_for(proc.communicate(), timeout=5)
        except (OSError, TimeoutError) as exc:
            log.warning("nvidia-smi failed (%s); GPU memory metrics are missing", exc)
            self.values = {}
            return
        self.values = parse_nvidia_smi(out.decode(errors="replace"), os.environ.get("CUDA_VISIBLE_DEVICES"))


def parse_nvidia_smi(text: str, visible: str | None) -> dict[str, tuple[float, float]]:
    """``index, used MiB, total MiB`` lines -> {"cuda:N": (used bytes, total bytes)} in CUDA's numbering."""
    physical: dict[int, tuple[float, float]] = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3 or not all(p.replace(".", "", 1).isdigit() for p in parts):
            continue
        physical[int(parts[0])] = (float(parts[1]) * 2**20, float(parts[2]) * 2**20)
    order = sorted(physical)
    if visible is not None and visible.strip():
        wanted = [v.strip() for v in visible.split(",")]
        if all(v.isdigit() for v in wanted):
            order = [int(v) for v in wanted if int(v) in physical]
    return {f"cuda:{n}": physical[index] for n, index in enumerate(order)}


class _StateCollector(Collector):
    """Reads the state metrics at scrape time."""

    def __init__(self, metrics: BotMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        depth = GaugeMetricFamily("nst_queue_depth", "Requests waiting in the bot's fair queue.")
        depth.add_metric([], float(m.queue_depth()))
        yield depth
        running = GaugeMetricFamily("nst_jobs_running", "Jobs running on the style backend.")
        running.add_metric([], float(m.jobs_running()))
        yield running
        downloaded = CounterMetricFamily("nst_downloaded_bytes", "Attachment bytes downloaded.")
        downloaded.add_metric([], float(_safe_int(m._downloaded)))
        yield downloaded

        workers = GaugeMetricFamily("nst_workers", "Style worker slots by device and state.", labels=["device", "state"])
        restarts = CounterMetricFamily(
            "nst_worker_restarts", "Style workers replaced after a crash or kill.", labels=["worker", "device"]
        )
        counts: dict[tuple[str, str], int] = {}
        for w in m.worker_slots():
            counts[(w.device, w.state)] = counts.get((w.device, w.state), 0) + 1
            restarts.add_metric([str(w.index), w.device], float(w.restarts))
        for (device, state), n in sorted(counts.items()):
            workers.add_metric([device, state], float(n))
        yield workers
        yield restarts

        used = GaugeMetricFamily("nst_gpu_memory_used_bytes", "GPU memory in use.", labels=["device"])
        total = GaugeMetricFamily("nst_gpu_memory_total_bytes", "GPU memory in all.", labels=["device"])
        for device, (u, t) in sorted(m.gpu.values.items()):
            used.add_metric([device], u)
            total.add_metric([device], t)
        yield used
        yield total

        latency = GaugeMetricFamily(
            "nst_gateway_latency_seconds", "Discord gateway heartbeat round trip.", labels=["shard"]
        )
        connected = GaugeMetricFamily("nst_gateway_connected", "1 while the shard is connected.", labels=["shard"])
        for shard, up, seconds in m.gateway_shards():
            connected.add_metric([str(shard)], 1.0 if up else 0.0)
            if up and math.isfinite(seconds):
                latency.add_metric([str(shard)], seconds)
        yield latency
        yield connected


class BotMetrics:
    """The bot's metrics in their own registry (so tests and several bots in one process never collide)."""

    def __init__(self, registry: CollectorRegistry | None = None, *, gpu: GpuMemory | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "nst_requests", "Style requests by kind, outcome and reason.", ["kind", "outcome", "reason"], registry=r
        )
        self.job_seconds = Histogram(
            "nst_job_seconds", "Run time of finished jobs.", ["preset", "device"], buckets=JOB_BUCKETS, registry=r
        )
        self.wait_seconds = Histogram(
            "nst_job_wait_seconds", "Seconds from acceptance to the start of the job.", ["preset", "device"],
            buckets=WAIT_BUCKETS, registry=r,
        )
        self.result_bytes = Counter("nst_result_bytes", "Bytes of result images uploaded.", registry=r)
        self.iterations_per_second = Gauge(
            "nst_engine_iterations_per_second", "Engine iterations per second of the last finished job.",
            ["preset", "device"], registry=r,
        )
        with contextlib.suppress(ValueError):  # no /proc (not Linux): no process metrics
            ProcessCollector(registry=r)
        self.gpu = gpu if gpu is not None else GpuMemory()
        self._queue_depth: Callable[[], int] = lambda: 0
        self._jobs_running: Callable[[], int] = lambda: 0
        self._downloaded: Callable[[], int] = lambda: 0
        self._backend: Callable[[], object | None] = lambda: None
        self._gateway: Gateway | None = None
        self.stopping: str | None = None  # set when shutting down: health turns 503 with this reason
        r.register(_StateCollector(self))

    # -- sources read at scrape time -------------------------------------------------------------------

    def watch(
        self,
        *,
        backend: Callable[[], object | None] | None = None,
        gateway: Gateway | None = None,
        queue_depth: Callable[[], int] | None = None,
        jobs_running: Callable[[], int] | None = None,
        downloaded: Callable[[], int] | None = None,
    ) -> None:
        """Give the sources of the state metrics (any left out keeps its previous value).

        ``backend`` returns the StyleBackend (or None before it exists): the bot makes it in ``setup_hook``.
        """
        if backend is not None:
            self._backend = backend
        if gateway is not None:
            self._gateway = gateway
        if queue_depth is not None:
            self._queue_depth = queue_depth
        if jobs_running is not None:
            self._jobs_running = jobs_running
        if downloaded is not None:
            self._downloaded = downloaded

    def queue_depth(self) -> int:
        return _safe_int(self._queue_depth)

    def jobs_running(self) -> int:
        return _safe_int(self._jobs_running)

    def backend(self) -> object | None:
        return self._backend()

    def worker_slots(self) -> list[WorkerStatus]:
        backend = self.backend()
        if isinstance(backend, ReportsWorkers):
            return list(backend.workers)
        return []

    def gateway_shards(self) -> list[tuple[int, bool, float]]:
        return self._gateway.shards() if self._gateway is not None else []

    # -- events ----------------------------------------------------------------------------------------

    def request(self, kind: str, outcome: str, reason: str = "") -> None:
        """One request ended: ``outcome`` done | refused | cancelled | failed | interrupted, with its reason."""
        self.requests.labels(kind, outcome, reason).inc()

    def job_ran(
        self, *, preset: str, device: str, seconds: float, waited: float, iterations: int, engine_seconds: float
    ) -> None:
        """A job finished: its run time (as the bot saw it), its wait in the queue, and the engine's own rate."""
        self.job_seconds.labels(preset, device).observe(seconds)
        self.wait_seconds.labels(preset, device).observe(waited)
        if engine_seconds > 0 and iterations > 0:
            self.iterations_per_second.labels(preset, device).set(iterations / engine_seconds)

    def delivered(self, nbytes: int) -> None:
        self.result_bytes.inc(nbytes)

    def observe(self, event: JobEvent) -> None:
        """A ``bot.requests.events`` observer: counts each request's ending, and times the jobs that finished."""
        if not event.final:
            return
        reason = "" if event.kind == "done" else (event.reason or "")
        self.request(event.origin, event.kind, reason)
        if event.kind != "done":
            return
        self.delivered(event.result_bytes)
        summary = event.summary
        if summary is not None:
            waited = event.timings.get("queued", 0.0) - event.timings.get("download", 0.0)
            self.job_ran(preset=summary.preset, device=summary.device, seconds=event.timings.get("ran", 0.0),
                         waited=max(0.0, waited), iterations=summary.iterations, engine_seconds=summary.seconds)

    # -- health and exposition -------------------------------------------------------------------------

    def health(self) -> Health:
        """OK only while every gateway shard is connected and the backend has a ready worker."""
        return check_health(self.stopping, self.gateway_shards(), self.backend())

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _safe_int(source: Callable[[], int]) -> int:
    try:
        return int(source())
    except Exception:  # a scrape must never take the bot down; the gauge reads 0 for a moment
        log.exception("reading a metric source failed")
        return 0




def instrument(bot: object, metrics: BotMetrics) -> None:
    """Connect ``metrics`` to a StyleBot: its state, read at scrape time (so the bot may build its parts later, in
    ``setup_hook``), and its job events once its job service exists.

    ``__main__`` calls it right after making the bot, before ``setup_hook``, and hands ``metrics.observe`` to the bot
    as an observer, so the job service starts with it.
    """

    def jobs() -> JobService | None:
        service: JobService | None = getattr(bot, "jobs", None)
        return service

    def waiting() -> int:
        service = jobs()
        return service.queue.waiting if service is not None else 0

    def running() -> int:
        service = jobs()
        return service.queue.running if service is not None else 0

    def downloaded() -> int:
        service = jobs()
        return service.downloader.bytes_read if service is not None else 0

    metrics.watch(gateway=DiscordGateway(bot), backend=lambda: getattr(bot, "backend", None),
                  queue_depth=waiting, jobs_running=running, downloaded=downloaded)
    service = jobs()
    if service is not None and metrics.observe not in service.observers:
        service.observers.append(metrics.observe)

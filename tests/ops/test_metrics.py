"""The metrics registry, /metrics and /healthz over HTTP, and the scrape-time readings."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import aiohttp
import pytest

from bot.ops.health import MetricsServer
from bot.ops.metrics import BotMetrics, GpuMemory, parse_nvidia_smi
from nst_engine.pool import WorkerInfo
from tests.ops.metrics_text import sample, total


@dataclass
class Slots:
    """A backend's worker report, as ProcessPoolBackend.workers gives it."""

    workers: list[WorkerInfo] = field(default_factory=list)
    capacity: int = 1


@dataclass
class Shards:
    states: list[tuple[int, bool, float]]

    def shards(self) -> list[tuple[int, bool, float]]:
        return self.states


def worker(state: str, restarts: int = 0, index: int = 0, device: str = "cpu") -> WorkerInfo:
    return WorkerInfo(index=index, device=device, pid=100, state=state, job_id=None, jobs_done=0,  # type: ignore[arg-type]
                      restarts=restarts)


def test_events_and_scrape_time_state_in_the_exposition():
    m = BotMetrics(gpu=GpuMemory(command=""))
    backend = Slots([worker("busy", restarts=2), worker("idle", index=1)])
    m.watch(backend=lambda: backend, gateway=Shards([(0, True, 0.042), (1, True, math.inf)]),
            queue_depth=lambda: 3, jobs_running=lambda: 1, downloaded=lambda: 1000)
    m.request("slash", "done")
    m.request("prefix", "refused", "too-large")
    m.request("prefix", "refused", "too-large")
    m.request("prefix", "failed", "WorkerCrashedError")
    m.job_ran(preset="fast", device="cpu", seconds=4.0, waited=0.5, iterations=200, engine_seconds=3.2)
    m.delivered(5000)
    text = m.exposition().decode()
    assert sample(text, "nst_requests_total", {"kind": "slash", "outcome": "done"}) == 1
    assert sample(text, "nst_requests_total", {"outcome": "refused", "reason": "too-large"}) == 2
    assert total(text, "nst_requests_total") == 4
    assert sample(text, "nst_queue_depth") == 3 and sample(text, "nst_jobs_running") == 1
    assert sample(text, "nst_job_seconds_count", {"preset": "fast", "device": "cpu"}) == 1
    assert sample(text, "nst_job_seconds_bucket", {"preset": "fast", "le": "5.0"}) == 1
    assert sample(text, "nst_job_seconds_bucket", {"preset": "fast", "le": "2.0"}) == 0
    assert sample(text, "nst_job_wait_seconds_sum", {"preset": "fast"}) == 0.5
    assert sample(text, "nst_engine_iterations_per_second", {"preset": "fast", "device": "cpu"}) == 62.5
    assert sample(text, "nst_downloaded_bytes_total") == 1000 and sample(text, "nst_result_bytes_total") == 5000
    assert sample(text, "nst_worker_restarts_total", {"worker": "0"}) == 2
    assert sample(text, "nst_workers", {"state": "busy"}) == 1 and sample(text, "nst_workers", {"state": "idle"}) == 1
    assert sample(text, "nst_gateway_latency_seconds", {"shard": "0"}) == 0.042
    assert sample(text, "nst_gateway_latency_seconds", {"shard": "1"}) is None  # no heartbeat answered yet
    assert sample(text, "nst_gateway_connected", {"shard": "1"}) == 1
    assert sample(text, "nst_gpu_memory_used_bytes") is None  # no GPU here
    assert sample(text, "process_resident_memory_bytes") is not None


def test_health_needs_the_gateway_and_a_ready_worker():
    m = BotMetrics(gpu=GpuMemory(command=""))
    assert m.health().reason == "not connected to Discord yet" and not m.health().ok
    backend = Slots([worker("starting")])
    gateway = Shards([(0, False, math.nan)])
    m.watch(backend=lambda: backend, gateway=gateway)
    assert m.health() == (m.health().__class__(False, "the gateway not connected to Discord"))
    gateway.states = [(0, True, 0.01)]
    health = m.health()
    assert not health.ok and health.reason == "no style worker is ready (workers: cpu starting)"
    backend.workers = [worker("dead"), worker("idle", index=1)]
    assert m.health().ok and m.health().reason == "ok: 1 of 2 style worker(s) ready"
    gateway.states = [(0, True, 0.01), (1, False, math.nan)]
    assert m.health().reason == "gateway shard(s) 1 of 2 not connected to Discord"
    gateway.states = [(0, True, 0.01)]
    m.stopping = "shutting down"
    assert m.health() == m.health().__class__(False, "shutting down")


def test_backend_without_a_worker_report_is_judged_by_capacity():
    class Opaque:
        capacity = 2

    m = BotMetrics(gpu=GpuMemory(command=""))
    m.watch(backend=Opaque, gateway=Shards([(0, True, 0.01)]))
    assert m.health().ok


async def test_http_endpoints():
    m = BotMetrics(gpu=GpuMemory(command=""))
    backend = Slots([worker("starting")])
    m.watch(backend=lambda: backend, gateway=Shards([(0, True, 0.01)]))
    m.request("slash", "cancelled")
    server = MetricsServer(m, "127.0.0.1:0")
    await server.start()
    try:
        assert server.port != 0
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.url}/metrics") as resp:
                assert resp.status == 200 and resp.content_type == "text/plain"
                assert sample(await resp.text(), "nst_requests_total", {"outcome": "cancelled"}) == 1
            async with http.get(f"{server.url}/healthz") as resp:
                assert resp.status == 503 and (await resp.text()).startswith("no style worker is ready")
            backend.workers = [worker("idle")]
            async with http.get(f"{server.url}/healthz") as resp:
                assert resp.status == 200
            async with http.get(f"{server.url}/other") as resp:
                assert resp.status == 404
        # The same address twice: a clear OSError naming it.
        second = MetricsServer(m, f"127.0.0.1:{server.port}")
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{server.port}"):
            await second.start()
    finally:
        await server.stop()


def test_nvidia_smi_output_in_cuda_numbering():
    text = "0, 1024, 81920\n1, 2048, 81920\n2, 0, 40960\n"
    assert parse_nvidia_smi(text, None) == {
        "cuda:0": (1024 * 2**20, 81920 * 2**20), "cuda:1": (2048 * 2**20, 81920 * 2**20), "cuda:2": (0, 40960 * 2**20)}
    # CUDA_VISIBLE_DEVICES=2,0: the workers' cuda:0 is the physical GPU 2.
    assert parse_nvidia_smi(text, "2,0") == {"cuda:0": (0, 40960 * 2**20), "cuda:1": (1024 * 2**20, 81920 * 2**20)}
    assert parse_nvidia_smi("No devices were found\n", None) == {}


async def test_gpu_memory_from_a_real_command(tmp_path):
    # A stand-in nvidia-smi printing what the real one prints for this query (this machine has no GPU).
    script = tmp_path / "nvidia-smi"
    script.write_text("#!/bin/sh\necho '0, 512, 1024'\n")
    script.chmod(0o755)
    m = BotMetrics(gpu=GpuMemory(command=str(script)))
    await m.gpu.refresh()
    text = m.exposition().decode()
    assert sample(text, "nst_gpu_memory_used_bytes", {"device": "cuda:0"}) == 512 * 2**20
    assert sample(text, "nst_gpu_memory_total_bytes", {"device": "cuda:0"}) == 1024 * 2**20

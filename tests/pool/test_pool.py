"""The process pool with the real engine (random weights, 48 px jobs) in real worker processes: what is particular
to it. What every backend must do (queue, cancel, timeout, a killed worker, close) is in test_backend_contract.py.

One two-worker pool serves the whole module (starting workers costs seconds); each test leaves it idle.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from PIL import Image

from nst_engine.errors import (
    ImageTooSmallError,
    OptionsError,
)
from nst_engine.pool import JobHandle, PoolJob, ProcessPoolBackend, StyleBackend, StyleRequest
from nst_engine.types import StyleOptions
from tests.pool.helpers import CONTENT, LONG_JOB, STYLE, alive, process_gone, request, wait_running

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool() -> AsyncIterator[ProcessPoolBackend]:
    backend = ProcessPoolBackend(
        workers=2,
        device="cpu",
        weights="random",
        threads_per_worker=1,
        progress_interval=0.0,  # every iteration: the cancel test counts iterations precisely
        max_queue=3,
        job_timeout=60.0,
        stop_grace=10.0,
    )
    await backend.start()
    yield backend
    await backend.close()


async def test_pool_implements_the_protocol(pool: ProcessPoolBackend) -> None:
    assert isinstance(pool, StyleBackend)
    assert pool.capacity == 2
    assert [w.state for w in pool.workers] == ["idle", "idle"] and all(w.ready for w in pool.workers)
    job = pool.submit(request(2))
    assert isinstance(job, JobHandle)
    await job.result()


async def test_more_jobs_than_workers_run_two_at_a_time_in_fifo_order(pool: ProcessPoolBackend) -> None:
    jobs = [pool.submit(request(12)) for _ in range(5)]
    assert [j.position() for j in jobs] == [0, 0, 1, 2, 3]
    assert [j.state for j in jobs] == ["running", "running", "queued", "queued", "queued"]
    assert pool.queued == 3
    finals = {}

    async def last_event(job: PoolJob) -> None:
        async for event in job.events():
            finals[job.job_id] = event

    await asyncio.gather(*(last_event(j) for j in jobs))
    results = [await j.result() for j in jobs]

    assert all(r.image.size == (48, 40) and r.image.mode == "RGB" for r in results)
    assert all(j.state == "done" and j.steps == 12 for j in jobs)
    assert all(finals[j.job_id].step == finals[j.job_id].total_steps == 12 for j in jobs)  # the final event
    spans = [(j.started_at, j.finished_at) for j in jobs]
    assert all(start is not None and end is not None for start, end in spans)
    times = [(start or 0.0, end or 0.0) for start, end in spans]
    assert times[2][0] <= times[3][0] <= times[4][0]  # queued jobs started in submission order
    # At most two ran at once, and two did run at once.
    moments = sorted({t for span in times for t in span})
    overlap = [sum(start <= t < end for start, end in times) for t in moments]
    assert max(overlap) == 2
    assert {j.worker_pid for j in jobs} == {w.pid for w in pool.workers}


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"options": StyleOptions(preset="nope")}, OptionsError, "unknown preset"),
        ({"options": StyleOptions(size=8)}, OptionsError, "size must be between"),
        ({"options": StyleOptions(strength=-1.0)}, OptionsError, "strength"),
        ({"options": StyleOptions(style_weights=(1.0, 2.0))}, OptionsError, "2 style weights given for 1"),
        ({"options": StyleOptions(preview_every=0.0)}, OptionsError, "preview_every"),
        ({"styles": []}, OptionsError, "at least one style image"),
        ({"styles": STYLE}, OptionsError, "sequence"),
        ({"content": CONTENT.convert("RGBA")}, OptionsError, "content image must be RGB"),
        ({"content": Image.new("RGB", (0, 0))}, OptionsError, "content image is empty"),
        ({"styles": [STYLE, Image.new("RGB", (5, 0))]}, OptionsError, "style image 2 is empty"),
        ({"content": Image.new("RGB", (400, 20))}, ImageTooSmallError, "at least 32 px"),
        ({"timeout": 0.0}, OptionsError, "timeout"),
    ],
)
async def test_invalid_requests_are_refused_before_any_worker(
    pool: ProcessPoolBackend, change: dict[str, object], error: type[Exception], message: str
) -> None:
    base = {"content": CONTENT, "styles": [STYLE], "options": StyleOptions(size=48, iterations=2)}
    fields = {**base, **change}
    done_before = sum(w.jobs_done for w in pool.workers)
    with pytest.raises(error, match=message):
        pool.submit(StyleRequest(**fields))  # type: ignore[arg-type]
    assert pool.queued == 0 and pool.running == 0
    assert sum(w.jobs_done for w in pool.workers) == done_before


async def test_event_loop_stays_responsive_while_jobs_run(pool: ProcessPoolBackend) -> None:
    """A 10 ms ticker measures the CPU time the loop's thread spends between two ticks while four jobs stream every
    iteration and previews: work done on the loop (decoding a picture, say) shows there, however busy the machine is
    (a wall-clock lag would also count the time the OS gave the CPU to other processes)."""
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            before = time.thread_time()
            await asyncio.sleep(0.01)
            lags.append(time.thread_time() - before)

    tick = asyncio.create_task(ticker())
    jobs = [pool.submit(request(25, preview_every=0.05)) for _ in range(4)]
    previews = 0

    async def count_previews(job: PoolJob) -> None:
        nonlocal previews
        async for event in job.events():
            previews += event.preview is not None

    await asyncio.gather(*(count_previews(j) for j in jobs))
    await asyncio.gather(*(j.result() for j in jobs))
    stop.set()
    await tick
    assert len(lags) > 50
    assert max(lags) < 0.1, f"the event loop's thread worked up to {max(lags):.3f} s between two ticks"
    assert previews >= 4  # at least the final preview of each job arrived


async def test_large_elongated_style_is_not_shrunk_below_what_the_engine_needs(pool: ProcessPoolBackend) -> None:
    banner = Image.effect_noise((1600, 200), 60).convert("RGB")  # 8:1 and far larger than a 48 px job needs
    job = pool.submit(StyleRequest(CONTENT, [banner], StyleOptions(size=48, iterations=2, precision="fp32")))
    result = await job.result()
    assert result.image.size == (48, 40)


async def test_submit_before_start_and_after_close_is_refused() -> None:
    from nst_engine.errors import PoolClosedError

    fresh = ProcessPoolBackend(workers=1, device="cpu", weights="random")
    with pytest.raises(PoolClosedError, match="start"):
        fresh.submit(request(2))
    await fresh.close()  # closing a pool that never started is fine
    with pytest.raises(PoolClosedError, match="shutting down"):
        fresh.submit(request(2))


async def test_close_with_every_worker_busy_cancels_all_and_leaves_no_process(pool: ProcessPoolBackend) -> None:
    """Last in this module on purpose: it closes the shared pool (the fixture's close is then a no-op)."""
    pids = {w.pid for w in pool.workers}
    jobs = [pool.submit(request(LONG_JOB)) for _ in range(5)]
    await asyncio.gather(*(wait_running(j) for j in jobs[:2]))
    started = time.perf_counter()
    await pool.close(timeout=3)
    assert time.perf_counter() - started < 10  # the 3 s grace, then a kill: not the minutes LONG_JOB runs
    assert [j.state for j in jobs] == ["cancelled"] * 5
    assert all(j.steps < LONG_JOB for j in jobs)
    assert not [p for p in multiprocessing.active_children() if p.pid in pids]
    assert all(process_gone(pid) and not alive(pid) for pid in pids if pid is not None)

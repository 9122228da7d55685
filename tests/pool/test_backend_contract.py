"""The StyleBackend contract, held against both backends: the process pool and Ray (on the session's local Ray).

Same requests, same assertions: results, progress in order, FIFO with positions, a bounded queue that refuses at
once, cancel while queued and while running, the job timeout, a worker killed mid-job, and close with work in
flight leaving no worker behind. Real engine, random weights, 48 px jobs; one two-worker backend per kind serves the
module (the close test makes its own).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from nst_engine.animation import Clip
from nst_engine.errors import (
    Cancelled,
    JobTimeoutError,
    OptionsError,
    PoolClosedError,
    QueueFullError,
    WorkerCrashedError,
)
from nst_engine.pool import JobHandle, PoolJob, ProcessPoolBackend, RayBackend, StyleBackend, StyleRequest
from nst_engine.types import StyleOptions
from tests.pool.helpers import CONTENT, LONG_JOB, STYLE, noise_image, process_gone, request, wait_running

pytestmark = pytest.mark.asyncio(loop_scope="module")
request_job = request  # for the test whose pytest ``request`` fixture hides the name

Backend = ProcessPoolBackend | RayBackend
KINDS = ["process", "ray"]


def make(kind: str, pytest_request: pytest.FixtureRequest, **overrides: Any) -> Backend:
    options: dict[str, Any] = {
        "workers": 2,
        "device": "cpu",
        "weights": "random",
        "progress_interval": 0.0,  # every iteration: the cancel test counts iterations precisely
        "max_queue": 3,
        "job_timeout": 60.0,
        "stop_grace": 10.0,
    }
    options.update(overrides)
    if kind == "ray":
        pytest_request.getfixturevalue("ray_cluster")  # the session's Ray, started on first use
        return RayBackend(**options)
    return ProcessPoolBackend(threads_per_worker=1, **options)


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=KINDS)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    pool = make(request.param, request)
    await pool.start()
    await pool.wait_ready(timeout=120)  # Ray's start() returns with the first actor; the contract wants both
    yield pool
    await pool.close()


async def settle(jobs: list[PoolJob], timeout: float = 30.0) -> None:
    """Cancel what is left and wait (bounded) until every job has ended."""
    for job in jobs:
        job.cancel()
    async with asyncio.timeout(timeout):
        for job in jobs:
            await job.wait_done()


async def test_result_and_progress_in_order(backend: Backend) -> None:
    assert isinstance(backend, StyleBackend) and backend.capacity == 2
    job = backend.submit(request(6, preview_every=0.001))
    assert isinstance(job, JobHandle)
    events = [event async for event in job.events()]
    result = await asyncio.wait_for(job.result(), 60)
    assert [e.step for e in events] == [1, 2, 3, 4, 5, 6]  # every iteration, in order, the last one included
    assert events[-1].step == events[-1].total_steps == 6
    assert all(e.preview is not None and e.preview.mode == "RGB" for e in events)  # previews survive the trip
    assert result.image.size == (48, 40) and result.image.mode == "RGB"
    assert result.summary.iterations == 6 and result.summary.device == "cpu" and result.history
    assert job.state == "done" and job.steps == 6 and job.position() == 0
    assert job.worker_pid in {w.pid for w in backend.workers}


async def test_an_animation_comes_back_whole_with_progress_per_frame(backend: Backend) -> None:
    frames = (CONTENT, noise_image(48, 40, 3), noise_image(48, 40, 4))
    clip = Clip(frames, (60, 90, 120), loop=2)
    opts = StyleOptions(preset="fast", size=48, iterations=3, precision="fp32")
    job = backend.submit(StyleRequest(CONTENT, [STYLE], opts, clip=clip, owner="tests"))
    events = [event async for event in job.events()]
    result = await asyncio.wait_for(job.result(), 60)
    assert result.clip is not None and len(result.clip) == 3 and result.summary.frames == 3
    assert result.clip.durations == (60, 90, 120) and result.clip.loop == 2
    assert all(f.size == (48, 40) and f.mode == "RGB" for f in result.clip.frames)
    assert [e.frame for e in events][-1] == 3 and all(e.frames == 3 for e in events)
    assert job.timeout == pytest.approx(60.0 * (1 + 2 / 3))  # the time limit grows with the frames


async def test_fifo_positions_cancel_while_queued_and_bounded_queue(backend: Backend) -> None:
    busy = [backend.submit(request(LONG_JOB)) for _ in range(2)]
    waiting = [backend.submit(request(2)) for _ in range(3)]
    try:
        assert [j.position() for j in busy + waiting] == [0, 0, 1, 2, 3]
        assert [j.state for j in busy] == ["running", "running"] and backend.queued == 3

        started = time.perf_counter()
        with pytest.raises(QueueFullError, match="queue is full"):
            backend.submit(request(2))
        assert time.perf_counter() - started < 2  # refused at once: a wait for a slot would last minutes (LONG_JOB)

        waiting[1].cancel()
        assert waiting[1].state == "cancelled"  # dropped at once
        assert [waiting[0].position(), waiting[2].position()] == [1, 2]
        with pytest.raises(Cancelled, match="before it started"):
            await asyncio.wait_for(waiting[1].result(), 1)
        assert waiting[1].started_at is None and waiting[1].worker_pid is None  # no worker ever saw it

        for job in busy:
            job.cancel()
        finished = await asyncio.wait_for(asyncio.gather(waiting[0].result(), waiting[2].result()), 60)
        assert all(r.image.size == (48, 40) for r in finished)
        assert waiting[0].started_at is not None and waiting[2].started_at is not None
    finally:
        await settle(busy + waiting)


async def test_cancel_while_running_stops_within_an_iteration_or_two(backend: Backend) -> None:
    job = backend.submit(request(LONG_JOB, size=96))  # ~4x the work per iteration of 48 px: lag matters less
    await wait_running(job, step=3)
    assert job.last_event is not None
    seen = job.last_event.step
    pid = job.worker_pid
    cancelled_at = time.perf_counter()
    job.cancel()
    with pytest.raises(Cancelled, match="cancelled"):
        await asyncio.wait_for(job.result(), 10)
    assert time.perf_counter() - cancelled_at < 10  # stopped, not the minutes LONG_JOB runs; the steps below: how soon
    assert job.state == "cancelled"
    assert seen <= job.steps <= seen + 3, (seen, job.steps)  # the worker reports the iterations it ran
    assert pid in {w.pid for w in backend.workers}  # stopped cooperatively, nobody was killed
    follow_up = backend.submit(request(2))
    assert (await asyncio.wait_for(follow_up.result(), 60)).image.size == (48, 40)


async def test_timeout_stops_the_job_and_the_worker_survives(backend: Backend) -> None:
    pids = sorted(w.pid or 0 for w in backend.workers)
    # A warm worker first: a cold one's first step (lazy set-up) can take most of a second on a busy machine.
    await asyncio.wait_for(backend.submit(request(2)).result(), 60)
    job = backend.submit(request(LONG_JOB, timeout=2.0))
    with pytest.raises(JobTimeoutError, match="took longer than 2 s"):
        await asyncio.wait_for(job.result(), 20)
    assert job.state == "failed"
    assert job.started_at is not None and job.finished_at is not None
    assert 2.0 <= job.finished_at - job.started_at < 7.0
    assert 0 < job.steps < LONG_JOB
    assert sorted(w.pid or 0 for w in backend.workers) == pids
    assert (await asyncio.wait_for(backend.submit(request(2)).result(), 60)).image.size == (48, 40)


async def test_killed_worker_fails_only_its_job_and_is_replaced(backend: Backend) -> None:
    victim = backend.submit(request(LONG_JOB))
    survivor = backend.submit(request(40))
    await asyncio.gather(wait_running(victim), wait_running(survivor))
    dead_pid = victim.worker_pid
    assert dead_pid is not None and dead_pid != survivor.worker_pid
    os.kill(dead_pid, signal.SIGKILL)

    with pytest.raises(WorkerCrashedError, match=rf"pid {dead_pid}\b") as crashed:
        await asyncio.wait_for(victim.result(), 20)
    assert "try again" in str(crashed.value)
    assert (await asyncio.wait_for(survivor.result(), 60)).image.size == (48, 40)
    assert survivor.state == "done"

    # The backend keeps serving right away (the other worker), and the dead one is replaced.
    assert (await asyncio.wait_for(backend.submit(request(2)).result(), 60)).image.size == (48, 40)
    await backend.wait_ready(timeout=120)
    pids = [w.pid for w in backend.workers]
    assert len(pids) == 2 and dead_pid not in pids and sum(w.restarts for w in backend.workers) == 1
    jobs = [backend.submit(request(2)) for _ in range(2)]
    await asyncio.wait_for(asyncio.gather(*(j.result() for j in jobs)), 60)
    assert {j.worker_pid for j in jobs} <= set(pids)


async def test_invalid_request_is_refused_before_any_worker(backend: Backend) -> None:
    bad = request(2)
    with pytest.raises(OptionsError, match="unknown preset"):
        backend.submit(type(bad)(bad.content, bad.styles, StyleOptions(preset="nope")))
    assert backend.queued == 0 and backend.running == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_stuck_worker_is_killed_after_the_grace_and_close_leaves_no_worker(
    kind: str, request: pytest.FixtureRequest
) -> None:
    """stop_grace=0: the timeout kills the worker at once (as if it ignored the stop); a new one takes its place.
    Then close() with one job running and one queued cancels both and leaves no worker process behind."""
    pool = make(kind, request, workers=1, stop_grace=0.0, progress_interval=0.1)
    await pool.start()
    try:
        first_pid = pool.workers[0].pid
        assert first_pid is not None
        stuck = pool.submit(request_job(LONG_JOB, timeout=0.5))
        with pytest.raises(JobTimeoutError, match=r"took longer than 0\.5 s"):
            await asyncio.wait_for(stuck.result(), 20)
        await pool.wait_ready(timeout=120)
        second_pid = pool.workers[0].pid
        assert second_pid is not None and second_pid != first_pid and pool.workers[0].restarts == 1
        await wait_gone(first_pid)

        running = pool.submit(request_job(LONG_JOB))
        queued = pool.submit(request_job(2))
        await wait_running(running, step=2)
        started = time.perf_counter()
        await pool.close(timeout=5)
        assert time.perf_counter() - started < 15  # the 5 s grace, then a kill: not the minutes LONG_JOB runs
        for job in (running, queued):
            with pytest.raises(Cancelled, match="shutting down"):
                await asyncio.wait_for(job.result(), 1)
        assert running.steps < LONG_JOB and queued.started_at is None
        await wait_gone(second_pid)
        with pytest.raises(PoolClosedError, match="shutting down"):
            pool.submit(request_job(2))
    finally:
        await pool.close()


async def wait_gone(pid: int, timeout: float = 15.0) -> None:
    """Wait (bounded) until process ``pid`` no longer runs."""
    deadline = time.monotonic() + timeout
    while not process_gone(pid):
        assert time.monotonic() < deadline, f"worker process {pid} is still running"
        await asyncio.sleep(0.1)

"""Benchmark: what the process pool costs on top of calling the engine directly, and what it delivers.

    python -m benchmarks.pool_overhead [--size 128] [--iterations 30] [--repeats 3] [--jobs 6]

Same job, same run: (a) ``stylize`` called in this process vs submitted to a one-worker pool (same thread count),
seconds per job after a warm-up job in each → the pool's overhead per job and as a ratio; (b) ``--jobs`` jobs on
one worker vs two workers (the cores shared out) → jobs per minute. Uses the real weights in ../shared/weights
when present, else random weights (saying so; timings are the same, pictures are not).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path

import torch
from PIL import Image

from nst_engine import StyleOptions, load_vgg, stylize
from nst_engine.pool import ProcessPoolBackend, StyleRequest
from nst_engine.pool.devices import default_threads

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REAL_WEIGHTS = SHARED / "weights" / "vgg19_features_fp16.pth"


def _images() -> tuple[Image.Image, Image.Image]:
    content, style = SHARED / "images" / "content" / "chelsea.png", SHARED / "images" / "style" / "starry_night.jpg"
    if content.is_file() and style.is_file():
        return Image.open(content).convert("RGB"), Image.open(style).convert("RGB")
    print("sample images not found; using synthetic ones")
    return Image.effect_mandelbrot((300, 200), (-2, -1, 1, 1), 60).convert("RGB"), Image.radial_gradient("L").convert(
        "RGB"
    )


def _choose_weights() -> str:
    if REAL_WEIGHTS.is_file():
        print(f"weights: {os.path.relpath(REAL_WEIGHTS)} (real VGG19)")
        return str(REAL_WEIGHTS)
    print(f"weights: RANDOM (real weights not found at {REAL_WEIGHTS}); timings hold, pictures do not")
    return "random"


def _median_seconds(run_once, repeats: int) -> float:
    run_once()  # warm-up: first-call costs (allocator, oneDNN kernel choice) are paid once per process
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_once()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def _pool_job_seconds(pool: ProcessPoolBackend, request: StyleRequest, repeats: int) -> float:
    await (pool.submit(request)).result()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        await pool.submit(request).result()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def _throughput(workers: int, weights: str, request: StyleRequest, jobs: int) -> tuple[float, float, int]:
    """(seconds to start, seconds for ``jobs`` jobs, threads per worker) on a pool of ``workers``."""
    started = time.perf_counter()
    async with ProcessPoolBackend(workers=workers, device="cpu", weights=weights, max_queue=jobs) as pool:
        start_seconds = time.perf_counter() - started
        await asyncio.gather(*(pool.submit(request).result() for _ in range(workers)))  # warm every worker
        begin = time.perf_counter()
        await asyncio.gather(*(pool.submit(request).result() for _ in range(jobs)))
        return start_seconds, time.perf_counter() - begin, pool.threads_per_worker


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128, help="output long side in px (default 128)")
    parser.add_argument("--iterations", type=int, default=30, help="iterations per job (default 30)")
    parser.add_argument("--repeats", type=int, default=3, help="timed jobs per mode in part (a) (default 3)")
    parser.add_argument("--jobs", type=int, default=6, help="jobs in the throughput part (b) (default 6)")
    args = parser.parse_args()

    weights = _choose_weights()
    content, style = _images()
    options = StyleOptions(preset="fast", size=args.size, iterations=args.iterations)
    request = StyleRequest(content, [style], options, owner="benchmark")
    threads = default_threads(1)
    print(f"job: {args.size} px, {args.iterations} iterations (one scale), CPU, {threads} thread(s)\n")

    torch.set_num_threads(threads)
    model = load_vgg(weights, "cpu")
    direct = _median_seconds(lambda: stylize(content, [style], options=options, model=model), args.repeats)
    # A tiny job shows the fixed cost per job (pipes, pickling, the event loop) without the compute hiding it.
    tiny_options = StyleOptions(preset="fast", size=48, iterations=1)
    tiny_direct = _median_seconds(lambda: stylize(content, [style], options=tiny_options, model=model), 10)
    started = time.perf_counter()
    async with ProcessPoolBackend(workers=1, device="cpu", weights=weights, threads_per_worker=threads) as pool:
        start_one = time.perf_counter() - started
        pooled = await _pool_job_seconds(pool, request, args.repeats)
        tiny = StyleRequest(content, [style], tiny_options, owner="benchmark")
        tiny_pooled = await _pool_job_seconds(pool, tiny, 10)
    print(f"(a) one job, engine called directly vs through the pool (median of {args.repeats}, after a warm-up)")
    print(f"    direct stylize():          {direct:7.3f} s/job")
    print(f"    pool, 1 worker:            {pooled:7.3f} s/job (submit to result)")
    print(f"    overhead:                  {pooled - direct:+7.3f} s/job (ratio {pooled / direct:.3f}x)")
    print(f"    pool start, 1 worker:      {start_one:7.2f} s (spawn, import torch, load weights)")
    print(
        f"    fixed cost, 1-iteration 48 px job: direct {tiny_direct * 1000:.1f} ms, pool {tiny_pooled * 1000:.1f} ms "
        f"({(tiny_pooled - tiny_direct) * 1000:+.1f} ms/job; the full-size {content.width}x{content.height} "
        "upload travels to the worker)\n"
    )

    print(f"(b) throughput, {args.jobs} jobs submitted at once")
    for workers in (1, 2):
        start_s, total, per_worker = await _throughput(workers, weights, request, args.jobs)
        print(
            f"    {workers} worker(s) x {per_worker} thread(s): {total:7.2f} s for {args.jobs} jobs = "
            f"{args.jobs / total * 60:6.1f} jobs/min  (pool start {start_s:.1f} s)"
        )


if __name__ == "__main__":
    asyncio.run(main())

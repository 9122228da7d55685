"""Benchmark: what the Ray backend costs per job against the process pool and a direct engine call, and what it delivers.

    python -m benchmarks.ray_overhead [--size 128] [--iterations 30] [--repeats 3] [--jobs 6]

Same job, same run, one local Ray (started here, stopped at the end): (a) ``stylize`` called in this process vs
submitted to a one-worker process pool vs a one-actor Ray backend, each with all the cores' threads, seconds per job
(median after a warm-up) → overhead per job and ratios; a 1-iteration 48 px job shows the fixed cost per job;
(b) ``--jobs`` jobs submitted at once to 1 actor (all cores) vs 2 actors (the cores shared out) → jobs per minute and
the 2:1 ratio, beside the process pool's 1 and 2 workers. Uses the real weights in ../shared/weights when present,
else random weights (saying so; timings are the same, pictures are not).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable

import torch

from benchmarks.pool_overhead import _choose_weights, _images, _median_seconds
from nst_engine import StyleOptions, load_vgg, stylize
from nst_engine.pool import ProcessPoolBackend, RayBackend, StyleBackend, StyleRequest
from nst_engine.pool.config import default_threads
from nst_engine.pool.ray_backend import use_process_token


async def _job_seconds(backend: StyleBackend, request: StyleRequest, repeats: int) -> float:
    await backend.submit(request).result()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        await backend.submit(request).result()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def _throughput(backend: StyleBackend, request: StyleRequest, jobs: int, warm: int) -> float:
    """Seconds for ``jobs`` jobs submitted at once, after one warm-up job per worker."""
    await asyncio.gather(*(backend.submit(request).result() for _ in range(warm)))
    begin = time.perf_counter()
    handles = [backend.submit(request) for _ in range(jobs)]
    await asyncio.gather(*(h.result() for h in handles))
    return time.perf_counter() - begin


async def _timed_start(backend: RayBackend | ProcessPoolBackend) -> float:
    """Start ``backend`` and wait until every worker has loaded the weights; the seconds that took."""
    started = time.perf_counter()
    await backend.start()
    await backend.wait_ready(timeout=600)
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128, help="output long side in px (default 128)")
    parser.add_argument("--iterations", type=int, default=30, help="iterations per job (default 30)")
    parser.add_argument("--repeats", type=int, default=3, help="timed jobs per mode in part (a) (default 3)")
    parser.add_argument("--jobs", type=int, default=6, help="jobs in the throughput part (b) (default 6)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    use_process_token()  # token authentication without writing ~/.ray (before Ray is imported)
    import ray

    weights = _choose_weights()
    content, style = _images()
    options = StyleOptions(preset="fast", size=args.size, iterations=args.iterations)
    request = StyleRequest(content, [style], options, owner="benchmark")
    tiny_options = StyleOptions(preset="fast", size=48, iterations=1)
    tiny = StyleRequest(content, [style], tiny_options, owner="benchmark")
    cores = default_threads(1)
    print(f"job: {args.size} px, {args.iterations} iterations (one scale), CPU, {cores} core(s)\n")

    temp_dir = tempfile.mkdtemp(prefix="nstray-b-")
    ray_started = time.perf_counter()
    ray.init(num_cpus=cores, include_dashboard=False, object_store_memory=256 * 1024 * 1024, _temp_dir=temp_dir,
             logging_level=logging.WARNING, log_to_driver=False)
    ray_start = time.perf_counter() - ray_started
    try:
        torch.set_num_threads(cores)
        model = load_vgg(weights, "cpu")
        direct = _median_seconds(lambda: stylize(content, [style], options=options, model=model), args.repeats)
        tiny_direct = _median_seconds(lambda: stylize(content, [style], options=tiny_options, model=model), 10)

        per_job: dict[str, tuple[float, float, float]] = {}
        makers: dict[str, Callable[[], RayBackend | ProcessPoolBackend]] = {
            "process pool": lambda: ProcessPoolBackend(
                workers=1, device="cpu", weights=weights, threads_per_worker=cores
            ),
            "Ray": lambda: RayBackend(workers=1, device="cpu", weights=weights, cpus_per_worker=cores),
        }
        for name, make in makers.items():
            backend = make()
            start_s = await _timed_start(backend)
            try:
                per_job[name] = (await _job_seconds(backend, request, args.repeats),
                                 await _job_seconds(backend, tiny, 10), start_s)
            finally:
                await backend.close()

        print(f"(a) one job at a time (median of {args.repeats}, after a warm-up), {cores} thread(s) in every mode")
        print(f"    direct stylize():       {direct:7.3f} s/job")
        for name, (seconds, _, _) in per_job.items():
            print(f"    {name + ', 1 worker:':23} {seconds:7.3f} s/job  overhead {seconds - direct:+.3f} s "
                  f"(ratio to direct {seconds / direct:.3f}x)")
        ray_s, pool_s = per_job["Ray"][0], per_job["process pool"][0]
        print(f"    Ray vs process pool:    ratio {ray_s / pool_s:.3f}x ({ray_s - pool_s:+.3f} s/job)")
        fixed = ", ".join(f"{name} {t * 1000:.0f} ms" for name, (_, t, _) in per_job.items())
        print(f"    fixed cost, 1-iteration 48 px job: direct {tiny_direct * 1000:.0f} ms, {fixed}")
        starts = ", ".join(f"{name} {s:.1f} s" for name, (_, _, s) in per_job.items())
        print(f"    start: local Ray {ray_start:.1f} s (once), then 1 worker: {starts}\n")

        print(f"(b) throughput, {args.jobs} jobs submitted at once")
        rates: dict[tuple[str, int], float] = {}
        for name in ("Ray", "process pool"):
            for workers in (1, 2):
                threads = max(1, cores // workers)
                one: RayBackend | ProcessPoolBackend
                if name == "Ray":
                    one = RayBackend(workers=workers, device="cpu", weights=weights, cpus_per_worker=threads,
                                         max_queue=args.jobs)
                else:
                    one = ProcessPoolBackend(workers=workers, device="cpu", weights=weights,
                                                 threads_per_worker=threads, max_queue=args.jobs)
                await _timed_start(one)
                try:
                    total = await _throughput(one, request, args.jobs, warm=workers)
                finally:
                    await one.close()
                rates[name, workers] = args.jobs / total * 60
                label = "actor(s)" if name == "Ray" else "worker(s)"
                print(f"    {name}, {workers} {label} x {threads} thread(s): {total:7.2f} s = "
                      f"{rates[name, workers]:6.1f} jobs/min")
        print(f"    2 vs 1 actors: {rates['Ray', 2] / rates['Ray', 1]:.2f}x; "
              f"Ray vs process pool: {rates['Ray', 1] / rates['process pool', 1]:.2f}x (1), "
              f"{rates['Ray', 2] / rates['process pool', 2]:.2f}x (2)")
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())

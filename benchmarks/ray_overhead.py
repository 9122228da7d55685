"""Benchmark: what the Ray backend costs per job against the process pool and a direct engine call, and what it delivers.

    python -m benchmarks.ray_overhead [--size 128] [--iterations 30] [--rounds 3] [--jobs 4]

Same job, same run, one local Ray (started here, stopped at the end). Every mode is started first and then measured
in interleaved rounds, so that a machine whose load changes (a shared CI box) weighs on all of them alike, and every
mode computes with one torch thread per worker: on a CPU shared with other work, OpenMP teams of two threads wait for
each other's time slices and run several times slower than one thread, which would measure the machine, not the
backend. (a) One job at a time: ``stylize`` called in this process vs a one-worker process pool vs a one-actor Ray
backend → seconds per job (median over the rounds) and the overhead per job: submit-to-result time minus the engine's
own time in the worker (``summary.seconds``), which the machine's load does not blur; plus the same for a 1-iteration
48 px job. (b) ``--jobs`` jobs submitted at once to Ray with 1 and 2 actors, and to the process pool with 1 and 2
workers → jobs per minute and the ratios. Uses the real weights in ../shared/weights when present, else random
weights (saying so; timings hold, pictures do not).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch loads: one thread per worker (see above); inherited

import argparse
import asyncio
import functools
import logging
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable

import torch

from benchmarks.pool_overhead import _choose_weights, _images
from nst_engine import StyleOptions, load_vgg, stylize
from nst_engine.pool import ProcessPoolBackend, RayBackend, StyleRequest
from nst_engine.pool.devices import default_threads
from nst_engine.pool.ray_connection import use_process_token

Backend = ProcessPoolBackend | RayBackend


Run = Callable[[], Awaitable[float]]  # runs a job (or a batch); returns the engine's own seconds (0 for a batch)


async def _timed(run: Run) -> tuple[float, float]:
    """(wall seconds, wall minus the engine's own seconds: what the path to and from the engine cost)."""
    start = time.perf_counter()
    engine = await run()
    wall = time.perf_counter() - start
    return wall, wall - engine


async def _one(backend: Backend, request: StyleRequest) -> float:
    return (await backend.submit(request).result()).summary.seconds


async def _batch(backend: Backend, request: StyleRequest, jobs: int) -> float:
    await asyncio.gather(*(backend.submit(request).result() for _ in range(jobs)))
    return 0.0


async def _start(backend: Backend) -> float:
    """Start ``backend``, wait until every worker has loaded the weights, warm each up; the seconds to start."""
    started = time.perf_counter()
    await backend.start()
    await backend.wait_ready(timeout=900)
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128, help="output long side in px (default 128)")
    parser.add_argument("--iterations", type=int, default=30, help="iterations per job (default 30)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of every measurement (default 3)")
    parser.add_argument("--jobs", type=int, default=4, help="jobs submitted at once in part (b) (default 4)")
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
    print(f"job: {args.size} px, {args.iterations} iterations (one scale), CPU ({cores} cores), 1 thread per worker, "
          f"{args.rounds} rounds\n", flush=True)

    temp_dir = tempfile.mkdtemp(prefix="nstray-b-")
    began = time.perf_counter()
    # Logical CPUs for all four backends below at once (each is idle while another is measured).
    ray.init(num_cpus=4, include_dashboard=False, object_store_memory=256 * 1024 * 1024, _temp_dir=temp_dir,
             logging_level=logging.WARNING, log_to_driver=False)
    ray_start = time.perf_counter() - began
    backends: dict[str, Backend] = {
        f"process pool, {n} worker{'s' * (n > 1)}": ProcessPoolBackend(
            workers=n, device="cpu", weights=weights, threads_per_worker=1, max_queue=args.jobs
        )
        for n in (1, 2)
    }
    backends |= {
        f"Ray, {n} actor{'s' * (n > 1)}": RayBackend(
            workers=n, device="cpu", weights=weights, cpus_per_worker=1, max_queue=args.jobs
        )
        for n in (1, 2)
    }
    try:
        starts = {name: await _start(backend) for name, backend in backends.items()}
        torch.set_num_threads(1)
        model = load_vgg(weights, "cpu")

        async def direct(opts: StyleOptions) -> float:
            return stylize(content, [style], options=opts, model=model).summary.seconds

        single: dict[str, Run] = {"direct stylize()": functools.partial(direct, options)}
        single |= {name: functools.partial(_one, b, request) for name, b in backends.items() if "1 " in name}
        fixed: dict[str, Run] = {"direct stylize()": functools.partial(direct, tiny_options)}
        fixed |= {name: functools.partial(_one, b, tiny) for name, b in backends.items() if "1 " in name}
        batches: dict[str, Run] = {name: functools.partial(_batch, b, request, args.jobs) for name, b in backends.items()}
        for runs in (single, fixed, batches):  # warm-up: first-call costs are paid once per process
            for run in runs.values():
                await run()
        names = (*single, *(f"{n} (fixed)" for n in fixed), *(f"batch {n}" for n in batches))
        walls: dict[str, list[float]] = {name: [] for name in names}
        extras: dict[str, list[float]] = {name: [] for name in names}
        for round_number in range(args.rounds):
            timed = [(name, run) for name, run in single.items()]
            timed += [(f"{name} (fixed)", run) for name, run in fixed.items() for _ in range(3)]
            timed += [(f"batch {name}", run) for name, run in batches.items()]
            for name, run in timed:
                wall, extra = await _timed(run)
                walls[name].append(wall)
                extras[name].append(extra)
            print(f"round {round_number + 1} of {args.rounds} done", flush=True)
        median = {name: statistics.median(values) for name, values in walls.items()}
        over = {name: statistics.median(values) * 1000 for name, values in extras.items()}

        d = median["direct stylize()"]
        print(f"\n(a) one job at a time, 1 thread in every mode, median of {args.rounds} interleaved rounds.")
        print("    overhead = submit-to-result time minus the engine's own time in the worker (load-proof)")
        for name in single:
            ratio = "" if name == "direct stylize()" else f", {median[name] / d:.3f}x direct's time"
            print(f"    {name + ':':26} {median[name]:7.3f} s/job, overhead {over[name]:6.1f} ms{ratio}")
        r, p = "Ray, 1 actor", "process pool, 1 worker"
        print(f"    Ray vs process pool: overhead {over[r] - over[p]:+.1f} ms/job "
              f"({over[r] / max(over[p], 0.1):.1f}x the pool's); time per job {median[r] / median[p]:.3f}x")
        print("    1-iteration 48 px job, overhead: " + ", ".join(
            f"{name} {over[f'{name} (fixed)']:.1f} ms" for name in fixed))
        print(f"    start: local Ray {ray_start:.1f} s (once); " + ", ".join(
            f"{name} {seconds:.1f} s" for name, seconds in starts.items()))

        print(f"\n(b) throughput, {args.jobs} jobs submitted at once, median of {args.rounds} interleaved rounds")
        rate = {name: args.jobs / median[f"batch {name}"] * 60 for name in batches}
        for name in batches:
            print(f"    {name + ':':26} {median[f'batch {name}']:7.2f} s = {rate[name]:6.1f} jobs/min")
        print(f"    2 vs 1 actors: {rate['Ray, 2 actors'] / rate['Ray, 1 actor']:.2f}x; "
              f"Ray vs process pool: {rate['Ray, 1 actor'] / rate['process pool, 1 worker']:.2f}x (1 worker), "
              f"{rate['Ray, 2 actors'] / rate['process pool, 2 workers']:.2f}x (2 workers)")
    finally:
        for backend in backends.values():
            await backend.close()
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())

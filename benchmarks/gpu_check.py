"""Everything a GPU must prove, in one call of at most ~6 minutes on one GPU: ``make gpu-check``.

    python -m benchmarks.gpu_check [--output out/gpu-check.txt] [--budget 330]
    python -m benchmarks.gpu_check --device cpu --quick     # the same code paths on the CPU, tiny sizes (a dry run)

Sections, each a few lines of one table (printed as it goes, and written to --output at the end):
(1) one VGG19 forward+backward through relu5_1 at 512 and 1024 px: float32 NCHW, bfloat16 NCHW, bfloat16
    channels-last (the engine's path), and torch.compile of the bfloat16 trunk (compile time shown separately);
(2) the presets end to end at their own sizes and at 1024 px, with peak memory per output megapixel;
(3) the bfloat16 quality bound: a bf16 job's final float32 objective within 2% of the same job in float32;
(4) the worker pool with one GPU worker: start (model loaded once), a job, two jobs back to back, the overhead
    per job against calling the engine directly;
(5) a real out-of-memory retry: a child process capped (``torch.cuda.set_per_process_memory_fraction``) so that a
    large job overflows; the worker's code retries it smaller and the result carries a note;
(6) an animation: the 16-frame 256 px clip of ``make bench`` with ``fast``: each frame's time, the steadiness and a
    frame's losses against a still's (fails above 1.5 or 1.10).
Uses ../shared/weights and no network. Without a CUDA GPU it says so in one line and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import multiprocessing
import resource
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from benchmarks.animation import paint_sample_clip
from benchmarks.common import IMAGES, ROOT, WEIGHTS, load_note, need_weights, open_rgb
from nst_engine import StyleOptions, evaluate_losses, load_vgg, stylize
from nst_engine.engine import check_options, plan_scales
from nst_engine.vgg import VGGFeatures

CONTENT = IMAGES / "content" / "chelsea.png"
STYLE = IMAGES / "style" / "starry_night.jpg"
BF16_BOUND = 1.02  # a bf16 run's final float32 objective may be at most 2% above the float32 run's


@dataclass
class Plan:
    """Sizes and work of each section: the real check, or a tiny dry run of the same code on the CPU."""

    pass_sides: tuple[int, ...] = (512, 1024)
    presets: tuple[tuple[str, int | None], ...] = (
        ("fast", None), ("balanced", None), ("quality", None), ("fast", 1024), ("balanced", 1024), ("quality", 1024),
    )  # fmt: skip
    iterations: int | None = None  # None: the presets' own schedules
    bound_size: int = 512
    pool_size: int = 512
    oom_size: int = 1536
    repeats: int = 5
    compile: bool = True
    clip_frames: int = 16
    clip_size: int = 256

    @classmethod
    def quick(cls) -> Plan:
        return cls(pass_sides=(64, 96), presets=(("fast", 64), ("balanced", 96)), iterations=2, bound_size=96,
                   pool_size=64, oom_size=512, repeats=2, compile=False, clip_frames=4, clip_size=64)  # fmt: skip


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)

    def __call__(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(self.lines) + "\n")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    fn()
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def _pass(trunk: Callable[[torch.Tensor], torch.Tensor], model: VGGFeatures, side: int, dtype: torch.dtype, channels_last: bool):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.rand(1, 3, side, side, device=model.device).contiguous(memory_format=fmt)

    def run() -> None:
        image = x.clone().requires_grad_(True)
        h = ((image - model.mean) / model.std).to(dtype)
        trunk(h).float().pow(2).mean().backward()

    return run


def check_passes(report: Report, model: VGGFeatures, plan: Plan, deadline: float) -> None:
    dev = model.device
    # Copies: Module.to(memory_format=...) converts in place, and the engine's own trunks stay as they are.
    fp32_nchw = copy.deepcopy(model.trunk(None)).to(memory_format=torch.contiguous_format)
    bf16_cl = model.trunk(torch.bfloat16)
    bf16_nchw = copy.deepcopy(bf16_cl).to(memory_format=torch.contiguous_format)
    report(f"(1) one VGG19 forward+backward through relu5_1, best of {plan.repeats} (seconds)")
    report(f"    {'side':>6} {'fp32 NCHW':>10} {'bf16 NCHW':>10} {'bf16 CL':>10} {'compiled':>10}  bf16 CL vs fp32")
    compiled = None
    compile_seconds = None
    for side in plan.pass_sides:
        fp32 = _best(_pass(fp32_nchw, model, side, torch.float32, False), dev, plan.repeats)
        nchw = _best(_pass(bf16_nchw, model, side, torch.bfloat16, False), dev, plan.repeats)
        cl = _best(_pass(bf16_cl, model, side, torch.bfloat16, True), dev, plan.repeats)
        comp = float("nan")
        if plan.compile and time.monotonic() < deadline - 150:
            if compiled is None:
                compiled = torch.compile(bf16_cl)
                start = time.perf_counter()
                _pass(compiled, model, side, torch.bfloat16, True)()
                _sync(dev)
                compile_seconds = time.perf_counter() - start
            comp = _best(_pass(compiled, model, side, torch.bfloat16, True), dev, plan.repeats)
        report(f"    {side:>6} {fp32:>10.4f} {nchw:>10.4f} {cl:>10.4f} {comp:>10.4f}  {fp32 / cl:.1f}x")
    if compile_seconds is not None:
        report(f"    torch.compile: first call {compile_seconds:.1f} s (compile included)")
    elif plan.compile:
        report("    torch.compile: skipped (not enough of the time budget left)")


def _job_options(plan: Plan, preset: str, size: int | None, **extra: object) -> StyleOptions:
    return StyleOptions(preset=preset, size=size, iterations=plan.iterations, **extra)  # type: ignore[arg-type]


def _peak_bytes(device: torch.device) -> Callable[[], int]:
    """Start measuring peak memory; the returned call gives the peak growth in bytes since now."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        return lambda: torch.cuda.max_memory_allocated(device) - base
    base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return lambda: (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_kb) * 1024  # a high-water mark only


def check_presets(report: Report, model: VGGFeatures, plan: Plan, content: Image.Image, style: Image.Image,
                  deadline: float) -> None:  # fmt: skip
    report("\n(2) presets end to end (style targets computed afresh), peak memory per output megapixel"
           + (" (CPU: growth of the peak RSS, 0 when below an earlier peak)" if model.device.type == "cpu" else ""))
    report(f"    {'preset':<9} {'size':>9} {'seconds':>8} {'iters':>6} {'prec':>5} {'MB/MP':>8}")
    for preset, size in plan.presets:
        if time.monotonic() > deadline - 90:
            report(f"    {preset:<9} skipped: time budget")
            continue
        peak = _peak_bytes(model.device)
        res = stylize(content, style, model=model, options=_job_options(plan, preset, size), style_cache=None)
        s = res.summary
        per_mp = peak() / (s.width * s.height / 1e6)
        report(f"    {preset:<9} {s.width:>4}x{s.height:<4} {s.seconds:>8.2f} {s.iterations:>6} {s.precision:>5} "
               f"{per_mp / 2**20:>8.0f}")  # fmt: skip


def check_bf16_bound(report: Report, model: VGGFeatures, plan: Plan, content: Image.Image, style: Image.Image) -> bool:
    report(f"\n(3) bfloat16 quality bound at {plan.bound_size} px (balanced): final float32 objective, bf16 vs fp32")
    runs = {}
    for precision in ("fp32", "bf16"):
        opts = _job_options(plan, "balanced", plan.bound_size, precision=precision)
        runs[precision] = stylize(content, style, model=model, options=opts, style_cache=None)
    fp32, _ = evaluate_losses(runs["fp32"].image, content, style, model=model, precision="fp32", preset="balanced")
    bf16, _ = evaluate_losses(runs["bf16"].image, content, style, model=model, precision="fp32", preset="balanced")
    ok = bf16.total <= BF16_BOUND * fp32.total
    report(f"    fp32 {fp32.total:.4f} ({runs['fp32'].summary.seconds:.1f} s), bf16 {bf16.total:.4f} "
           f"({runs['bf16'].summary.seconds:.1f} s): ratio {bf16.total / fp32.total:.4f} -> "
           f"{'PASS' if ok else 'FAIL'} (bound {BF16_BOUND})")  # fmt: skip
    return ok


async def _pool_section(report: Report, device: str, weights: str, plan: Plan, content: Image.Image,
                        style: Image.Image, direct_seconds: float) -> None:  # fmt: skip
    from nst_engine.pool import ProcessPoolBackend, StyleRequest

    options = _job_options(plan, "fast", plan.pool_size)
    request = StyleRequest(content, [style], options, owner="gpu-check")
    started = time.perf_counter()
    async with ProcessPoolBackend(workers=1, device=device, weights=weights) as pool:
        start_seconds = time.perf_counter() - started
        first = time.perf_counter()
        await pool.submit(request).result()
        first_seconds = time.perf_counter() - first
        pid = pool.workers[0].pid
        begin = time.perf_counter()
        a, b = pool.submit(request), pool.submit(request)
        await a.result()
        a_done = time.perf_counter() - begin
        await b.result()
        both = time.perf_counter() - begin
        info = pool.workers[0]
    report(f"    start {start_seconds:.1f} s (spawn, import, load the weights once); first job {first_seconds:.2f} s")
    report(f"    two jobs back to back: {a_done:.2f} s and {both:.2f} s (second done); "
           f"{both / 2:.2f} s per job against {direct_seconds:.2f} s direct: {both / 2 - direct_seconds:+.2f} s/job")
    loaded_once = info.pid == pid and info.restarts == 0 and info.jobs_done == 3
    report(f"    same worker process for all three jobs, no restart: {'PASS' if loaded_once else 'FAIL'} "
           f"(pid {info.pid}, jobs done {info.jobs_done}, restarts {info.restarts})")


def check_pool(report: Report, model: VGGFeatures, weights: str, plan: Plan, content: Image.Image,
               style: Image.Image) -> None:  # fmt: skip
    report(f"\n(4) worker pool, one worker on {model.device}, fast at {plan.pool_size} px")
    options = _job_options(plan, "fast", plan.pool_size)
    stylize(content, style, model=model, options=options)  # warm (and cache the targets, as the worker will)
    start = time.perf_counter()
    stylize(content, style, model=model, options=options)
    direct = time.perf_counter() - start
    asyncio.run(_pool_section(report, str(model.device), weights, plan, content, style, direct))


def _vm_peak() -> int:
    """This process's peak virtual memory in bytes (Linux)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmPeak:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmPeak in /proc/self/status")


def _oom_child(device: str, weights: str, size: int) -> tuple[str, str]:
    """In a fresh process: measure what the job needs at the retry size, cap memory a little above that, then run the
    job at full size through the worker's own code, which must run out of memory and retry smaller."""
    from nst_engine.pool.wire import Done, RawImage, RunMessage
    from nst_engine.pool.worker import OOM_RETRY_FACTOR, run_job

    model = load_vgg(weights, device)
    content, style = open_rgb(CONTENT), open_rgb(STYLE)
    # One iteration per scale: memory does not depend on the number of iterations.
    options = StyleOptions(preset="balanced", size=size, iterations=1)
    retry = StyleOptions(preset="balanced", size=round(size * OOM_RETRY_FACTOR), iterations=1)
    if model.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(model.device)
        stylize(content, style, model=model, options=retry, style_cache=None)
        allowed = int(torch.cuda.max_memory_reserved(model.device) * 1.3)
        total = torch.cuda.get_device_properties(model.device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, allowed / total), model.device)
        cap = f"GPU memory capped at {allowed / 2**30:.2f} GiB (1.3x the retry size's peak)"
    else:  # the address space: with freed memory kept (load_vgg), the retry reuses what the measurement used
        stylize(content, style, model=model, options=retry, style_cache=None)
        allowed = int(_vm_peak() * 1.1)
        resource.setrlimit(resource.RLIMIT_AS, (allowed, resource.RLIM_INFINITY))
        cap = f"address space capped at {allowed / 2**30:.2f} GiB (1.1x the retry size's peak)"
    spec = RunMessage(seq=1, job_id="oom-check", content=RawImage.from_pil(content), styles=(RawImage.from_pil(style),),
                   options=options)  # fmt: skip
    outcome = run_job(spec, model=model, send=lambda _message: None, should_stop=lambda: False, progress_interval=1)
    if isinstance(outcome, Done):
        s = outcome.summary
        return cap, f"done at {s.width}x{s.height}; notes: {'; '.join(s.notes) or 'none'}"
    return cap, f"failed: {outcome.error.message}"


def check_oom(report: Report, device: str, weights: str, plan: Plan) -> bool:
    content = open_rgb(CONTENT)
    final = plan_scales(content.width, content.height, check_options(StyleOptions(size=plan.oom_size), 1))[-1]
    report(f"\n(5) out-of-memory retry: balanced at {plan.oom_size} px ({final.width}x{final.height}), one iteration "
           "per scale, in a child process capped just above what the retry size needs")  # fmt: skip
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        capped, outcome = pool.submit(_oom_child, device, weights, plan.oom_size).result()
    ok = outcome.startswith("done") and "retried at" in outcome
    report(f"    {capped}; {outcome} -> {'PASS' if ok else 'FAIL'}")
    return ok


def check_animation(report: Report, model: VGGFeatures, plan: Plan) -> bool:
    """The 16-frame 256 px clip of ``make bench`` (benchmarks/animation.py) on this device: times and steadiness."""
    report(f"\n(6) animation: a {plan.clip_frames}-frame {plan.clip_size} px clip with fast (benchmarks/animation.py)")
    figures, _ = paint_sample_clip(model, frames=plan.clip_frames, size=plan.clip_size, preset="fast")
    report(f"    first frame {figures['first']:.2f} s; each next painted frame {figures['next_mean']:.2f} s mean, "
           f"{figures['next_worst']:.2f} s worst ({figures['next_worst'] / figures['first']:.2f} of the first); "
           f"whole clip {figures['total']:.1f} s")  # fmt: skip
    steady = figures["steadiness"] <= 1.5 and figures["loss_ratio"] <= 1.10
    report(f"    steadiness {figures['steadiness']:.2f} (<= 1.5), a frame's loss / a still's "
           f"{figures['loss_ratio']:.3f} (<= 1.10): {'ok' if steady else 'FAIL'}")  # fmt: skip
    return steady


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default) | cuda:N | cpu (a dry run of the code paths)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and 2 iterations: checks the script itself")
    parser.add_argument("--weights", default=str(WEIGHTS))
    parser.add_argument("--output", type=Path, default=ROOT / "out" / "gpu-check.txt")
    parser.add_argument("--budget", type=float, help="seconds; later sections are skipped past it (default 330; "
                        "3600 with --quick, whose tiny jobs are not what the budget is for)")
    parser.add_argument("--sections", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6], help="run only these")
    args = parser.parse_args(argv)

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu-check: no CUDA GPU on this machine (torch.cuda.is_available() is False); nothing to measure.")
        return 0
    budget = args.budget if args.budget is not None else (3600.0 if args.quick else 330.0)
    deadline = time.monotonic() + budget
    weights = str(need_weights(args.weights))
    plan = Plan.quick() if args.quick else Plan()
    report = Report()
    model = load_vgg(weights, args.device)
    name = torch.cuda.get_device_name(model.device) if model.device.type == "cuda" else "CPU (dry run)"
    report(f"gpu-check on {name}; torch {torch.__version__}; {'QUICK dry run, ' if args.quick else ''}"
           f"budget {budget:.0f} s; {load_note()}")  # fmt: skip
    content, style = open_rgb(CONTENT), open_rgb(STYLE)
    failures = 0
    wanted = set(args.sections)
    try:
        if 1 in wanted:
            check_passes(report, model, plan, deadline)
        if 2 in wanted:
            check_presets(report, model, plan, content, style, deadline)
        if 3 in wanted:
            failures += not check_bf16_bound(report, model, plan, content, style)
        if 4 not in wanted:
            pass
        elif time.monotonic() < deadline - 60:
            check_pool(report, model, weights, plan, content, style)
        else:
            report("\n(4) worker pool: skipped (time budget)")
        if 5 not in wanted:
            pass
        elif time.monotonic() < deadline - 30:
            failures += not check_oom(report, args.device, weights, plan)
        else:
            report("\n(5) out-of-memory retry: skipped (time budget)")
        if 6 not in wanted:
            pass
        elif time.monotonic() < deadline - 30:
            failures += not check_animation(report, model, plan)
        else:
            report("\n(6) animation: skipped (time budget)")
    finally:
        report(f"\ntotal {budget - (deadline - time.monotonic()):.0f} s; {failures} check(s) failed")
        report.write(args.output)
        print(f"wrote {args.output}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

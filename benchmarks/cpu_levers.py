"""Which CPU levers pay off: one VGG19 forward+backward through relu5_1, and one evaluation of the engine's objective,
measured for each variant in its own fresh process, the variants interleaved round after round (a shared machine's
load drifts; interleaving spreads it over all of them).

    python -m benchmarks.cpu_levers [--side 512] [--rounds 3] [--compile] [--cpu-time]

--cpu-time runs every variant on one thread and times it by the CPU time it used (user + system, page faults
included) rather than the wall clock: on a machine whose cores are oversubscribed by others, wall times of
multi-threaded passes say more about the neighbours than about the code.

Variants of the pass: autocast or a bfloat16 copy of the weights; glibc's default allocator or
``retain_freed_memory``; the modules one by one or the fused conv+ReLU blocks of ``nst_engine.kernels`` (the engine's);
optionally torch.compile of the bfloat16 trunk. Variants of the objective at the job's size: Gram matrices from a
float32 copy of each feature map, in the features' own precision on a channels-last view with the plain
modules and autograd's Gram backward, and with the fused blocks and the one-product Gram backward (the engine's).
Prints the best time of each and the page faults per pass.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import torch

from benchmarks.common import WEIGHTS, best_time, load_note, need_weights

PASS_VARIANTS = {
    "autocast, default allocator": ("autocast", False),
    "autocast, freed memory kept": ("autocast", True),
    "bf16 weights, default allocator": ("bf16", False),
    "bf16 weights, freed memory kept": ("bf16", True),
    "bf16 weights, freed memory kept, fused blocks (engine)": ("fused", True),
}
OBJECTIVE_VARIANTS = {
    "Gram from float32 copies, plain modules": "fp32-gram",
    "Gram in bf16 on a channels-last view, plain modules": "plain",
    "the same, fused blocks, one-product Gram backward (engine)": "engine",
}
COMPILED = "bf16 weights compiled (torch.compile), freed memory kept"


def _old_gram(features: torch.Tensor) -> torch.Tensor:
    """A Gram from a float32 copy of the map, reshaped (another copy for channels-last)."""
    _, channels, height, width = features.shape
    flat = features.float().reshape(channels, height * width)
    return (flat @ flat.T) / (height * width)


def _autograd_gram(features: torch.Tensor) -> torch.Tensor:
    """The Gram of the second engine: in the features' precision on a channels-last view, autograd's backward."""
    _, channels, height, width = features.shape
    positions = features.permute(0, 2, 3, 1).reshape(height * width, channels)
    return (positions.T @ positions).float() / (height * width)


def _clock(cpu_time: bool):
    if cpu_time:
        torch.set_num_threads(1)
        return time.process_time
    return time.perf_counter


def measure_pass(weights: str, mode: str, retain: bool, side: int, repeats: int, cpu_time: bool = False
                 ) -> tuple[float, float]:  # fmt: skip
    """(best seconds, page faults per pass) in this fresh process."""
    from nst_engine.device import retain_freed_memory

    clock = _clock(cpu_time)
    from nst_engine import kernels
    from nst_engine.weights import load_features

    kernels.ENABLED = mode == "fused"  # the other variants run the modules one by one, as the engine did
    if retain:
        retain_freed_memory()
    model = load_features(weights).to(memory_format=torch.channels_last)
    x = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0))
    trunk: Callable[[torch.Tensor], torch.Tensor] = model.trunk(torch.bfloat16)
    if mode == "compiled":
        trunk = torch.compile(trunk)

    def run() -> None:
        image = x.clone().contiguous(memory_format=torch.channels_last).requires_grad_(True)
        if mode == "autocast":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = model(image, ("relu5_1",))["relu5_1"]
        elif mode == "fused":
            out = model(image, ("relu5_1",), torch.bfloat16)["relu5_1"]
        else:
            out = trunk(((image - model.mean) / model.std).to(torch.bfloat16))
        out.float().pow(2).mean().backward()

    for _ in range(2 if mode == "compiled" else 1):
        run()
    best, faults = float("inf"), 0
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = clock()
        run()
        best = min(best, clock() - start)
        faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    return best, faults / repeats


def measure_objective(weights: str, variant: str, size: tuple[int, int], repeats: int, cpu_time: bool = False
                      ) -> float:  # fmt: skip
    """Best seconds of one evaluation of the engine's objective + gradient (freed memory kept in all variants)."""
    clock = _clock(cpu_time)
    import nst_engine.engine as engine
    from nst_engine import kernels, load_vgg
    from nst_engine.types import StyleOptions

    if variant != "engine":
        kernels.ENABLED = False
        engine.gram_matrix = _old_gram if variant == "fp32-gram" else _autograd_gram
    model = load_vgg(weights, "cpu")
    width, height = size
    content = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    style = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(1))
    grams = [engine._style_grams(model, style, True)]
    objective = engine._Objective(model, content, grams, engine.check_options(StyleOptions(), 1), True)
    x = content.contiguous(memory_format=torch.channels_last)

    def run() -> None:
        image = x.clone().requires_grad_(True)
        objective(image)[0].backward()

    return best_time(run, repeats, clock=clock)


def measure_recipe_eval(weights: str, size: tuple[int, int], repeats: int, cpu_time: bool = False) -> float:
    """Best seconds of one closure of the tutorial's recipe at ``size`` (its five convolutions, Grams, losses,
    backward), in a fresh process with PyTorch's defaults."""
    from benchmarks.common import IMAGES, open_rgb, torchvision_scale
    from benchmarks.engine_vs_tutorial import _recipe_eval
    from nst_engine.weights import load_features

    if cpu_time:
        torch.set_num_threads(1)
    features = torchvision_scale(load_features(weights).features).requires_grad_(False).eval()
    content = open_rgb(IMAGES / "content" / "chelsea.png")
    return _recipe_eval(features, content, size, repeats, clock=time.process_time if cpu_time else time.perf_counter)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--size", type=int, nargs=2, default=(512, 341), help="objective size, width height")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also torch.compile (about a minute to compile)")
    parser.add_argument("--cpu-time", action="store_true", help="one thread, CPU seconds (for a loaded machine)")
    parser.add_argument("--recipe-only", action="store_true", help="only the tutorial recipe's cost per evaluation")
    parser.add_argument("--weights", default=str(WEIGHTS))
    args = parser.parse_args(argv)
    weights = str(need_weights(args.weights))
    variants = dict(PASS_VARIANTS)
    if args.compile:
        variants[COMPILED] = ("compiled", True)

    unit = "CPU seconds on one thread" if args.cpu_time else "wall seconds, all threads"
    print(f"{load_note()}; {args.rounds} rounds, each variant in a fresh process; {unit}")
    if args.recipe_only:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            recipe = pool.submit(measure_recipe_eval, weights, tuple(args.size), args.repeats, args.cpu_time).result()
        w, h = args.size
        print(f"one closure of the tutorial recipe at {w}x{h} (5 convolutions, float32, NCHW): {recipe:.3f} s; "
              f"its 320 evaluations: {320 * recipe:.0f} s\n{load_note()}")
        return
    passes: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    objective: dict[str, list[float]] = {name: [] for name in OBJECTIVE_VARIANTS}
    ctx = multiprocessing.get_context("spawn")
    for _ in range(args.rounds):
        for name, (mode, retain) in variants.items():
            with ProcessPoolExecutor(1, mp_context=ctx) as pool:
                passes[name].append(pool.submit(measure_pass, weights, mode, retain, args.side, args.repeats,
                                                   args.cpu_time).result())
        for name, variant in OBJECTIVE_VARIANTS.items():
            with ProcessPoolExecutor(1, mp_context=ctx) as pool:
                objective[name].append(pool.submit(measure_objective, weights, variant, tuple(args.size), args.repeats,
                                                   args.cpu_time).result())  # fmt: skip
    print(f"\none forward+backward through relu5_1 at {args.side} px (best over rounds; page faults per pass)")
    before = min(t for t, _ in passes[next(iter(variants))])
    for name, runs in passes.items():
        best = min(t for t, _ in runs)
        faults = min(f for _, f in runs)
        print(f"  {name:<58} {best:6.3f} s  {faults:>8.0f} faults  {before / best:4.2f}x")
    w, h = args.size
    print(f"\none objective + gradient at {w}x{h} (bf16, freed memory kept)")
    first = min(next(iter(objective.values())))
    for name, seconds in objective.items():
        print(f"  {name:<58} {min(seconds):6.3f} s  {first / min(seconds):4.2f}x")
    print(f"\n{load_note()}")


if __name__ == "__main__":
    main()

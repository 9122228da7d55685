"""Benchmark: this engine against the PyTorch tutorial's recipe, same images, same weights, same output size.

    python -m benchmarks.engine_vs_tutorial [--size 512] [--steps 300] [--gallery out/bench/gallery.jpg]

The baseline side (the recipe and a plain float32 pass) runs in a fresh child process with PyTorch's defaults,
as a user's script would; the engine runs in this process, set up as the worker pool sets it up (``load_vgg``).

(a) one VGG19 forward+backward through relu5_1 on a square: the engine's pass (bfloat16 weights and activations,
    channels-last, conv+ReLU blocks fused: ``nst_engine.kernels``) against a plain float32 NCHW pass through the same
    13 convolutions (frozen network, as the tutorial runs it); then one evaluation of each side's whole objective
    with its gradient at the job's output size: the engine's (13 convolutions through relu5_1, five Gram matrices,
    content, TV) and the recipe's (5 convolutions through conv3_1, five Gram matrices, content): different work, the
    per-step cost each method pays.
(b) end to end at --size: each preset, style targets computed afresh, against the recipe at the same output size.
(c) final losses of every picture under one yardstick (the engine's float32 objective, balanced weights).
(d) the style-target cache: the style image's passes for a balanced job at --size, computed vs found in the cache.
Timings on a shared machine vary with its load; each section prints the load average beside its figures.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from benchmarks.common import IMAGES, ROOT, WEIGHTS, best_time, load_note, need_weights, open_rgb, torchvision_scale
from benchmarks.tutorial_recipe import TutorialNet, TutorialResult, run_tutorial_recipe
from nst_engine import PRESETS, evaluate_losses, load_vgg, stylize
from nst_engine.device import bf16_supported
from nst_engine.engine import _Objective, _StyleTargets, check_options, plan_scales
from nst_engine.pixels import resize, to_tensor
from nst_engine.presets import STYLE_LAYERS
from nst_engine.style_cache import StyleTargetCache
from nst_engine.types import StyleOptions
from nst_engine.vgg import LAYER_INDEX, VGGFeatures


@dataclass
class BaselineFigures:
    plain_pass: dict[int, float]  # side -> seconds, plain float32 forward+backward through relu5_1
    recipe_eval: float  # seconds per evaluation of the recipe's objective + gradient at the output size
    tutorial: TutorialResult | None
    load: str


def _plain_pass(features: torch.nn.Sequential, side: int, repeats: int) -> float:
    trunk = features[: LAYER_INDEX["relu5_1"] + 1]
    x = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0))

    def run() -> None:
        image = x.clone().requires_grad_(True)
        trunk(image).pow(2).mean().backward()

    return best_time(run, repeats)


def _recipe_eval(features: torch.nn.Sequential, content: Image.Image, size: tuple[int, int], repeats: int,
                 clock: Callable[[], float] = time.perf_counter) -> float:  # fmt: skip
    """One closure of the recipe (its forward, five Grams, losses, backward) without the optimiser."""
    net = TutorialNet(features).eval().requires_grad_(False)
    x = torch.rand(1, 3, size[1], size[0], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        targets = net(x)

    def run() -> None:
        image = x.clone().requires_grad_(True)
        feats = net(image)
        loss = sum((_gram_plain(feats[i]) - _gram_plain(targets[i])).pow(2).mean() for i in (1, 2, 3, 4, 5))
        (loss + (feats[4] - targets[4]).pow(2).mean()).backward()

    return best_time(run, repeats, clock=clock)


def _gram_plain(x: torch.Tensor) -> torch.Tensor:
    a, b, c, d = x.shape
    flat = x.view(a * b, c * d)
    return flat @ flat.t() / (a * b * c * d)


def run_baseline(
    weights: str, content_path: str, style_path: str, size: tuple[int, int], steps: int, repeats: int,
    sides: tuple[int, ...], tutorial: bool,
) -> BaselineFigures:  # fmt: skip
    """The baseline side, meant to run in a fresh process (PyTorch defaults; no engine set-up)."""
    from nst_engine.weights import load_features  # the weights only: load_vgg would tune this process

    features = torchvision_scale(load_features(weights).features).requires_grad_(False).eval()
    content, style = open_rgb(Path(content_path)), open_rgb(Path(style_path))
    plain = {side: _plain_pass(features, side, repeats) for side in sides}
    recipe_eval = _recipe_eval(features, content, size, repeats)
    result = run_tutorial_recipe(features, content, style, size=size, steps=steps) if tutorial else None
    return BaselineFigures(plain, recipe_eval, result, load_note())


def _engine_pass(model: VGGFeatures, side: int, repeats: int, use_bf16: bool) -> float:
    x = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0))
    dtype = torch.bfloat16 if use_bf16 else None

    def run() -> None:
        image = x.clone().contiguous(memory_format=torch.channels_last).requires_grad_(True)
        model(image, ("relu5_1",), dtype)["relu5_1"].float().pow(2).mean().backward()

    return best_time(run, repeats)


def _engine_eval(model: VGGFeatures, content: Image.Image, style: Image.Image, size: tuple[int, int], repeats: int,
                 use_bf16: bool) -> float:  # fmt: skip
    """One evaluation of the engine's objective and its gradient at ``size`` (balanced weights)."""
    settings = check_options(StyleOptions(), 1)
    content_t = resize(to_tensor(content, model.device), *size)
    grams = [_StyleTargets(model, [style], use_bf16, None).grams(0, to_tensor(style, model.device), max(size), 1.0)]
    objective = _Objective(model, content_t, grams, settings, use_bf16)
    x = content_t.contiguous(memory_format=torch.channels_last)

    def run() -> None:
        image = x.clone().requires_grad_(True)
        objective(image)[0].backward()

    return best_time(run, repeats)


def _target_seconds(model: VGGFeatures, style: Image.Image, size: int, use_bf16: bool, repeats: int,
                    content_size: tuple[int, int]) -> tuple[float, float, int]:  # fmt: skip
    """Seconds to get a balanced job's style targets at every scale: computed, and found in a warm cache."""
    settings = check_options(StyleOptions(size=size), 1)
    scales = plan_scales(*content_size, settings)
    style_full = to_tensor(style, model.device)
    cache = StyleTargetCache()

    def targets(store: StyleTargetCache | None) -> None:
        got = _StyleTargets(model, [style], use_bf16, store)  # includes the digest of the style's pixels
        for scale in scales:
            got.grams(0, style_full, max(scale.width, scale.height), 1.0)

    cold = best_time(lambda: targets(None), repeats)
    targets(cache)
    warm = best_time(lambda: targets(cache), repeats, warmup=0)
    return cold, warm, len(scales)


def _label(image: Image.Image, text: str, height: int) -> Image.Image:
    image = image.copy()
    image.thumbnail((10_000, height), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (image.width, image.height + 22), "white")
    canvas.paste(image, (0, 0))
    ImageDraw.Draw(canvas).text((6, image.height + 5), text, fill="black")
    return canvas


def save_gallery(path: Path, tiles: list[tuple[str, Image.Image]], height: int = 256) -> None:
    labelled = [_label(img, text, height) for text, img in tiles]
    width = sum(t.width for t in labelled) + 6 * (len(labelled) - 1)
    sheet = Image.new("RGB", (width, max(t.height for t in labelled)), "white")
    x = 0
    for tile in labelled:
        sheet.paste(tile, (x, 0))
        x += tile.width + 6
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, quality=88)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=300, help="tutorial recipe closure evaluations")
    parser.add_argument("--content", type=Path, default=IMAGES / "content/chelsea.png")
    parser.add_argument("--style", type=Path, default=IMAGES / "style/starry_night.jpg")
    parser.add_argument("--weights", default=str(WEIGHTS))
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "bench")
    parser.add_argument("--gallery", type=Path, help="also write a side-by-side picture of all results here")
    parser.add_argument("--skip-tutorial", action="store_true", help="no recipe run: (a) and (d) only, engine side")
    args = parser.parse_args(argv)

    weights = need_weights(args.weights)
    content, style = open_rgb(args.content), open_rgb(args.style)
    settings = check_options(StyleOptions(size=args.size), 1)
    final = plan_scales(content.width, content.height, settings)[-1]
    size = (final.width, final.height)
    sides = (256, 512)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {load_note()}")
    print(f"content {args.content.name} -> {size[0]}x{size[1]}, style {args.style.name}")
    print("baseline side: a fresh process with PyTorch's defaults (plain passes, then the tutorial recipe)...", flush=True)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        baseline = pool.submit(run_baseline, str(weights), str(args.content), str(args.style), size, args.steps,
                               args.repeats, sides, not args.skip_tutorial).result()  # fmt: skip
    passes = ", ".join(f"{side} px {t:.3f} s" for side, t in baseline.plain_pass.items())
    recipe = f"; recipe {baseline.tutorial.seconds:.1f} s" if baseline.tutorial else ""
    print(f"  done: plain float32 pass {passes}; recipe evaluation {baseline.recipe_eval:.3f} s{recipe}; {baseline.load}")

    model = load_vgg(weights, "cpu")
    use_bf16 = bf16_supported(model.device)
    precision = "bf16" if use_bf16 else "fp32"
    print(f"engine precision {precision}; {load_note()}")

    print(f"\n(a) one VGG19 forward+backward through relu5_1 (13 convolutions), best of {args.repeats}")
    for side in sides:
        engine_s = _engine_pass(model, side, args.repeats, use_bf16)
        plain_s = baseline.plain_pass[side]
        print(f"  {side:>4} px square: engine {engine_s:.3f} s ({precision}, channels-last, fused blocks), plain "
              f"float32 NCHW {plain_s:.3f} s -> {plain_s / engine_s:.1f}x faster")  # fmt: skip
    engine_eval = _engine_eval(model, content, style, size, args.repeats, use_bf16)
    print(f"  one objective + gradient at {size[0]}x{size[1]}: engine {engine_eval:.3f} s (13 convolutions through "
          f"relu5_1, {precision}, 5 Grams, content, TV); tutorial recipe {baseline.recipe_eval:.3f} s (5 convolutions "
          "through conv3_1, float32, 5 Grams, content)")  # fmt: skip
    print(f"  {load_note()}")

    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, tuple[Image.Image, float]] = {}
    print(f"\n(b) end to end at {args.size} px ({size[0]}x{size[1]}), style targets computed afresh")
    for name in args.presets:
        res = stylize(content, style, model=model, preset=name, size=args.size, style_cache=None)
        res.image.save(args.out / f"{name}.png")
        results[name] = (res.image, res.summary.seconds)
        print(f"  {name:<9} {res.summary.seconds:7.1f} s  {res.summary.iterations} {res.summary.optimizer} iterations, "
              f"{res.summary.precision}")  # fmt: skip
    tut = baseline.tutorial
    if tut is not None:
        tut.image.save(args.out / "tutorial.png")
        results["tutorial"] = (tut.image, tut.seconds)
        note = f" (diverged: final loss {tut.style_loss + tut.content_loss:.3g}, best {tut.best_loss:.3g})"
        print(f"  {'tutorial':<9} {tut.seconds:7.1f} s  {tut.evaluations} L-BFGS evaluations, fp32"
              + (note if tut.diverged else ""))  # fmt: skip
        for name in args.presets:
            ratio = results[name][1] / tut.seconds
            print(f"  {name} takes {ratio:.3f} of the tutorial recipe's time ({1 / ratio:.1f}x faster)")
    print(f"  {load_note()}")

    print("\n(c) final losses under one yardstick (engine objective, float32, balanced weights; lower is better)")
    print(f"  {'picture':<10}{'content':>10}{'style':>10}{'tv':>10}{'total':>10}")
    for name, (image, _) in results.items():
        terms, _ = evaluate_losses(image, content, style, model=model, precision="fp32")
        print(f"  {name:<10}{terms.content:>10.3f}{terms.style:>10.3f}{terms.tv:>10.4f}{terms.total:>10.3f}")

    cold, warm, n_scales = _target_seconds(model, style, args.size, use_bf16, args.repeats, content.size)
    balanced = results.get("balanced")
    share = f", {100 * (cold - warm) / balanced[1]:.1f}% of the balanced job above" if balanced else ""
    print(f"\n(d) style targets of a balanced job at {args.size} px ({n_scales} scales x {len(STYLE_LAYERS)} layers)")
    print(f"  computed {cold:.3f} s, from the cache {warm:.4f} s (digest of the style's pixels included): "
          f"{cold - warm:.3f} s saved per job with a painting seen before{share}")  # fmt: skip

    if args.gallery:
        tiles = [("content", content), ("style", style)] + [(f"{k} ({s:.0f} s)", img) for k, (img, s) in results.items()]
        save_gallery(args.gallery, tiles)
        print(f"\nwrote {args.gallery}")


if __name__ == "__main__":
    main()

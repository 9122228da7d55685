"""Benchmark: this engine against the classic PyTorch-tutorial recipe, same process, same images, same weights.

    python -m benchmarks.engine_vs_tutorial [--size 512] [--steps 300] [--gallery docs/images/gallery.jpg]

Prints (a) seconds per VGG forward+backward through relu5_1, engine vs a plain float32 pass (frozen parameters,
NCHW, as the tutorial runs it), (b) end-to-end seconds of each preset at --size against the
recipe at --size, (c) final losses of every picture under one yardstick (the engine's float32 objective).
Uses ../shared/weights when present; the recipe gets the same weights rescaled to torchvision's scale.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from benchmarks.tutorial_recipe import run_tutorial_recipe
from nst_engine import PRESETS, evaluate_losses, load_vgg, stylize
from nst_engine.vgg import LAYER_INDEX

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def _torchvision_scale(features: torch.nn.Sequential) -> torch.nn.Sequential:
    """Caffe-scale weights → torchvision's scale: first conv and every bias divided by 255."""
    out = copy.deepcopy(features)
    convs = [m for m in out if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        convs[0].weight.div_(255)
        for conv in convs:
            conv.bias.div_(255)
    return out


def _time_pass(fn, repeats: int) -> float:
    fn()  # warm-up (allocator, oneDNN kernel selection)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bench_passes(model, plain: torch.nn.Sequential, size: int, repeats: int) -> tuple[float, float]:
    """Best-of-N seconds for one forward+backward through relu5_1: (engine, plain float32)."""
    layers = ("relu5_1",)
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    use_bf16 = model.device.type == "cpu" and _engine_precision(model) == "bf16"

    def engine_pass() -> None:
        image = x.clone().contiguous(memory_format=torch.channels_last).requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
            out = model(image, layers)["relu5_1"]
        out.float().pow(2).mean().backward()

    def plain_pass() -> None:
        image = x.clone().requires_grad_(True)
        out = plain[: LAYER_INDEX["relu5_1"] + 1](image)
        out.pow(2).mean().backward()

    return _time_pass(engine_pass, repeats), _time_pass(plain_pass, repeats)


def _engine_precision(model) -> str:
    from nst_engine.device import bf16_supported

    return "bf16" if bf16_supported(model.device) else "fp32"


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
    parser.add_argument("--content", type=Path, default=SHARED / "images/content/chelsea.png")
    parser.add_argument("--style", type=Path, default=SHARED / "images/style/starry_night.jpg")
    parser.add_argument("--weights", default=str(SHARED / "weights/vgg19_features_fp16.pth"))
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "bench")
    parser.add_argument("--gallery", type=Path, help="also write a side-by-side picture of all results here")
    parser.add_argument("--skip-tutorial", action="store_true", help="engine only (no (b)/(c) ratios)")
    args = parser.parse_args(argv)

    if not Path(args.weights).is_file():
        raise SystemExit(f"weights {args.weights} not found: this benchmark needs real VGG19 weights")
    model = load_vgg(args.weights, "cpu")
    tutorial_features = _torchvision_scale(model.features).float()
    plain = copy.deepcopy(tutorial_features).to(memory_format=torch.contiguous_format).requires_grad_(False)
    content, style = Image.open(args.content).convert("RGB"), Image.open(args.style).convert("RGB")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, engine precision {_engine_precision(model)}")

    print("\n(a) one VGG19 forward+backward through relu5_1, best of", args.repeats)
    for side in (256, 512):
        engine_s, plain_s = bench_passes(model, plain, side, args.repeats)
        print(f"  {side:>4} px: engine {engine_s:.3f} s, plain fp32 {plain_s:.3f} s → {plain_s / engine_s:.1f}x faster")

    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, tuple[Image.Image, float]] = {}
    print(f"\n(b) end to end at {args.size} px")
    for name in args.presets:
        res = stylize(content, style, model=model, preset=name, size=args.size)
        res.image.save(args.out / f"{name}.png")
        results[name] = (res.image, res.summary.seconds)
        print(f"  {name:<9} {res.summary.seconds:7.1f} s  {res.summary.iterations} iterations, {res.summary.precision}")
    if not args.skip_tutorial:
        tut = run_tutorial_recipe(tutorial_features, content, style, size=args.size, steps=args.steps)
        tut.image.save(args.out / "tutorial.png")
        results["tutorial"] = (tut.image, tut.seconds)
        print(f"  {'tutorial':<9} {tut.seconds:7.1f} s  {tut.evaluations} L-BFGS evaluations, fp32"
              + (f" (diverged: final loss {tut.style_loss + tut.content_loss:.3g}, best {tut.best_loss:.3g})"
                 if tut.diverged else ""))
        for name in args.presets:
            ratio = results[name][1] / tut.seconds
            print(f"  {name} takes {ratio:.3f} of the tutorial recipe's time ({1 / ratio:.1f}x faster)")

    print("\n(c) final losses under one yardstick (engine objective, float32, balanced weights; lower is better)")
    print(f"  {'picture':<10}{'content':>10}{'style':>10}{'tv':>10}{'total':>10}")
    for name, (image, _) in results.items():
        terms, _ = evaluate_losses(image, content, style, model=model, precision="fp32")
        print(f"  {name:<10}{terms.content:>10.3f}{terms.style:>10.3f}{terms.tv:>10.4f}{terms.total:>10.3f}")

    if args.gallery:
        tiles = [("content", content), ("style", style)] + [(f"{k} ({s:.0f} s)", img) for k, (img, s) in results.items()]
        save_gallery(args.gallery, tiles)
        print(f"\nwrote {args.gallery}")


if __name__ == "__main__":
    main()

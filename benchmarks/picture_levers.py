"""Each lever on the picture, alone against today's ``balanced``, in one run: grain, losses, face, time.

    python -m benchmarks.picture_levers [--pairs astronaut:the_scream,chelsea:starry_night|all] [--levers a,b]
                                        [--strength S] [--out out/levers]

For every pair and lever, one ``stylize`` at 512 px with only that lever changed from ``TODAY`` (the ``balanced``
preset before these levers existed; ``balanced`` is the preset as it is now); prints a line per picture and a mean
per lever (``benchmarks/picture_metrics.py`` says what each figure means), and writes each
lever's pictures side by side into ``--out`` to look at. Seconds are wall time on a shared machine: the load is
printed beside them.

    python -m benchmarks.picture_levers --cost [--repeats 7]

times what the levers change per iteration instead: one evaluation of the objective and its gradient, ``TODAY``'s
against ``balanced``'s, interleaved in one run (best of ``--repeats``), at each preset's size on chelsea x starry
night; the iteration counts are the same, so this ratio is each preset's time ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from PIL import Image

from benchmarks.common import IMAGES, ROOT, WEIGHTS, cpu_name, load_note, need_weights, open_rgb
from benchmarks.picture_metrics import face, grain, variant, yardstick
from nst_engine import PRESETS, StyleOptions, load_vgg, stylize
from nst_engine.engine import _Objective, _StyleTargets, _use_bf16
from nst_engine.options import check_options, fit
from nst_engine.pixels import resize, to_tensor
from nst_engine.presets import Preset
from nst_engine.vgg import VGGFeatures

# ``balanced`` as it was before the levers below: the base every lever changes one thing of.
TODAY = Preset(name="today", size=512, min_size=128, scale_factor=2**0.5, iterations=(40, 35, 35, 35, 40),
               content_weight=1.0, style_weight=20.0, tv_weight=2.0, style_layer_weights=(1.0, 1.0, 1.0, 1.0, 1.0),
               tv_form="squared", tv_scale_power=0.0, detail_weight=0.0, strength_power=1.0, lbfgs_average=0.0,
               upsample="bicubic", color="free")  # fmt: skip

# name -> (preset changes, option changes) from TODAY ("balanced/..." from balanced as it is now). The first group
# changes one thing each; the last group is the candidates for the new balanced, levers together.
LEVERS: dict[str, tuple[dict[str, object], dict[str, object]]] = {
    "today": ({}, {}),
    "balanced": ({}, {}),  # the preset as it is now, all its levers together (and "balanced/..." changes it)
    "balanced/style-22": ({"style_weight": 22.0}, {}),
    "balanced/final-44": ({"iterations": (40, 35, 35, 35, 44)}, {}),
    "balanced/tv-7": ({"tv_weight": 7.0}, {}),
    "tv-smooth-1": ({"tv_form": "smooth", "tv_weight": 1.0}, {}),
    "tv-smooth-3": ({"tv_form": "smooth", "tv_weight": 3.0}, {}),
    "tv-per-scale": ({"tv_scale_power": 2.0, "tv_weight": 8.0}, {}),
    "layers-deep": ({"style_layer_weights": (0.25, 0.5, 1.0, 1.0, 1.0)}, {}),
    "style-scale-1.5": ({}, {"style_scale": 1.5}),
    "detail-0.5": ({"detail_weight": 0.5}, {}),
    "average-0.8": ({"lbfgs_average": 0.8}, {}),
    "upsample-bilinear": ({"upsample": "bilinear"}, {}),
    "upsample-detail": ({"upsample": "detail"}, {}),
    "color-match": ({"color": "match"}, {}),
    "tv-smooth-10-scaled": ({"tv_form": "smooth", "tv_weight": 10.0, "tv_scale_power": 1.0}, {}),
    "up-detail+tv": ({"upsample": "detail", "tv_form": "smooth", "tv_weight": 10.0, "tv_scale_power": 1.0}, {}),
    "up-detail+tv+detail-0.2": ({"upsample": "detail", "tv_form": "smooth", "tv_weight": 10.0, "tv_scale_power": 1.0,
                                 "detail_weight": 0.2}, {}),
    "up-detail+tv+style-24": ({"upsample": "detail", "tv_form": "smooth", "tv_weight": 10.0, "tv_scale_power": 1.0,
                               "style_weight": 24.0}, {}),
    "up-detail+tv-6+style-24": ({"upsample": "detail", "tv_form": "smooth", "tv_weight": 6.0, "tv_scale_power": 1.0,
                                 "style_weight": 24.0}, {}),
}
PAIRS = "astronaut:the_scream,chelsea:starry_night"


def _find(folder: str, stem: str) -> Path:
    matches = [p for p in (IMAGES / folder).iterdir() if p.stem == stem]
    if not matches:
        raise SystemExit(f"no {stem} in {IMAGES / folder}")
    return matches[0]


def _eval_seconds(model: VGGFeatures, preset: str, side: int, repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` evaluations of ``preset``'s objective and gradient at long side ``side``."""
    photo, painting = open_rgb(_find("content", "chelsea")), open_rgb(_find("style", "starry_night"))
    use_bf16 = _use_bf16("auto", model.device)
    settings = check_options(StyleOptions(preset=preset), 1)
    width, height = fit(photo.width, photo.height, side)
    content = resize(to_tensor(photo, model.device), width, height)
    grams = _StyleTargets(model, [painting], use_bf16, None).for_content([to_tensor(painting, model.device)], None,
                                                                          side, settings.options, settings.preset)
    objective = _Objective(model, content, grams, settings, use_bf16)
    x = content.contiguous(memory_format=torch.channels_last)
    times = []
    for _ in range(repeats):
        image = x.clone().requires_grad_(True)
        start = time.perf_counter()
        objective(image)[0].backward()
        times.append(time.perf_counter() - start)
    return times


def cost(model: VGGFeatures, repeats: int) -> None:
    print(f"one objective + gradient, best of {repeats}, interleaved; {cpu_name()}; {load_note()}")
    for name in ("fast", "balanced", "quality"):
        side = PRESETS[name].size
        before, after = [], []
        for _ in range(repeats):  # interleaved, so a change in the machine's load hits both alike
            before += _eval_seconds(model, TODAY.name, side, 1)
            after += _eval_seconds(model, "balanced", side, 1)
        print(f"  {name} ({side} px): before {min(before):.3f} s, now {min(after):.3f} s, "
              f"ratio {min(after) / min(before):.3f}", flush=True)  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", default=PAIRS, help="photo:painting stems, comma-separated, or 'all'")
    parser.add_argument("--levers", default=",".join(LEVERS), help="comma-separated names from LEVERS")
    parser.add_argument("--strength", type=float, default=1.0)
    parser.add_argument("--weights", default=str(WEIGHTS))
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "levers")
    parser.add_argument("--cost", action="store_true", help="time one objective evaluation, before against now")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    PRESETS.setdefault(TODAY.name, TODAY)
    if args.cost:
        cost(load_vgg(need_weights(args.weights)), args.repeats)
        return

    if args.pairs == "all":
        pairs = [(c.stem, s.stem) for c in sorted((IMAGES / "content").iterdir())
                 for s in sorted((IMAGES / "style").iterdir())]  # fmt: skip
    else:
        pairs = [tuple(p.split(":", 1)) for p in args.pairs.split(",")]
    model = load_vgg(need_weights(args.weights))
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"512 px at strength {args.strength:g}, {len(pairs)} pairs; {cpu_name()}; {load_note()}", flush=True)
    print(f"{'lever':18} {'pair':28} {'grain':>6} {'content':>8} {'style':>7} {'face':>5} {'s':>6}")
    means: dict[str, list[tuple[float, float, float, float | None, float]]] = {}
    for lever in args.levers.split(","):
        preset_changes, option_changes = LEVERS[lever]
        base = "balanced" if lever.startswith("balanced") else TODAY.name
        preset = variant(base, f"{base}~{lever}", **preset_changes)
        pictures = []
        for photo_name, painting_name in pairs:
            photo, painting = open_rgb(_find("content", photo_name)), open_rgb(_find("style", painting_name))
            result = stylize(photo, painting, model=model, preset=preset, strength=args.strength,
                             **option_changes)  # type: ignore[arg-type]  # fmt: skip
            picture = result.image
            content, style = yardstick(picture, photo, painting, model)
            row = (grain(picture, painting), content, style, face(picture, photo, photo_name), result.summary.seconds)
            means.setdefault(lever, []).append(row)
            shown = "" if row[3] is None else f"{row[3]:.3f}"
            print(f"{lever:18} {photo_name + ' x ' + painting_name:28} {row[0]:6.3f} {content:8.4f} {style:7.4f} "
                  f"{shown:>5} {row[4]:6.1f}", flush=True)  # fmt: skip
            pictures.append(picture)
        strip = Image.new("RGB", (sum(p.width for p in pictures) + 4 * (len(pictures) - 1),
                                  max(p.height for p in pictures)), "white")  # fmt: skip
        x = 0
        for picture in pictures:
            strip.paste(picture, (x, 0))
            x += picture.width + 4
        strip.save(args.out / f"{lever.replace('/', '+')}.png")
    print(f"\nmeans over the pairs; {load_note()}")
    print(f"{'lever':18} {'grain':>6} {'content':>8} {'style':>7} {'face':>5} {'s':>6}")
    for lever, rows in means.items():
        faces = [r[3] for r in rows if r[3] is not None]
        shown = f"{statistics.mean(faces):.3f}" if faces else ""
        print(f"{lever:18} {statistics.mean(r[0] for r in rows):6.3f} {statistics.mean(r[1] for r in rows):8.4f} "
              f"{statistics.mean(r[2] for r in rows):7.4f} {shown:>5} "
              f"{statistics.mean(r[4] for r in rows):6.1f}")  # fmt: skip


if __name__ == "__main__":
    main()

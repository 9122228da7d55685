"""Picture sheets that show what speed changes did to quality: ``make gallery``.

    python -m benchmarks.gallery [--size N] [--out docs/images]

Writes two JPEGs: ``contact-sheet.jpg``, every photo of ../shared/images/content against every painting of
../shared/images/style with the ``balanced`` preset (4 x 4), and ``strengths.jpg``, two pairs at strength 0.25, 0.5, 1,
2 and 4; and ``animation.webp``, a panned clip of the cat beside its painting (``fast``, 256 px). Look at them before
and after a change to the engine. Each picture's grain, losses under one yardstick and face likeness are printed
beside it (``benchmarks/picture_metrics.py``). Jobs with the same painting and size reuse its style targets (the
engine's cache), as a worker does.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

from PIL import Image, ImageDraw

from benchmarks.common import IMAGES, ROOT, WEIGHTS, cpu_name, load_note, need_weights, open_rgb
from benchmarks.picture_metrics import face, grain, yardstick
from nst_engine import PRESETS, load_vgg, stylize
from nst_engine.animation import encode_clip
from nst_engine.temporal import stylize_clip
from nst_engine.vgg import VGGFeatures
from tests.clips import pan_and_hold

STRENGTHS = (0.25, 0.5, 1.0, 2.0, 4.0)
STRENGTH_PAIRS = (("chelsea.png", "starry_night.jpg"), ("astronaut.png", "the_scream.jpg"))
TILE = 220  # px, the long side of each picture on a sheet
LABEL = 18


def _tile(image: Image.Image, text: str = "") -> Image.Image:
    """The picture fitted into a TILE x TILE cell (centred on white), with a caption under it."""
    cell = Image.new("RGB", (TILE, TILE + (LABEL if text else 0)), "white")
    thumb = image.copy()
    thumb.thumbnail((TILE, TILE), Image.Resampling.LANCZOS)
    cell.paste(thumb, ((TILE - thumb.width) // 2, (TILE - thumb.height) // 2))
    if text:
        ImageDraw.Draw(cell).text((4, TILE + 3), text, fill="black")
    return cell


def _grid(rows: list[list[Image.Image]], gap: int = 4) -> Image.Image:
    height = sum(max(t.height for t in row) for row in rows) + gap * (len(rows) - 1)
    width = max(sum(t.width for t in row) + gap * (len(row) - 1) for row in rows)
    sheet = Image.new("RGB", (width, height), "white")
    y = 0
    for row in rows:
        x = 0
        for tile in row:
            sheet.paste(tile, (x, y))
            x += tile.width + gap
        y += max(t.height for t in row) + gap
    return sheet


def _run(model: VGGFeatures, content: Image.Image, style: Image.Image, size: int | None, iterations: int | None,
         strength: float = 1.0) -> tuple[Image.Image, float]:  # fmt: skip
    result = stylize(content, style, model=model, preset="balanced", size=size, iterations=iterations,
                     strength=strength)  # fmt: skip
    return result.image, result.summary.seconds


def _judge(model: VGGFeatures, image: Image.Image, photo: Image.Image, painting: Image.Image, photo_name: str
           ) -> tuple[float, float, float, float | None]:  # fmt: skip
    """(grain, content, style, face) of one picture (``picture_metrics``)."""
    content, style = yardstick(image, photo, painting, model)
    return grain(image, painting), content, style, face(image, photo, photo_name)


def _figures(label: str, seconds: float, figures: tuple[float, float, float, float | None]) -> str:
    shown = "" if figures[3] is None else f" face {figures[3]:.3f}"
    return (f"  {label}: {seconds:.1f} s; grain {figures[0]:.3f}, content {figures[1]:.4f}, style {figures[2]:.4f}"
            f"{shown}")  # fmt: skip


def contact_sheet(model: VGGFeatures, size: int | None, iterations: int | None) -> Image.Image:
    photos = sorted((IMAGES / "content").iterdir())
    paintings = sorted((IMAGES / "style").iterdir())
    rows = [[_tile(Image.new("RGB", (TILE, TILE), "white"))] + [_tile(open_rgb(p), p.stem) for p in paintings]]
    judged = []
    for photo_path in photos:
        photo = open_rgb(photo_path)
        row = [_tile(photo, photo_path.stem)]
        for painting_path in paintings:
            painting = open_rgb(painting_path)
            image, seconds = _run(model, photo, painting, size, iterations)
            figures = _judge(model, image, photo, painting, photo_path.stem)
            judged.append(figures)
            print(_figures(f"{photo_path.stem} x {painting_path.stem}", seconds, figures), flush=True)
            row.append(_tile(image, f"{image.width}x{image.height}"))
        rows.append(row)
    n = len(judged)
    faces = [f[3] for f in judged if f[3] is not None]
    print(f"  all {n} pairs: grain at most {max(f[0] for f in judged):.3f} (mean {sum(f[0] for f in judged) / n:.3f}), "
          f"content mean {sum(f[1] for f in judged) / n:.4f}, style mean {sum(f[2] for f in judged) / n:.4f}, "
          f"face at least {min(faces):.3f}", flush=True)  # fmt: skip
    return _grid(rows)


def strength_sheet(model: VGGFeatures, size: int | None, iterations: int | None) -> Image.Image:
    rows = []
    for content_name, style_name in STRENGTH_PAIRS:
        content, style = open_rgb(IMAGES / "content" / content_name), open_rgb(IMAGES / "style" / style_name)
        row = [_tile(content, Path(content_name).stem), _tile(style, Path(style_name).stem)]
        judged = []
        for strength in STRENGTHS:
            image, seconds = _run(model, content, style, size, iterations, strength)
            figures = _judge(model, image, content, style, Path(content_name).stem)
            judged.append(figures)
            print(_figures(f"{content_name} x {style_name} at strength {strength:g}", seconds, figures), flush=True)
            row.append(_tile(image, f"strength {strength:g}"))
        rising = all(a[1] < b[1] for a, b in itertools.pairwise(judged))
        falling = all(a[2] > b[2] for a, b in itertools.pairwise(judged))
        print(f"  {content_name} x {style_name}: content rises with strength: {'yes' if rising else 'NO'}; "
              f"style falls: {'yes' if falling else 'NO'}", flush=True)  # fmt: skip
        rows.append(row)
    return _grid(rows)


def animation(model: VGGFeatures, size: int | None, iterations: int | None) -> bytes:
    """The sample clip (the cat panned, then held; tests/clips.py) beside its painting with ``fast`` in the style of
    The Starry Night, as one looping animated WebP."""
    side = size or 256
    source = pan_and_hold(open_rgb(IMAGES / "content" / "chelsea.png"), width=side, height=side * 3 // 4, pan=12,
                          hold=6)  # fmt: skip
    painted = stylize_clip(source, open_rgb(IMAGES / "style" / "starry_night.jpg"), model=model, preset="fast",
                           size=side, iterations=iterations)  # fmt: skip
    assert painted.clip is not None
    print(f"  {len(source)} frames: {painted.summary.seconds:.1f} s", flush=True)
    frames = []
    for before, after in zip(source.frames, painted.clip.frames, strict=True):
        pair = Image.new("RGB", (before.width + after.width + 4, after.height), "white")
        pair.paste(before.resize(after.size), (0, 0))
        pair.paste(after, (before.width + 4, 0))
        frames.append(pair)
    return encode_clip(source.with_frames(frames)).data


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, help=f"output long side (default: balanced's {PRESETS['balanced'].size})")
    parser.add_argument("--iterations", type=int, help="final-scale iterations (default: the preset's); for dry runs")
    parser.add_argument("--weights", default=str(WEIGHTS))
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--only", choices=("contact", "strengths", "animation"), help="write only this one")
    args = parser.parse_args(argv)

    model = load_vgg(need_weights(args.weights))  # a GPU when there is one
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"balanced at {args.size or PRESETS['balanced'].size} px; {cpu_name()}; {load_note()}", flush=True)
    sheets = {"contact": ("contact-sheet.jpg", contact_sheet), "strengths": ("strengths.jpg", strength_sheet)}
    for key, (name, make) in sheets.items():
        if args.only not in (None, key):
            continue
        start = time.perf_counter()
        sheet = make(model, args.size, args.iterations)
        sheet.save(args.out / name, quality=85, optimize=True)
        print(f"wrote {args.out / name} ({sheet.width}x{sheet.height}) in {time.perf_counter() - start:.0f} s; "
              f"{load_note()}", flush=True)  # fmt: skip
    if args.only in (None, "animation"):
        start = time.perf_counter()
        (args.out / "animation.webp").write_bytes(animation(model, None, args.iterations))
        print(f"wrote {args.out / 'animation.webp'} in {time.perf_counter() - start:.0f} s; {load_note()}", flush=True)


if __name__ == "__main__":
    main()

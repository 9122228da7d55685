"""The presets' L-BFGS schedules against Adam schedules with iterate averaging, over several pictures: time and
final objective.

    python -m benchmarks.schedules [--presets balanced] [--pairs 4] [--size 512] [--out out/schedules]

The Adam schedules (``ADAM``, ``<preset>-adam``) are registered under names of their own for the run. Each pair (photo i with painting i of ../shared/images) is rendered by both, style targets computed afresh,
and both pictures are scored under the engine's float32 objective with ``balanced``'s weights (the yardstick of
``make bench``; lower is better). Pictures are saved side by side (Adam left) for a look, one file per pair and a
sheet of all pairs per preset (``<preset>-sheet.jpg``; docs/performance.md shows ``balanced-sheet.jpg``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import statistics
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from benchmarks.common import IMAGES, ROOT, WEIGHTS, load_note, need_weights, open_rgb
from nst_engine import PRESETS, evaluate_losses, load_vgg, stylize
from nst_engine.presets import Preset

# Each preset's sizes with Adam and iterate averaging, at iteration counts tuned for Adam.
ADAM: dict[str, Preset] = {
    name: dataclasses.replace(PRESETS[name], name=f"{name}-adam", optimizer="adam", iterations=iterations)
    for name, iterations in (
        ("fast", (80, 50, 40, 30)),
        ("balanced", (150, 100, 80, 60, 50)),
        ("quality", (200, 150, 120, 100, 80, 60)),
    )
}


SHEET_WIDTH = 1024


def stack(sides: list[Image.Image], gap: int = 8) -> Image.Image:
    """Side-by-side pictures one under another, each scaled to SHEET_WIDTH."""
    rows = [s.resize((SHEET_WIDTH, round(s.height * SHEET_WIDTH / s.width)), Image.Resampling.LANCZOS) for s in sides]
    sheet = Image.new("RGB", (SHEET_WIDTH, sum(r.height for r in rows) + gap * (len(rows) - 1)), "white")
    y = 0
    for row in rows:
        sheet.paste(row, (0, y))
        y += row.height + gap
    return sheet


@contextlib.contextmanager
def registered(presets: list[Preset]) -> Iterator[None]:
    """Make ``presets`` selectable by name for the duration of the block."""
    PRESETS.update({p.name: p for p in presets})
    try:
        yield
    finally:
        for preset in presets:
            PRESETS.pop(preset.name, None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["balanced"], choices=sorted(ADAM))
    parser.add_argument("--pairs", type=int, default=4, help="photo i with painting i, i < N (at most 4)")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--weights", default=str(WEIGHTS))
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "schedules")
    args = parser.parse_args(argv)

    model = load_vgg(need_weights(args.weights))
    photos = sorted((IMAGES / "content").iterdir())[: args.pairs]
    paintings = sorted((IMAGES / "style").iterdir())[: args.pairs]
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{len(photos)} pairs at {args.size} px on {model.device}; {load_note()}", flush=True)
    with registered(list(ADAM.values())):
        for name in args.presets:
            adam, lbfgs = ADAM[name], PRESETS[name]
            print(f"\n{name}: {adam.optimizer} {adam.iterations} against {lbfgs.optimizer} {lbfgs.iterations}")
            print(f"  {'pair':<34} {'adam s':>8} {'lbfgs s':>8} {'adam obj':>10} {'lbfgs obj':>10}")
            rows, sides = [], []
            for photo_path, painting_path in zip(photos, paintings, strict=True):
                photo, painting = open_rgb(photo_path), open_rgb(painting_path)
                row: list[float] = []
                pictures: list[Image.Image] = []
                for preset in (adam.name, lbfgs.name):
                    result = stylize(photo, painting, model=model, preset=preset, size=args.size, style_cache=None)
                    terms, _ = evaluate_losses(result.image, photo, painting, model=model, precision="fp32")
                    row += [result.summary.seconds, terms.total]
                    pictures.append(result.image)
                rows.append(row)
                pair = f"{photo_path.stem} x {painting_path.stem}"
                print(f"  {pair:<34} {row[0]:8.1f} {row[2]:8.1f} {row[1]:10.4f} {row[3]:10.4f}", flush=True)
                side = Image.new("RGB", (pictures[0].width * 2 + 8, pictures[0].height), "white")
                side.paste(pictures[0], (0, 0))
                side.paste(pictures[1], (pictures[0].width + 8, 0))
                side.save(args.out / f"{name}-{photo_path.stem}-{painting_path.stem}.jpg", quality=90)
                sides.append(side)
            stack(sides).save(args.out / f"{name}-sheet.jpg", quality=85, optimize=True)
            time_adam, time_lbfgs = (sum(r[i] for r in rows) for i in (0, 2))
            obj_adam, obj_lbfgs = (statistics.mean(r[i] for r in rows) for i in (1, 3))
            worse = sum(r[3] > r[1] for r in rows)
            print(f"  total time: adam {time_adam:.1f} s, lbfgs {time_lbfgs:.1f} s ({time_lbfgs / time_adam:.3f} of it); "
                  f"mean objective: adam {obj_adam:.4f}, lbfgs {obj_lbfgs:.4f}; lbfgs worse on {worse} of {len(rows)}")
    print(f"\npictures side by side (Adam left) in {args.out}; {load_note()}")


if __name__ == "__main__":
    main()

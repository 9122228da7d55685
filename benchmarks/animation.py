"""What an animation costs and how steady it is: a 16-frame 256 px clip with ``fast`` (``make bench``).

    python -m benchmarks.animation [--frames 16] [--size 256] [--preset fast] [--out out/bench/animation.webp]

The clip is the sample cat photo panned slowly (2 px a frame) and then held still (tests/clips.py). Printed: the
first frame's time, each next painted frame's mean and worst time and their ratio to the first (the target: at most
1/3), the steadiness (frame-to-frame change of the painted clip over the source's; at most 1.5), the change over the
still stretch, and one frame's losses against a still painted on that frame alone (within 10%).
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

from benchmarks.common import IMAGES, WEIGHTS, cpu_name, load_note, need_weights, open_rgb
from nst_engine import load_vgg, stylize
from nst_engine.animation import Clip, encode_clip
from nst_engine.engine import evaluate_losses
from nst_engine.temporal import stylize_clip
from nst_engine.types import ProgressEvent
from nst_engine.vgg import VGGFeatures
from tests.clips import frame_changes, pan_and_hold, steadiness


def paint_sample_clip(model: VGGFeatures, *, frames: int, size: int, preset: str) -> tuple[dict[str, float], Clip]:
    """Paint the sample clip: its figures, and the painted clip."""
    width, height = size, size * 3 // 4
    hold = frames // 3
    source = pan_and_hold(open_rgb(IMAGES / "content" / "chelsea.png"), width=width, height=height,
                          pan=frames - hold, hold=hold)  # fmt: skip
    painting = open_rgb(IMAGES / "style" / "starry_night.jpg")
    finished: dict[int, float] = {}  # when each frame's last iteration ended

    def progress(event: ProgressEvent) -> None:
        finished[event.frame] = time.perf_counter()

    began = time.perf_counter()
    result = stylize_clip(source, painting, model=model, preset=preset, size=size, progress=progress)
    ended = time.perf_counter()
    assert result.clip is not None
    # A frame's time: from the end of the frame before (the first frame's from the call) to its own last iteration.
    marks = [began] + [finished[f] for f in range(1, len(source) + 1)]
    times = [b - a for a, b in itertools.pairwise(marks)]
    painted = times[1 : frames - hold]  # the pan's frames; the still stretch repeats its last frame
    changes = frame_changes(result.clip)
    probe = frames // 3
    still = stylize(source.frames[probe], painting, model=model, preset=preset, size=size)
    ours, _ = evaluate_losses(result.clip.frames[probe], source.frames[probe], painting, model=model, preset=preset,
                              size=size, precision="fp32")  # fmt: skip
    alone, _ = evaluate_losses(still.image, source.frames[probe], painting, model=model, preset=preset, size=size,
                               precision="fp32")  # fmt: skip
    figures = {
        "first": times[0],
        "next_mean": sum(painted) / len(painted),
        "next_worst": max(painted),
        "steadiness": steadiness(result.clip, source),
        "still_change": sum(changes[-(hold - 1) :]) / max(1, hold - 1),
        "loss_ratio": ours.total / alone.total,
        "total": ended - began,
    }
    return figures, result.clip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--weights", default=str(WEIGHTS))
    parser.add_argument("--out", type=Path, help="also write the painted clip as an animated WebP")
    args = parser.parse_args(argv)
    model = load_vgg(need_weights(args.weights), "cpu")
    figures, clip = paint_sample_clip(model, frames=args.frames, size=args.size, preset=args.preset)
    print(f"animation: {args.frames} frames at {args.size} px, {args.preset}, on {cpu_name()} "
          f"({load_note()})")  # fmt: skip
    print(f"  first frame {figures['first']:.2f} s; each next painted frame {figures['next_mean']:.2f} s mean, "
          f"{figures['next_worst']:.2f} s worst = {figures['next_worst'] / figures['first']:.2f} of the first "
          "(target <= 0.33)")  # fmt: skip
    print(f"  steadiness {figures['steadiness']:.2f} (target <= 1.5); still stretch change "
          f"{figures['still_change']:.2f} / 255; a frame's loss / a still's {figures['loss_ratio']:.3f} "
          f"(target <= 1.10); whole clip {figures['total']:.1f} s")  # fmt: skip
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(encode_clip(clip).data)
        print(f"  wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

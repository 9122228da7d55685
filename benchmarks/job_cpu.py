"""One job end to end on one thread, timed in CPU seconds (a shared machine's load hardly changes them), with the
picture saved and judged by the float32 yardstick. Compare engine versions by putting another one first on the path
(from outside the checkout: ``python -m`` puts the current directory before PYTHONPATH; the engine's path is printed):

    python -m benchmarks.job_cpu --out out/now.png
    git archive <commit> nst_engine | tar -x -C /tmp/old
    (cd /tmp && PYTHONPATH=/tmp/old:$OLDPWD python -m benchmarks.job_cpu --out $OLDPWD/out/before.png)
    python -m benchmarks.job_cpu --judge out/before.png out/now.png
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from PIL import Image

import nst_engine
from benchmarks.common import IMAGES, WEIGHTS, load_note, need_weights, open_rgb
from nst_engine import evaluate_losses, load_vgg, stylize


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--content", type=Path, default=IMAGES / "content" / "chelsea.png")
    parser.add_argument("--style", type=Path, default=IMAGES / "style" / "starry_night.jpg")
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--out", type=Path, help="where to save the picture")
    parser.add_argument("--judge", type=Path, nargs="+", help="only score these pictures under the yardstick")
    parser.add_argument("--weights", default=str(WEIGHTS))
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    model = load_vgg(need_weights(args.weights), "cpu")
    content, style = open_rgb(args.content), open_rgb(args.style)
    if args.judge:
        for path in args.judge:
            with Image.open(path) as image:
                t, _ = evaluate_losses(image.convert("RGB"), content, style, model=model, precision="fp32")
            print(f"{path}: content {t.content:.4f} style {t.style:.4f} tv {t.tv:.4f} total {t.total:.4f}")
        return
    print(f"engine {Path(nst_engine.__file__).parent}; {load_note()}")
    cpu, wall = time.process_time(), time.perf_counter()
    result = stylize(content, style, model=model, preset=args.preset)
    print(f"{args.preset}: {time.process_time() - cpu:.1f} CPU s on one thread, {time.perf_counter() - wall:.1f} s wall; "
          f"{load_note()}")  # fmt: skip
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        result.image.save(args.out)


if __name__ == "__main__":
    main()

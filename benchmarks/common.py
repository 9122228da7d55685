"""Helpers shared by the benchmarks: sample pictures, weights at torchvision's scale, timing, machine load."""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
WEIGHTS = SHARED / "weights" / "vgg19_features_fp16.pth"
IMAGES = SHARED / "images"


def open_rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def torchvision_scale(features: torch.nn.Sequential) -> torch.nn.Sequential:
    """Caffe-scale weights → torchvision's scale: first conv and every bias divided by 255 (ReLU and max-pooling
    commute with a positive factor, so every activation is exactly 1/255 of the original)."""
    out = copy.deepcopy(features).float()
    convs = [m for m in out if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        convs[0].weight.div_(255)
        for conv in convs:
            if conv.bias is not None:
                conv.bias.div_(255)
    return out


def best_time(fn: Callable[[], object], repeats: int, warmup: int = 1,
              clock: Callable[[], float] = time.perf_counter) -> float:  # fmt: skip
    """Best-of-``repeats`` time of ``fn`` on ``clock`` (wall by default) after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        fn()
        best = min(best, clock() - start)
    return best


def cpu_name() -> str:
    """The CPU's model name (a benchmark figure names the CPU it was measured on)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x{os.cpu_count()}"
    except OSError:
        pass
    return f"unknown CPU x{os.cpu_count()}"


def load_note() -> str:
    """The machine's load averages, printed beside timings taken on a shared machine."""
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "load n/a"
    return f"load {one:.1f} (1 min) {five:.1f} (5 min) on {os.cpu_count()} CPUs"


def need_weights(path: Path | str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"weights {path} not found: this benchmark needs the real VGG19 weights (../shared/weights)")
    return path

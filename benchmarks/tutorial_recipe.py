"""A faithful re-implementation of the PyTorch tutorial "Neural Transfer Using PyTorch", as the baseline to beat.

What the tutorial (pytorch/tutorials, advanced_source/neural_style_tutorial.py) does, and what this file does:

- Network: torchvision's ``vgg19().features`` behind a normalisation module, with an out-of-place ReLU, frozen
  (``requires_grad_(False)``, ``eval()``), float32, NCHW. The tutorial then *trims the network after its last loss
  layer*: style loss after conv_5 (conv3_1, module 10), so only modules 0..10 (five convolutions) ever run.
- Losses: content at conv_4 (conv2_2), style at conv_1..conv_5, each taken right after the convolution (before its
  ReLU); Gram matrices divided by the number of elements (a*b*c*d); ``F.mse_loss`` for both; style weight 1e6,
  content weight 1.
- Optimiser: ``torch.optim.LBFGS([input_img])`` with its defaults (lr 1, 20 iterations per ``step``, history 100, no
  line search), ``while run[0] <= 300: optimizer.step(closure)`` (so 320 closure evaluations), pixels clamped to
  [0, 1] at the start of every closure and once at the end; input initialised to a copy of the content image.
- Images: ``transforms.Resize(imsize)`` (PIL bilinear, antialiased) then ``ToTensor``; the tutorial asserts that
  style and content have the same size (its two sample pictures are squares). For photos that are not squares the
  only change here is the target size: both images are resized to ``(width, height)``, the caller passes the size of
  the engine's output, so both sides produce the same number of pixels. The content keeps its aspect ratio; the
  style is squashed to the content's shape, as the tutorial's equal-size assertion requires.
- Output: ``ToPILImage`` (``mul(255).byte()``, truncating).
- Timed: everything from the resized images on, target passes included (the engine's time includes its own).

Written for this benchmark from the tutorial's description; it is not part of the product.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from nst_engine.vgg import IMAGENET_MEAN, IMAGENET_STD

CONTENT_CONVS = (4,)
STYLE_CONVS = (1, 2, 3, 4, 5)
LAST_CONV = max(*CONTENT_CONVS, *STYLE_CONVS)


@dataclass
class TutorialResult:
    image: Image.Image
    seconds: float
    evaluations: int
    style_loss: float
    content_loss: float
    best_loss: float  # lowest total seen: L-BFGS without a line search can diverge late in the run

    @property
    def diverged(self) -> bool:
        return self.style_loss + self.content_loss > 10 * self.best_loss


def _gram(x: torch.Tensor) -> torch.Tensor:
    a, b, c, d = x.shape
    flat = x.view(a * b, c * d)
    return flat @ flat.t() / (a * b * c * d)


def _load(image: Image.Image, size: tuple[int, int]) -> torch.Tensor:
    """``Resize`` + ``ToTensor``: PIL bilinear resize, [0, 1] float32, NCHW."""
    resized = image.convert("RGB").resize(size, Image.Resampling.BILINEAR)
    array = np.asarray(resized, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def trimmed_trunk(features: nn.Sequential) -> nn.Sequential:
    """The modules the tutorial keeps: everything up to and including its last loss layer's convolution."""
    kept: list[nn.Module] = []
    convs = 0
    for module in features:
        kept.append(nn.ReLU(inplace=False) if isinstance(module, nn.ReLU) else module)
        if isinstance(module, nn.Conv2d):
            convs += 1
            if convs == LAST_CONV:
                break
    return nn.Sequential(*kept)


class TutorialNet(nn.Module):
    """Normalisation + the trimmed trunk, recording the conv outputs the tutorial's loss layers see."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, features: nn.Sequential) -> None:
        super().__init__()
        self.features = trimmed_trunk(features).to(memory_format=torch.contiguous_format)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(-1, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(-1, 1, 1))

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        x = (x - self.mean) / self.std
        outputs: dict[int, torch.Tensor] = {}
        conv = 0
        for module in self.features:
            x = module(x)
            if isinstance(module, nn.Conv2d):
                conv += 1
                outputs[conv] = x
        return outputs


def run_tutorial_recipe(
    features: nn.Sequential,
    content: Image.Image,
    style: Image.Image,
    *,
    size: tuple[int, int] = (512, 512),
    steps: int = 300,
    style_weight: float = 1e6,
    content_weight: float = 1.0,
) -> TutorialResult:
    """Run the recipe on float32 ``features`` (torchvision's activation scale) at ``size`` = (width, height)."""
    net = TutorialNet(features).float().eval().requires_grad_(False)
    content_t, style_t = _load(content, size), _load(style, size)
    start = time.perf_counter()
    with torch.no_grad():
        content_feats = net(content_t)
        content_targets = {i: content_feats[i].detach() for i in CONTENT_CONVS}
        style_feats = net(style_t)
        style_targets = {i: _gram(style_feats[i]).detach() for i in STYLE_CONVS}
    image = content_t.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([image])
    evaluations = [0]
    last = {"style": 0.0, "content": 0.0, "best": float("inf")}

    def closure() -> torch.Tensor:
        with torch.no_grad():
            image.clamp_(0, 1)
        optimizer.zero_grad()
        feats = net(image)
        # Summed one by one in Python, as the tutorial's ``style_score += sl.loss`` does.
        s = cast(torch.Tensor, sum(F.mse_loss(_gram(feats[i]), style_targets[i]) for i in STYLE_CONVS))
        c = cast(torch.Tensor, sum(F.mse_loss(feats[i], content_targets[i]) for i in CONTENT_CONVS))
        loss = style_weight * s + content_weight * c
        loss.backward()
        evaluations[0] += 1
        last["style"], last["content"] = float(style_weight * s.detach()), float(content_weight * c.detach())
        last["best"] = min(last["best"], last["style"] + last["content"])
        return loss

    while evaluations[0] <= steps:
        optimizer.step(closure)
    with torch.no_grad():
        image.clamp_(0, 1)
    seconds = time.perf_counter() - start
    array = image.detach()[0].permute(1, 2, 0).mul(255).byte().numpy()  # ToPILImage truncates
    return TutorialResult(Image.fromarray(np.ascontiguousarray(array), "RGB"), seconds, evaluations[0], last["style"],
                          last["content"], last["best"])  # fmt: skip

"""A faithful re-implementation of the classic PyTorch neural-style tutorial recipe, as the baseline to beat.

The recipe: both images resized to the same square, content loss at conv_4, style losses at conv_1..conv_5 (taken
after the convolution, before its ReLU), Gram matrices divided by the number of elements, style weight 1e6, content
weight 1, L-BFGS with its defaults (20 iterations per ``step``), 300 closure evaluations, pixels clamped to [0, 1] in
the closure, the network frozen (``requires_grad_(False)``, as the current tutorial does), float32, NCHW.
Written for this benchmark from the recipe's description; it is not part of the product.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from nst_engine.vgg import IMAGENET_MEAN, IMAGENET_STD

CONTENT_CONVS = (4,)
STYLE_CONVS = (1, 2, 3, 4, 5)


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


def _square(image: Image.Image, size: int) -> torch.Tensor:
    array = np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
    return torch.from_numpy(array / 255.0).permute(2, 0, 1).unsqueeze(0).contiguous()  # NCHW, as ToTensor gives


class _Net(nn.Module):
    """The VGG19 trunk through conv_5, recording the conv outputs the recipe's losses use."""

    def __init__(self, features: nn.Sequential) -> None:
        super().__init__()
        # conv_5 is module 28; plain NCHW layout, as a script that loads torchvision's model has it
        self.features = features[:29].to(memory_format=torch.contiguous_format)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        x = (x - self.mean) / self.std
        outputs: dict[int, torch.Tensor] = {}
        conv = 0
        for module in self.features:
            if isinstance(module, nn.ReLU):
                x = F.relu(x)  # the recipe swaps in out-of-place ReLUs
            else:
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
    size: int = 512,
    steps: int = 300,
    style_weight: float = 1e6,
    content_weight: float = 1.0,
) -> TutorialResult:
    """Run the recipe on float32 ``features`` (torchvision's scale) and return the picture and its time."""
    net = _Net(features).float().eval().requires_grad_(False)
    content_t, style_t = _square(content, size), _square(style, size)
    with torch.no_grad():
        content_targets = {i: net(content_t)[i].detach() for i in CONTENT_CONVS}
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
        s = sum(F.mse_loss(_gram(feats[i]), style_targets[i]) for i in STYLE_CONVS)
        c = sum(F.mse_loss(feats[i], content_targets[i]) for i in CONTENT_CONVS)
        loss = style_weight * s + content_weight * c
        loss.backward()
        evaluations[0] += 1
        last["style"], last["content"] = float(style_weight * s.detach()), float(content_weight * c.detach())
        last["best"] = min(last["best"], last["style"] + last["content"])
        return loss

    start = time.perf_counter()
    while evaluations[0] <= steps:
        optimizer.step(closure)
    with torch.no_grad():
        image.clamp_(0, 1)
    seconds = time.perf_counter() - start
    array = image.detach()[0].permute(1, 2, 0).mul(255).round().byte().numpy()
    return TutorialResult(Image.fromarray(array, "RGB"), seconds, evaluations[0], last["style"], last["content"],
                           last["best"])

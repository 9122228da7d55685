"""VGG19 feature extractor: torchvision's ``vgg19().features``, cut after the deepest layer in use."""

from __future__ import annotations

import copy

import torch
from torch import nn

from nst_engine import kernels

# Index of each ReLU in torchvision's vgg19().features; conv N sits just before relu N.
LAYER_INDEX: dict[str, int] = {
    "relu1_1": 1, "relu1_2": 3,
    "relu2_1": 6, "relu2_2": 8,
    "relu3_1": 11, "relu3_2": 13, "relu3_3": 15, "relu3_4": 17,
    "relu4_1": 20, "relu4_2": 22, "relu4_3": 24, "relu4_4": 26,
    "relu5_1": 29, "relu5_2": 31, "relu5_3": 33, "relu5_4": 35,
}  # fmt: skip

# VGG19's convolutions by output channels, 0 for a 2x2 max-pool (Simonyan & Zisserman's configuration E).
VGG19_WIDTHS = (64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512, 512, 512, 0)

# torchvision's ImageNet normalisation; both supported weight sets expect it.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGGFeatures(nn.Module):
    """Frozen VGG19 trunk returning the activations of named ReLU layers for RGB input in [0, 1]."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, features: nn.Sequential, *, source: str) -> None:
        super().__init__()
        self.features = features
        self.source = source  # where the weights came from, for logs and summaries
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)  # only the pixels are optimised: skip weight gradients entirely
        self.eval()

    @property
    def device(self) -> torch.device:
        return self.mean.device

    @property
    def depth(self) -> int:
        """Number of modules kept (layers up to and including the deepest available ReLU)."""
        return len(self.features)

    def available_layers(self) -> list[str]:
        return [name for name, idx in LAYER_INDEX.items() if idx < len(self.features)]

    def weights_key(self) -> tuple[object, ...]:
        """Identity of the current weights: where each tensor lives, its in-place version, and a checksum of the
        first and last ones (so a new network loaded into freed memory is not taken for the old one)."""
        params = list(self.features.parameters())
        with torch.no_grad():
            checksum = (float(params[0].double().sum()), float(params[-1].double().sum()))
        return (self.source, str(self.device), checksum, tuple((p.data_ptr(), p._version) for p in params))

    def trunk(self, dtype: torch.dtype | None = None) -> nn.Sequential:
        """The layers with weights in ``dtype`` (None: as loaded). A low-precision copy is made once and kept while
        the weights stay the same, so passes need not cast every weight again as autocast does on each forward."""
        if dtype is None or dtype == self.features[0].weight.dtype:
            return self.features
        key = (dtype, self.weights_key())
        cached = self.__dict__.get("_low_precision")  # a plain attribute: no submodule, no state_dict entry
        if cached is None or cached[0] != key:
            twin = copy.deepcopy(self.features).to(dtype).requires_grad_(False).eval()
            self.__dict__["_low_precision"] = cached = (key, twin)
        return cached[1]

    def forward(
        self, image: torch.Tensor, layers: tuple[str, ...], dtype: torch.dtype | None = None
    ) -> dict[str, torch.Tensor]:
        """Activations of ``layers`` (names from LAYER_INDEX) for ``image`` (N, 3, H, W) in [0, 1], computed with
        weights and activations in ``dtype`` (None: the weights' own; the normalisation always runs in float32)."""
        wanted = {LAYER_INDEX[name]: name for name in layers}
        last = max(wanted)
        if last >= len(self.features):
            missing = [n for i, n in wanted.items() if i >= len(self.features)]
            raise ValueError(f"layers {missing} are beyond the loaded weights")
        trunk = self.trunk(dtype)
        x = (image - self.mean) / self.std
        if dtype is not None:
            x = x.to(dtype)
        out: dict[str, torch.Tensor] = {}
        idx = 0
        while idx <= last:
            x, idx = _block(trunk, idx, x, wanted)
            if idx - 1 in wanted:
                out[wanted[idx - 1]] = x
        return out


def _block(trunk: nn.Sequential, idx: int, x: torch.Tensor, wanted: dict[int, str]) -> tuple[torch.Tensor, int]:
    """Run the block of ``trunk`` that starts at module ``idx``; returns its output and the next module's index.

    A conv -> ReLU pair is one fused block; conv -> ReLU -> max-pool is one block when no loss reads the ReLU's
    output (``kernels``); any other module is a block of its own.
    """
    module = trunk[idx]
    after = trunk[idx + 1] if idx + 1 < len(trunk) else None
    if not (kernels.ENABLED and isinstance(module, nn.Conv2d) and isinstance(after, nn.ReLU)):
        return module(x), idx + 1
    pool = trunk[idx + 2] if idx + 2 < len(trunk) else None
    if idx + 1 not in wanted and isinstance(pool, nn.MaxPool2d):
        return kernels.conv_pool_relu(x, module, pool), idx + 3
    return kernels.conv_relu(x, module), idx + 2


def build_features(depth: int) -> nn.Sequential:
    """An untrained VGG19 trunk with ``depth`` modules (cut after the deepest layer that will be loaded).

    The same modules, in the same order, as torchvision's ``vgg19().features`` (so its state_dicts load), built here
    rather than imported: importing torchvision costs every worker process over a second, and ``vgg19()``'s
    120M-parameter classifier would take another to initialise only to be thrown away.
    """
    layers: list[nn.Module] = []
    channels = 3
    for width in VGG19_WIDTHS:
        if width == 0:
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, width, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = width
    return nn.Sequential(*layers[:depth])

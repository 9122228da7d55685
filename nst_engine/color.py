"""Colour handling for ``preserve_colors``: transfer luminance only, keep the content's chroma (Gatys et al. 2016)."""

from __future__ import annotations

import torch

# ITU-R BT.601 luma weights, as in JPEG's YCbCr.
_LUMA = (0.299, 0.587, 0.114)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """Luma (N, 1, H, W) of an RGB tensor in [0, 1]."""
    r, g, b = image[:, 0:1], image[:, 1:2], image[:, 2:3]
    return _LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b


def grey_rgb(image: torch.Tensor) -> torch.Tensor:
    """The luma of ``image`` repeated into three channels, so VGG sees a grey picture."""
    return luminance(image).expand(-1, 3, -1, -1).contiguous()


def match_luminance(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Grey style image whose luma has the content's mean and spread, so the transfer does not shift brightness."""
    y_style = luminance(style)
    y_content = luminance(content)
    matched = (y_style - y_style.mean()) / (y_style.std() + 1e-6) * y_content.std() + y_content.mean()
    return matched.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()


def recolor(stylized_grey: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Combine the stylised luma with the content's chroma (YCbCr), both (N, 3, H, W) at the same size."""
    y = luminance(stylized_grey)
    y_c = luminance(content)
    # Chroma as offsets from luma: adding them back onto the new luma keeps the content's hues and saturation.
    return (content - y_c + y).clamp(0, 1)

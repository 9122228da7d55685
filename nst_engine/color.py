"""Colour handling: ``preserve_colors`` (transfer luminance only, keep the content's chroma; Gatys et al. 2016), and
the painting's colours moved to the photo's (``Preset.color`` "match")."""

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


def match_colors(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """``style`` with its RGB mean and covariance moved to ``content``'s (a linear map through both covariances'
    symmetric square roots), so the transfer paints in the photo's palette while keeping the painting's strokes."""

    def stats(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = image.reshape(3, -1).double()
        mean = pixels.mean(dim=1, keepdim=True)
        centred = pixels - mean
        return mean, centred @ centred.T / centred.shape[1] + 1e-6 * torch.eye(3, dtype=torch.float64)

    def sqrtm(matrix: torch.Tensor, power: float) -> torch.Tensor:
        values, vectors = torch.linalg.eigh(matrix)
        return vectors @ torch.diag(values.clamp_min(1e-8) ** power) @ vectors.T

    s_mean, s_cov = stats(style)
    c_mean, c_cov = stats(content)
    transform = sqrtm(c_cov, 0.5) @ sqrtm(s_cov, -0.5)
    pixels = style.reshape(3, -1).double()
    out = transform @ (pixels - s_mean) + c_mean
    return out.reshape(style.shape).to(style.dtype).clamp(0, 1).contiguous()

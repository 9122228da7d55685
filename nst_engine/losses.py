"""Loss terms of Gatys et al., each normalised by the size of its target.

Dividing by the target's squared norm makes every term independent of the scale of the activations: weights whose
activations are 255x larger (Caffe-era VGG19) give the same objective, and so the same picture, as torchvision's.
Everything here runs in float32, whatever precision the network ran in (Gram values overflow float16).
"""

from __future__ import annotations

import torch

_EPS = 1e-12


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Channel correlations (C, C) of one feature map (1, C, H, W), averaged over positions, in float32."""
    _, channels, height, width = features.shape
    flat = features.float().reshape(channels, height * width)
    return (flat @ flat.T) / (height * width)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error relative to the target's energy: 0 for a perfect match, ~1 for an unrelated image."""
    diff = features.float() - target
    return diff.pow(2).sum() / (target.pow(2).sum() + _EPS)


def style_loss(gram: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """Squared Gram error relative to the target Gram's energy."""
    return (gram - target_gram).pow(2).sum() / (target_gram.pow(2).sum() + _EPS)


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between neighbouring pixels (pixel units, so independent of the network)."""
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    return dx.float().pow(2).mean() + dy.float().pow(2).mean()


def blend_grams(grams: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    """Target Gram of several style images: their weighted average (weights already normalised)."""
    total = torch.zeros_like(grams[0])
    for gram, weight in zip(grams, weights, strict=True):
        total = total + weight * gram
    return total

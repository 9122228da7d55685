"""Loss terms of Gatys et al., each normalised by the size of its target.

Dividing by the target's squared norm makes every term independent of the scale of the activations: weights whose
activations are 255x larger (Caffe-era VGG19) give the same objective, and so the same picture, as torchvision's.
Losses are summed in float32 whatever precision the network ran in (Gram values overflow float16). The Gram product
itself runs in the features' precision: on bfloat16 hardware its inputs are already bfloat16, and an fp32 copy of
every feature map (plus its gradient) cost more than the whole VGG pass; the products are accumulated in float32 by
the matrix unit and rounded once (relative error ~0.2%, far below the differences the style loss measures).
"""

from __future__ import annotations

from typing import Any

import torch

_EPS = 1e-12


class _Gram(torch.autograd.Function):
    """P^T P / n for positions P (n, C), with a backward of one product: the gradient 2 P sym(dG) / n.

    Autograd's own backward of ``P.T @ P`` computes two products (one per operand) and adds them, a full-size
    sum over the feature map.
    """

    @staticmethod
    def forward(ctx: Any, positions: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(positions)
        return (positions.T @ positions).float() / positions.shape[0]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (positions,) = ctx.saved_tensors
        symmetric = ((grad + grad.T) / positions.shape[0]).to(positions.dtype)
        return positions @ symmetric


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Channel correlations (C, C) of one feature map (1, C, H, W), averaged over positions, as float32."""
    _, channels, height, width = features.shape
    # (H*W, C): a view of a channels-last map (the engine's layout), a copy otherwise.
    positions = features.permute(0, 2, 3, 1).reshape(height * width, channels)
    gram: torch.Tensor = _Gram.apply(positions)
    return gram


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error relative to the target's energy: 0 for a perfect match, ~1 for an unrelated image."""
    diff = features.float() - target
    return diff.pow(2).sum() / (target.pow(2).sum() + _EPS)


def style_loss(gram: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """Squared Gram error relative to the target Gram's energy."""
    return (gram - target_gram).pow(2).sum() / (target_gram.pow(2).sum() + _EPS)


TV_EPS = 1e-3  # the smooth form's rounding of |grad| near 0 (pixel units): keeps its gradient finite on flat areas


def tv_loss(image: torch.Tensor, form: str = "squared") -> torch.Tensor:
    """Total variation in pixel units (independent of the network). ``squared``: mean squared difference between
    neighbouring pixels. ``smooth``: mean gradient magnitude sqrt(dx^2 + dy^2 + eps^2) per pixel and channel, which
    charges a faint grain as much per unit of contrast as a stroke's edge, where the squared form barely sees it."""
    dx = (image[..., :, 1:] - image[..., :, :-1]).float()
    dy = (image[..., 1:, :] - image[..., :-1, :]).float()
    if form == "squared":
        return dx.pow(2).mean() + dy.pow(2).mean()
    if form != "smooth":
        raise ValueError(f"unknown total-variation form {form!r}")
    magnitude = (dx[..., :-1, :].pow(2) + dy[..., :, :-1].pow(2) + TV_EPS**2).sqrt()
    return magnitude.mean()


def blend_grams(grams: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    """Target Gram of several style images: their weighted average (weights already normalised)."""
    total = torch.zeros_like(grams[0])
    for gram, weight in zip(grams, weights, strict=True):
        total = total + weight * gram
    return total

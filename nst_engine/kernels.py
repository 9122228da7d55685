"""Fewer passes over memory for VGG's conv -> ReLU (-> max-pool) blocks: two exact rewrites.

On a CPU with bfloat16 matrix units the 3x3 convolutions are quick and the element-wise work around them is bound
by memory bandwidth: at 512 px the ReLUs (forward and backward) and the max-pool backward took over a third of a
VGG pass. So:

- ``conv_relu`` runs the convolution and its ReLU as one oneDNN call (ReLU as a post-op on the output while it is
  still in cache), with a backward of our own: mask the incoming gradient by the output, then the convolution's input
  gradient only (the frozen weights need none).
- ``conv_pool_relu`` serves a block whose ReLU output no loss reads (relu1_2, relu2_2, relu3_4, relu4_4): max-pool
  the convolution's output first and apply the ReLU to the quarter-size result. Max and ReLU are both monotone, so
  relu(max(a)) = max(relu(a)) and the gradient reaches the same pixels.

Both give the plain modules' values: the pool rewrite exactly, the fused call up to the rounding of another oneDNN
kernel (tests/engine/test_kernels.py compares them). Elsewhere (CUDA, autocast, oneDNN off or missing) ``conv_relu`` is
``relu(conv(x))`` in plain PyTorch.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# Off: every block runs as the plain modules (``benchmarks.cpu_levers`` measures the difference).
ENABLED = True


def _autocast_on_cpu() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4 takes no device type
        return torch.is_autocast_cpu_enabled()


def _fusable(x: torch.Tensor, conv: nn.Conv2d) -> bool:
    """Whether oneDNN's fused convolution applies: a CPU tensor, no autocast (which the fused op would bypass), a
    plain zero-padded convolution, and frozen weights (its backward computes no weight gradient)."""
    return (
        x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.bfloat16)
        and x.dtype == conv.weight.dtype
        and torch.backends.mkldnn.is_available()
        and bool(torch.backends.mkldnn.enabled)
        and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
        and not _autocast_on_cpu()
        and conv.padding_mode == "zeros"
        and isinstance(conv.padding, tuple)
        and not conv.weight.requires_grad
        and (conv.bias is None or not conv.bias.requires_grad)
    )


class _FusedConvReLU(torch.autograd.Function):
    """relu(conv(x)) in one oneDNN call; the backward returns the input's gradient only."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
        geometry = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
        padding, stride, dilation, groups = geometry
        y = torch.ops.mkldnn._convolution_pointwise(
            x, conv.weight, conv.bias, padding, stride, dilation, groups, "relu", [], ""
        )
        ctx.geometry = geometry
        ctx.save_for_backward(x, conv.weight, y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None
        x, weight, y = ctx.saved_tensors
        padding, stride, dilation, groups = ctx.geometry
        masked = torch.ops.aten.threshold_backward(grad, y, 0)
        grad_x, _, _ = torch.ops.aten.convolution_backward(
            masked, x, weight, None, stride, padding, dilation, False, [0, 0], groups, [True, False, False]
        )
        return grad_x, None


def conv_relu(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """relu(conv(x)), fused on the CPU (see the module's docstring)."""
    if _fusable(x, conv):
        out: torch.Tensor = _FusedConvReLU.apply(x, conv)
        return out
    return F.relu(conv(x))


def conv_pool_relu(x: torch.Tensor, conv: nn.Conv2d, pool: nn.MaxPool2d) -> torch.Tensor:
    """pool(relu(conv(x))) computed as relu(pool(conv(x))): the ReLU on a quarter of the elements."""
    return F.relu(pool(conv(x)))

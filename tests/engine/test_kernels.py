"""The fused VGG blocks and the one-product Gram backward give the numbers of the plain modules and autograd."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nst_engine import kernels
from nst_engine.losses import gram_matrix
from nst_engine.presets import CONTENT_LAYER, STYLE_LAYERS
from nst_engine.vgg import LAYER_INDEX

LAYERS = (*STYLE_LAYERS, CONTENT_LAYER)


def _plain(trunk: nn.Sequential, model, x: torch.Tensor, layers: tuple[str, ...], dtype) -> dict[str, torch.Tensor]:
    """Module by module, as torchvision runs the trunk (out-of-place ReLUs so each wanted output survives)."""
    wanted = {LAYER_INDEX[name]: name for name in layers}
    h = (x - model.mean) / model.std
    h = h.to(dtype) if dtype is not None else h
    out = {}
    for idx, module in enumerate(trunk):
        h = torch.relu(h) if isinstance(module, nn.ReLU) else module(h)
        if idx in wanted:
            out[wanted[idx]] = h
        if idx == max(wanted):
            break
    return out


def _image(side: int, seed: int) -> torch.Tensor:
    x = torch.rand(1, 3, side, side - 8, generator=torch.Generator().manual_seed(seed))
    return x.contiguous(memory_format=torch.channels_last)


def _loss(feats: dict[str, torch.Tensor]) -> torch.Tensor:
    return sum(f.float().pow(2).mean() * (i + 1) for i, f in enumerate(feats.values()))  # type: ignore[return-value]


@pytest.mark.parametrize("dtype", [torch.bfloat16, None], ids=["bf16", "fp32"])
def test_fused_blocks_match_the_plain_modules_forward_and_backward(model, dtype):
    x1, x2 = _image(72, 0).requires_grad_(True), _image(72, 0).requires_grad_(True)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fused = model(x1, LAYERS, dtype)
    plain = _plain(model.trunk(dtype), model, x2, LAYERS, dtype)
    _loss(fused).backward()
    _loss(plain).backward()
    fused_calls = [e for e in prof.events() if e.name == "mkldnn::_convolution_pointwise"]
    # 13 convolutions through relu5_1: 4 are pool blocks (their ReLU output unused), 9 fused.
    assert len(fused_calls) == 9 if torch.backends.mkldnn.is_available() else not fused_calls
    for name in LAYERS:
        assert fused[name].dtype == plain[name].dtype
        assert torch.allclose(fused[name].float(), plain[name].float(), rtol=1e-2, atol=1e-3), name
    rel = (x1.grad - x2.grad).norm() / x2.grad.norm()
    assert rel < 1e-2, f"input gradients differ by {rel:.2%}"


def test_a_wanted_relu_before_a_pool_is_kept_and_autocast_falls_back_to_the_modules(model):
    x = _image(40, 1)
    layers = ("relu1_2", "relu2_2")
    assert torch.allclose(model(x, layers)["relu1_2"], _plain(model.features, model, x, layers, None)["relu1_2"])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = model(x, ("relu2_1",))["relu2_1"]
    assert auto.dtype == torch.bfloat16  # autocast still casts: the fused op (which would bypass it) is not used


def test_conv_pool_relu_is_pool_of_relu():
    conv, pool = nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(2, 2)
    x = torch.randn(1, 3, 10, 12, generator=torch.Generator().manual_seed(2))
    assert torch.equal(kernels.conv_pool_relu(x, conv, pool), pool(torch.relu(conv(x))))


def test_gram_backward_is_autograds():
    features = torch.randn(1, 8, 6, 5, generator=torch.Generator().manual_seed(3)).contiguous(
        memory_format=torch.channels_last
    )
    target = torch.randn(8, 8, generator=torch.Generator().manual_seed(4))
    mine = features.clone().requires_grad_(True)
    (gram_matrix(mine) - target).pow(2).sum().backward()
    reference = features.clone().requires_grad_(True)
    positions = reference.permute(0, 2, 3, 1).reshape(30, 8)
    ((positions.T @ positions) / 30 - target).pow(2).sum().backward()
    assert torch.allclose(mine.grad, reference.grad, rtol=1e-5, atol=1e-6)
    assert mine.grad.is_contiguous(memory_format=torch.channels_last)

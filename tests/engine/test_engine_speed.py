"""The engine's speed measures keep their results: bf16 weight copy, Gram products, the CPU allocator setting;
and the benchmarks' baseline is the network the tutorial runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from benchmarks.tutorial_recipe import TutorialNet, trimmed_trunk
from nst_engine.losses import gram_matrix
from nst_engine.vgg import build_features

ROOT = Path(__file__).resolve().parents[2]


def test_bf16_trunk_is_made_once_and_follows_weight_edits(model):
    first = model.trunk(torch.bfloat16)
    assert first is model.trunk(torch.bfloat16)
    assert first is not model.features and next(first.parameters()).dtype == torch.bfloat16
    assert "_low_precision" not in dict(model.named_modules()) and all("low" not in k for k in model.state_dict())
    assert model.trunk(None) is model.features and model.trunk(torch.float32) is model.features
    with torch.no_grad():
        model.features[0].bias.add_(1.0)
    try:
        second = model.trunk(torch.bfloat16)
        assert second is not first
        assert torch.equal(second[0].bias, model.features[0].bias.to(torch.bfloat16))
    finally:
        with torch.no_grad():
            model.features[0].bias.sub_(1.0)


def test_bf16_pass_matches_autocast_and_fp32(model):
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)).contiguous(
        memory_format=torch.channels_last
    )
    layers = ("relu1_1", "relu3_1", "relu5_1")
    fp32 = model(x, layers)
    bf16 = model(x, layers, torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = model(x, layers)
    for name in layers:
        assert bf16[name].dtype == torch.bfloat16
        assert torch.allclose(bf16[name].float(), auto[name].float(), rtol=0.02, atol=1e-2 * fp32[name].abs().max())
        rel = (bf16[name].float() - fp32[name]).norm() / fp32[name].norm()
        assert rel < 0.02, f"{name}: bf16 differs from fp32 by {rel:.3%}"


def test_gram_is_the_same_for_either_layout_and_close_in_bf16():
    features = torch.rand(1, 16, 12, 10, generator=torch.Generator().manual_seed(1))
    reference = features[0].reshape(16, 120) @ features[0].reshape(16, 120).T / 120
    nchw = gram_matrix(features)
    channels_last = gram_matrix(features.contiguous(memory_format=torch.channels_last))
    bf16 = gram_matrix(features.to(torch.bfloat16).contiguous(memory_format=torch.channels_last))
    assert nchw.dtype == channels_last.dtype == bf16.dtype == torch.float32
    assert torch.allclose(nchw, reference, rtol=1e-5) and torch.allclose(channels_last, reference, rtol=1e-5)
    assert (bf16 - reference).norm() / reference.norm() < 0.01


def test_gram_gradient_flows_to_bf16_channels_last_features():
    features = torch.rand(1, 8, 6, 6).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    features.requires_grad_(True)
    gram_matrix(features).pow(2).sum().backward()
    assert features.grad is not None and features.grad.dtype == torch.bfloat16 and features.grad.abs().sum() > 0


_ALLOCATOR = """
import ctypes, sys, torch
from nst_engine.device import retain_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "retain":
    assert retain_freed_memory()
before = libc.mallinfo2()
block = torch.empty(48 * 2**20 // 4).fill_(1)  # 48 MB: above glibc's largest mmap threshold (32 MB)
during = libc.mallinfo2()
del block
after = libc.mallinfo2()
print(before.arena, during.arena, after.arena, before.hblkhd, during.hblkhd, after.hblkhd)
"""
MB48 = 48 * 2**20


def _allocator(mode: str) -> tuple[int, ...]:
    """glibc's own account (mallinfo2) of one 48 MB block allocated and freed in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", _ALLOCATOR, mode], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return tuple(int(v) for v in done.stdout.split()[-6:])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the allocator setting is glibc's (Linux)")
def test_freed_memory_is_kept_for_the_next_pass_instead_of_returned_to_the_kernel():
    """By default glibc serves a 48 MB block with its own mmap and unmaps it on free, so the next pass page-faults
    it in afresh; with retain_freed_memory the block comes from the heap and stays there after free. (The page
    faults this saves are counted by ``benchmarks.cpu_levers``; their number depends on the kernel's state.)"""
    _, _, _, hblkhd_before, hblkhd_during, hblkhd_after = _allocator("default")
    assert hblkhd_during - hblkhd_before >= MB48 and hblkhd_after == hblkhd_before  # mmapped, then given back
    arena_before, arena_during, arena_after, hblkhd_before, hblkhd_during, hblkhd_after = _allocator("retain")
    assert hblkhd_during == hblkhd_before == hblkhd_after  # never mmapped
    assert arena_during - arena_before >= MB48 and arena_after == arena_during  # from the heap, and kept there


def test_tutorial_net_is_trimmed_after_its_last_loss_layer():
    features = build_features(30)  # through relu5_1, as the shared weights hold
    trunk = trimmed_trunk(features)
    convs = [m for m in trunk if isinstance(m, nn.Conv2d)]
    assert len(convs) == 5 and len(trunk) == 11  # conv1_1 .. conv3_1 = torchvision's modules 0..10
    assert convs[-1] is features[10]
    assert all(not m.inplace for m in trunk if isinstance(m, nn.ReLU))  # the tutorial swaps in out-of-place ReLUs
    outputs = TutorialNet(features)(torch.rand(1, 3, 32, 32))
    assert sorted(outputs) == [1, 2, 3, 4, 5] and outputs[5].shape[1] == 256  # conv3_1 has 256 channels


def test_gpu_check_on_a_machine_without_a_gpu_says_so_in_one_line():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and "no CUDA GPU" in lines[0]

"""Choosing the torch device and whether bfloat16 autocast pays off on it."""

from __future__ import annotations

import ctypes
import sys
from functools import cache

import torch

from nst_engine.errors import OptionsError
from nst_engine.settings import EngineSettings

_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_MAX = -4


def resolve_device(spec: str | torch.device | None = None) -> torch.device:
    """``auto`` (default, or the NST_DEVICE setting) picks the first CUDA device when there is one, else the CPU."""
    if isinstance(spec, torch.device):
        return spec
    spec = (spec or EngineSettings().nst_device or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as exc:
        raise OptionsError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise OptionsError(f"device {spec!r} was asked for, but CUDA is not available on this machine")
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise OptionsError(f"device {spec!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
        return torch.device("cuda", index)
    if device.type != "cpu":
        raise OptionsError(f"unsupported device {spec!r}; use auto, cpu, cuda or cuda:N")
    return device


@cache
def _cpu_has_fast_bf16() -> bool:
    """True when the CPU runs bf16 matrix work natively (AVX512-BF16 or AMX), where oneDNN makes it pay off."""
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    cpu_mod = getattr(torch._C, "_cpu", None)
    for name in probes:
        probe = getattr(cpu_mod, name, None)
        try:
            if probe is not None and probe():
                return True
        except RuntimeError:
            continue
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast is both available and fast on ``device``."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and torch.backends.mkldnn.is_available() and _cpu_has_fast_bf16()


@cache
def retain_freed_memory() -> bool:
    """Keep memory that the C allocator frees inside the process instead of handing it back to the kernel.

    Every VGG pass on the CPU allocates a few hundred MB of fresh activations and gradients. glibc serves blocks
    over 32 MB (and, after a trim, smaller ones too) with new pages from the kernel, each of which page-faults and is
    zeroed on first touch: at 512 px that was 55,000-90,000 faults and 15-25% of a pass's time. With mmap off and trimming
    off, freed blocks are reused by the next pass, and the process keeps its peak footprint (one job's worth), which
    a worker that runs job after job needs anyway. Done once per process; a no-op where the C library is not glibc.
    Returns whether the setting took effect.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt, nothing to do
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # mallopt returns 1 on success.
    return bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)) and bool(mallopt(_M_MMAP_MAX, 0))

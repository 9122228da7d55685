"""Which devices the process pool's workers use, and how many torch threads each gets."""

from __future__ import annotations

import os

from nst_engine.errors import PoolError


def cuda_device_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def plan_devices(device: str, workers: int | None) -> list[str]:
    """The device of each worker: ``cuda:N`` round-robin over the visible GPUs, or ``cpu``.

    ``device``: auto (CUDA when available), cpu, cuda or cuda:N. ``workers`` None means one per visible GPU for
    ``auto``/``cuda``, one for ``cuda:N`` and for the CPU.
    """
    spec = device.strip().lower()
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    gpus = cuda_device_count() if spec != "cpu" else 0
    if spec == "auto":
        spec = "cuda" if gpus else "cpu"
    if spec == "cpu":
        return ["cpu"] * (workers or 1)
    if spec == "cuda":
        if not gpus:
            raise PoolError("device 'cuda' was asked for (NST_DEVICE), but no CUDA device is visible; use auto or cpu")
        return [f"cuda:{i % gpus}" for i in range(workers or gpus)]
    if spec.startswith("cuda:") and spec[5:].isdigit():
        index = int(spec[5:])
        if index >= gpus:
            raise PoolError(f"device {spec!r} does not exist: this machine has {gpus} visible CUDA device(s)")
        return [f"cuda:{index}"] * (workers or 1)
    raise ValueError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N")


def default_threads(workers: int) -> int:
    """Torch CPU threads per worker: the cores this process may use, shared out evenly."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, workers))

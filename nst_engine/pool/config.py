"""Settings of the process pool: which devices the workers use, and NST_* environment parsing."""

from __future__ import annotations

import math
import os
from typing import Any, Literal

from nst_engine.errors import PoolError


def env_int(name: str) -> int | None:
    """The integer in env ``name``, None when unset or empty; ValueError naming the variable when malformed."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None


def env_float(name: str) -> float | None:
    """The number in env ``name``, None when unset or empty; ValueError naming the variable when malformed."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {raw!r}")
    return value


def env_workers(name: str = "NST_WORKERS") -> int | Literal["auto"] | None:
    """``auto``, a whole number, or None when unset; ValueError naming the variable otherwise."""
    raw = os.environ.get(name, "").strip().lower()
    if raw == "auto":
        return "auto"
    try:
        return env_int(name)
    except ValueError:
        raise ValueError(f"{name} must be a whole number or auto, got {raw!r}") from None


def env_str(name: str) -> str | None:
    raw = os.environ.get(name, "").strip()
    return raw or None


def backend_settings_from_env(extra: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of a backend from the NST_* variables both backends read, plus ``extra`` (its own).

    Unset variables are left out (the constructor's default applies); ``overrides`` win over the environment.
    """
    settings: dict[str, Any] = {
        "workers": env_workers("NST_WORKERS"),
        "device": env_str("NST_DEVICE"),
        "weights": env_str("NST_WEIGHTS"),
        "job_timeout": env_float("NST_JOB_TIMEOUT"),
        "max_queue": env_int("NST_MAX_QUEUE"),
        "progress_interval": env_float("NST_PROGRESS_INTERVAL"),
        "start_timeout": env_float("NST_START_TIMEOUT"),
        "stop_grace": env_float("NST_STOP_GRACE"),
        **extra,
    }
    settings = {name: value for name, value in settings.items() if value is not None}
    settings.update(overrides)
    return settings


def check_backend_settings(
    *,
    positive_seconds: dict[str, float],
    stop_grace: float,
    progress_interval: float,
    max_queue: int,
) -> None:
    """ValueError naming the first backend setting out of range (the checks both backends' constructors share)."""
    for name, value in positive_seconds.items():
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number of seconds, got {value}")
    for name, value in (("stop_grace", stop_grace), ("progress_interval", progress_interval)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be >= 0 seconds, got {value}")
    if max_queue < 0:
        raise ValueError(f"max_queue must be >= 0, got {max_queue}")


def cuda_device_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def plan_devices(device: str | None, workers: int | None) -> list[str]:
    """The device of each worker: ``cuda:N`` round-robin over the visible GPUs, or ``cpu``.

    ``device`` None means env NST_DEVICE, else ``auto`` (CUDA when available). ``workers`` None means one per
    visible GPU for ``auto``/``cuda``, one for ``cuda:N`` and for the CPU.
    """
    spec = (device or os.environ.get("NST_DEVICE") or "auto").strip().lower()
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

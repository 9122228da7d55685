"""Choosing the backend: ``NST_BACKEND=process`` (the default: worker processes on this machine) or ``ray``."""

from __future__ import annotations

import os
from typing import Any, Literal

from nst_engine.pool.protocol import StyleBackend

BackendKind = Literal["process", "ray"]
BACKEND_KINDS: tuple[BackendKind, ...] = ("process", "ray")


def backend_kind(kind: str | None = None) -> BackendKind:
    """``kind``, else env NST_BACKEND, else ``process``; ValueError naming the choices for anything else."""
    raw = (kind or os.environ.get("NST_BACKEND") or "process").strip().lower()
    for known in BACKEND_KINDS:
        if raw == known:
            return known
    raise ValueError(f"NST_BACKEND must be one of {', '.join(BACKEND_KINDS)}, got {raw!r}")


def backend_from_env(
    kind: str | None = None,
    *,
    ray_address: str | None = None,
    cpus_per_worker: float | None = None,
    **overrides: Any,
) -> StyleBackend:
    """The backend ``kind`` (None: NST_BACKEND) configured from the NST_* environment; keyword overrides win.

    ``overrides`` are the settings both backends share (workers, device, weights, job_timeout, max_queue, ...;
    None values are ignored). ``ray_address`` and ``cpus_per_worker`` apply to the Ray backend only (None: its
    RAY_ADDRESS and NST_CPUS_PER_WORKER), so one call serves both.
    """
    settings = {name: value for name, value in overrides.items() if value is not None}
    if backend_kind(kind) == "ray":
        from nst_engine.pool.ray_backend import RayBackend

        if ray_address is not None:
            settings["address"] = ray_address
        if cpus_per_worker is not None:
            settings["cpus_per_worker"] = cpus_per_worker
        return RayBackend.from_env(**settings)
    from nst_engine.pool.backend import ProcessPoolBackend

    return ProcessPoolBackend.from_env(**settings)

"""Choosing the backend: ``NST_BACKEND=process`` (the default: worker processes on this machine) or ``ray``."""

from __future__ import annotations

from typing import Any

from nst_engine.pool.protocol import StyleBackend
from nst_engine.pool.settings import PoolSettings, load_pool_settings


def backend_from_settings(settings: PoolSettings, kind: str | None = None, **overrides: Any) -> StyleBackend:
    """The backend ``kind`` (None: the NST_BACKEND setting) configured from ``settings``; keyword overrides win.

    The bot's ``Settings`` extend ``PoolSettings``, so the bot passes its own. None overrides are ignored.
    """
    chosen = PoolSettings.model_validate({"nst_backend": kind}).nst_backend if kind else settings.nst_backend
    arguments = {name: value for name, value in overrides.items() if value is not None}
    if chosen == "ray":
        from nst_engine.pool.ray_backend import RayBackend

        return RayBackend.from_settings(settings, **arguments)
    from nst_engine.pool.process_backend import ProcessPoolBackend

    return ProcessPoolBackend.from_settings(settings, **arguments)


def backend_from_env(
    kind: str | None = None,
    *,
    ray_address: str | None = None,
    cpus_per_worker: float | None = None,
    **overrides: Any,
) -> StyleBackend:
    """The backend ``kind`` (None: NST_BACKEND) configured from the environment and ``.env``; keyword overrides win.

    ``overrides`` are the settings both backends share (workers, device, weights, job_timeout, max_queue, ...;
    None values are ignored). ``ray_address`` and ``cpus_per_worker`` apply to the Ray backend only, so one call
    serves both.
    """
    settings = load_pool_settings()
    if ray_address is not None:
        settings = settings.model_copy(update={"ray_address": ray_address})
    if cpus_per_worker is not None:
        settings = settings.model_copy(update={"nst_cpus_per_worker": cpus_per_worker})
    return backend_from_settings(settings, kind, **overrides)

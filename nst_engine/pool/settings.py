"""The NST_* settings of the style backends, read from the environment and from ``.env`` (pydantic-settings).

The bot's settings (``bot.config.Settings``) extend this model, so one ``.env`` feeds the bot, the pool and the Ray
backend; ``.env.example`` lists every setting with its default. Empty values mean the default. No torch here.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict

from nst_engine.settings import EngineSettings

BackendKind = Literal["process", "ray"]
BACKEND_KINDS: tuple[BackendKind, ...] = ("process", "ray")


class PoolSettings(EngineSettings):
    """Which backend runs style jobs, where, and how long a job, a start and a stop may take."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True)

    nst_backend: BackendKind = "process"  # process: worker processes here; ray: Ray actors (docs/scaling-out.md)
    nst_workers: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"  # auto: one per GPU (see the backends)
    nst_job_timeout: float = Field(600.0, gt=0)
    nst_max_queue: int = Field(32, ge=0)
    nst_progress_interval: float = Field(0.5, ge=0)
    nst_threads_per_worker: int | None = Field(None, ge=1)  # None: the usable cores divided among the workers
    nst_start_timeout: float = Field(180.0, gt=0)
    nst_stop_grace: float = Field(10.0, ge=0)
    ray_address: str | None = None  # Ray's own variable: the cluster to join; unset = a local Ray on this machine
    nst_cpus_per_worker: float = Field(1.0, gt=0)  # Ray: CPUs each slot reserves (and a CPU slot's threads)
    nst_cluster_rescan: float = Field(15.0, gt=0)  # Ray: seconds between checks of the cluster's size

    @field_validator("nst_backend", mode="before")
    @classmethod
    def _kind(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        raw = value.strip().lower()
        if raw not in BACKEND_KINDS:
            raise ValueError(f"NST_BACKEND must be one of {', '.join(BACKEND_KINDS)}, got {raw!r}")
        return raw

    @field_validator("nst_workers", mode="before")
    @classmethod
    def _workers(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        raw = value.strip().lower()
        if raw == "auto":
            return raw
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"NST_WORKERS must be a whole number or auto, got {raw!r}") from None

    @field_validator("nst_max_queue", "nst_threads_per_worker", mode="before")
    @classmethod
    def _whole(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        try:
            return int(value.strip())
        except ValueError:
            raise ValueError(f"{_env_name(info)} must be a whole number, got {value.strip()!r}") from None

    @field_validator(
        "nst_job_timeout",
        "nst_progress_interval",
        "nst_start_timeout",
        "nst_stop_grace",
        "nst_cpus_per_worker",
        "nst_cluster_rescan",
        mode="before",
    )
    @classmethod
    def _number(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        raw = value.strip()
        unit = "" if info.field_name == "nst_cpus_per_worker" else " of seconds"
        try:
            number = float(raw)
        except ValueError:
            raise ValueError(f"{_env_name(info)} must be a number{unit}, got {raw!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"{_env_name(info)} must be a finite number, got {raw!r}")
        return number


def _env_name(info: ValidationInfo) -> str:
    return (info.field_name or "").upper()


def describe_settings_error(exc: ValidationError) -> str:
    """Each bad setting in one line, named as in the environment (``NST_STOP_GRACE must be ...``)."""
    problems = []
    for error in exc.errors():
        name = str(error["loc"][0]).upper() if error["loc"] else "settings"
        cause = error.get("ctx", {}).get("error")
        message = str(cause) if error["type"] == "value_error" and cause is not None else error["msg"]
        problems.append(message if message.startswith(name) else f"{name}: {message}")
    return "; ".join(problems)


def load_pool_settings() -> PoolSettings:
    """The settings from the environment and ``.env``; ValueError naming each bad one."""
    try:
        return PoolSettings()
    except ValidationError as exc:
        raise ValueError(describe_settings_error(exc)) from None


def or_setting(value: str | None, name: str) -> str | None:
    """``value``, else the setting ``name`` (``nst_device``, ...) from the environment and ``.env``."""
    if value is not None:
        return value
    setting = getattr(load_pool_settings(), name)
    return setting if setting is None else str(setting)


def backend_arguments(settings: PoolSettings, kind: BackendKind) -> dict[str, Any]:
    """The keyword arguments of backend ``kind``'s constructor that ``settings`` give."""
    arguments: dict[str, Any] = {
        "workers": settings.nst_workers,
        "device": settings.nst_device,
        "weights": settings.nst_weights,
        "job_timeout": settings.nst_job_timeout,
        "max_queue": settings.nst_max_queue,
        "progress_interval": settings.nst_progress_interval,
        "start_timeout": settings.nst_start_timeout,
        "stop_grace": settings.nst_stop_grace,
    }
    if kind == "ray":
        return arguments | {
            "cpus_per_worker": settings.nst_cpus_per_worker,
            "address": settings.ray_address,
            "rescan": settings.nst_cluster_rescan,
        }
    return arguments | {"threads_per_worker": settings.nst_threads_per_worker}

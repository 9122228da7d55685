"""Bot settings, read from the environment and from ``.env`` (see ``.env.example`` for every setting).

They extend the style backends' ``PoolSettings`` (the NST_* settings and RAY_ADDRESS), so one ``.env`` feeds both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from nst_engine.pool.settings import PoolSettings
from nst_engine.presets import PRESETS

KNOWN_PRESETS: tuple[str, ...] = tuple(PRESETS)  # the engine's presets, in its order


class Settings(PoolSettings):
    """Everything the bot can be configured with. Bot-wide ceilings bound what any server may set."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

    discord_token: SecretStr | None = None
    bot_prefix: str = Field("!", min_length=1)
    database_path: Path = Path("data/bot.sqlite3")
    command_guild_id: int | None = None  # sync slash commands to this one server at once (development)
    sync_commands: bool = True
    job_retention_days: float = Field(30.0, gt=0)  # finished jobs are pruned from the journal after this

    # Bot-wide ceilings; a server's own limits can only be lower.
    max_file_mb: float = Field(8.0, gt=0)
    max_megapixels: float = Field(16.0, gt=0)
    max_output_side: int = Field(1024, ge=64)
    allowed_presets: Annotated[tuple[str, ...], NoDecode] = KNOWN_PRESETS
    max_styles: int = Field(3, ge=1, le=8)
    max_frames: int = Field(48, ge=1, le=1000)  # frames of an animated content image
    max_animation_megapixels: float = Field(8.0, gt=0)  # an animation's frames x output pixels, in megapixels

    # Fair queue.
    user_max_running: int = Field(1, ge=1)
    user_max_waiting: int = Field(1, ge=0)
    max_queue: int = Field(20, ge=1)
    user_cooldown: float = Field(5.0, ge=0)  # seconds between one person's accepted requests; 0 = none

    download_timeout: float = Field(20.0, gt=0)
    delivery_retry_seconds: float = Field(10.0, gt=0)  # first pause before re-sending a result Discord refused
    progress_edit_interval: float = Field(2.5, ge=0.5)
    preview_interval: float = Field(0.0, ge=0)  # seconds between preview images in the status; 0 = none
    rerun_cache_size: int = Field(32, ge=0)  # jobs whose inputs are kept for the re-run buttons
    rerun_cache_ttl: float = Field(3600.0, gt=0)

    # Style gallery (bot/gallery.py): per-server paintings, and the long side they are stored at.
    gallery_max_items: int = Field(25, ge=1, le=50)
    gallery_max_mb: float = Field(20.0, gt=0)
    gallery_max_side: int = Field(1024, ge=256, le=4096)

    # Engine and worker pool: PoolSettings' NST_* settings; the bot's fair queue is in front of the pool's queue,
    # so the pool holds fewer jobs waiting than a bare backend would.
    nst_max_queue: int = Field(16, ge=1)

    log_level: str = "INFO"

    # Operations (docs/operations.md): metrics, shutdown, sharding, log format.
    metrics_address: str = "127.0.0.1:9108"  # host:port of /metrics and /healthz; empty or "off" = no server
    shutdown_grace: float = Field(60.0, ge=0)  # seconds running jobs may finish after SIGTERM/SIGINT
    shard_count: int | Literal["auto"] | None = None  # None: one shard; "auto": Discord's recommendation
    log_format: Literal["text", "json"] = "text"
    # The privileged Message Content intent (only `!style` needs it): "auto" asks Discord at start-up whether the
    # application has it; "on" requires it (start-up fails without); "off" never asks for it.
    message_content_intent: Literal["auto", "on", "off"] = "auto"
    source_url: str = ""  # where this bot's source is published (shown by /style-about); empty: not published


    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Empty values mean "the default" everywhere except METRICS_ADDRESS, where empty turns the server off.
        env_file = getattr(dotenv_settings, "env_file", None)
        return (init_settings, env_settings, dotenv_settings, _EmptyMeansOff(settings_cls, env_file),
                file_secret_settings)

    @field_validator("metrics_address")
    @classmethod
    def _address(cls, value: str) -> str:
        value = value.strip()
        if value.lower() in ("", "off", "none", "false"):
            return ""
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError("METRICS_ADDRESS must be host:port (e.g. 127.0.0.1:9108), or empty to turn it off")
        return value

    @field_validator("shard_count", mode="before")
    @classmethod
    def _shards(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        return value

    @field_validator("shard_count")
    @classmethod
    def _shards_positive(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and value < 1:
            raise ValueError("SHARD_COUNT must be at least 1, or auto, or empty for one shard")
        return value

    @field_validator("log_format", "message_content_intent", mode="before")
    @classmethod
    def _format(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("allowed_presets", mode="before")
    @classmethod
    def _split_presets(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip().lower() for part in value.split(",") if part.strip()]
        return value

    @field_validator("allowed_presets")
    @classmethod
    def _known_presets(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in value if name not in KNOWN_PRESETS]
        if unknown:
            raise ValueError(f"unknown preset(s) {', '.join(unknown)}; choose from {', '.join(KNOWN_PRESETS)}")
        if not value:
            raise ValueError("at least one preset must be allowed")
        # Keep the canonical order, without duplicates.
        return tuple(name for name in KNOWN_PRESETS if name in value)

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return value


class _EmptyMeansOff(PydanticBaseSettingsSource):
    """``METRICS_ADDRESS=`` (set but empty, in the environment or .env) turns the metrics server off."""

    NAME = "metrics_address"

    def __init__(self, settings_cls: type[BaseSettings], env_file: Any) -> None:
        super().__init__(settings_cls)
        self.env_file = env_file

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        sources: list[PydanticBaseSettingsSource] = [EnvSettingsSource(self.settings_cls, env_ignore_empty=False)]
        if self.env_file is not None:
            sources.append(DotEnvSettingsSource(self.settings_cls, env_file=self.env_file, env_ignore_empty=False))
        for source in sources:
            if source().get(self.NAME) == "":
                return {self.NAME: ""}
        return {}

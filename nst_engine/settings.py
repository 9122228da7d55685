"""The engine's own settings (NST_WEIGHTS, NST_DEVICE), read from the environment and ``.env`` (pydantic-settings).

They are the fallbacks of ``load_vgg``'s ``weights`` and ``device``; the pool's settings
(``nst_engine.pool.settings.PoolSettings``) and the bot's extend this model. No torch here.
"""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class EngineSettings(BaseSettings):
    """Which VGG19 weights the engine loads, and on which device."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True)

    nst_weights: str = "imagenet"  # imagenet | random (tests only) | a path to a state_dict of vgg19().features
    nst_device: str = "auto"  # auto | cpu | cuda | cuda:N

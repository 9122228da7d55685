"""Effective limits: a server's own settings, bounded by the bot-wide ceilings from the environment."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, Protocol

from bot import quoting
from bot.config import KNOWN_PRESETS, Settings

MB = 1024 * 1024


class LimitError(ValueError):
    """A server tried to set a limit that is invalid or above the bot-wide ceiling."""


@dataclass(frozen=True)
class Limits:
    """What one request may use."""

    max_file_mb: float
    max_megapixels: float
    max_output_side: int
    allowed_presets: tuple[str, ...]
    max_frames: int = 48  # frames of an animated content image
    max_animation_megapixels: float = 8.0  # frames x output pixels of one animation

    @property
    def max_bytes(self) -> int:
        return int(self.max_file_mb * MB)

    @property
    def max_pixels(self) -> int:
        return int(self.max_megapixels * 1_000_000)

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_file_mb=settings.max_file_mb,
            max_megapixels=settings.max_megapixels,
            max_output_side=settings.max_output_side,
            allowed_presets=tuple(settings.allowed_presets),
            max_frames=settings.max_frames,
            max_animation_megapixels=settings.max_animation_megapixels,
        )


@dataclass(frozen=True)
class GuildLimits:
    """A server's own settings; ``None`` means "use the bot-wide value"."""

    max_file_mb: float | None = None
    max_megapixels: float | None = None
    max_output_side: int | None = None
    allowed_presets: tuple[str, ...] | None = None
    max_frames: int | None = None
    max_animation_megapixels: float | None = None

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))


# The lowest value a limit may have: below these no image could ever be accepted (or the result not be made), so
# every request in the server would fail. Values saved before the floors existed are raised to them when read.
LIMIT_FLOORS: dict[str, float] = {
    "max_file_mb": 0.1,
    "max_megapixels": 0.1,
    "max_output_side": 64,
    "max_frames": 1,  # one frame: animations are painted as stills
    "max_animation_megapixels": 0.1,
}

LIMIT_LABELS = {
    "max_file_mb": "max file size (MB)",
    "max_megapixels": "max megapixels",
    "max_output_side": "max output long side (px)",
    "allowed_presets": "allowed presets",
    "max_frames": "max animation frames",
    "max_animation_megapixels": "max animation megapixels (frames x output)",
}
_WHOLE = ("max_output_side", "max_frames")  # limits that are whole numbers


def effective_limits(ceilings: Limits, guild: GuildLimits | None) -> Limits:
    """min(server setting, ceiling) per limit; presets are the intersection (never empty)."""
    if guild is None:
        return ceilings
    presets = ceilings.allowed_presets
    if guild.allowed_presets is not None:
        presets = tuple(p for p in ceilings.allowed_presets if p in guild.allowed_presets) or presets
    return Limits(
        max_file_mb=_bounded("max_file_mb", ceilings.max_file_mb, guild.max_file_mb),
        max_megapixels=_bounded("max_megapixels", ceilings.max_megapixels, guild.max_megapixels),
        max_output_side=int(_bounded("max_output_side", ceilings.max_output_side, guild.max_output_side)),
        allowed_presets=presets,
        max_frames=int(_bounded("max_frames", ceilings.max_frames, guild.max_frames)),
        max_animation_megapixels=_bounded(
            "max_animation_megapixels", ceilings.max_animation_megapixels, guild.max_animation_megapixels
        ),
    )


class GuildLimitsStore(Protocol):
    async def guild_limits(self, guild_id: int) -> GuildLimits: ...


class LimitsLookup:
    """The limits that apply in a server (None: a DM, where the ceilings apply); a callable the job service and the
    cogs are given."""

    def __init__(self, ceilings: Limits, store: GuildLimitsStore) -> None:
        self.ceilings = ceilings
        self.store = store

    async def __call__(self, guild_id: int | None) -> Limits:
        if guild_id is None:
            return self.ceilings
        return effective_limits(self.ceilings, await self.store.guild_limits(guild_id))


def _bounded(name: str, ceiling: float, value: float | None) -> float:
    """The server's value within [floor, ceiling] (the ceiling wins should it be below the floor)."""
    if value is None:
        return ceiling
    return min(ceiling, max(LIMIT_FLOORS[name], value))


def parse_presets(text: str) -> tuple[str, ...]:
    """Parse "fast, balanced" into known preset names, or raise LimitError naming the bad ones."""
    names = [part.strip().lower() for part in text.replace(" ", ",").split(",") if part.strip()]
    unknown = [n for n in names if n not in KNOWN_PRESETS]
    if unknown:
        # Quoted back shortened: a pasted wall of text must still give a message that fits Discord's limits.
        shown = quoting.value(", ".join(unknown), 200)
        raise LimitError(f"Unknown preset {shown}: choose from {', '.join(KNOWN_PRESETS)}.")
    if not names:
        raise LimitError(f"Name at least one preset ({', '.join(KNOWN_PRESETS)}).")
    return tuple(p for p in KNOWN_PRESETS if p in names)


def apply_update(current: GuildLimits, ceilings: Limits, **changes: Any) -> GuildLimits:
    """Validate ``changes`` (None = leave as is) against the ceilings and return the new server settings.

    Raises LimitError with a message for the moderator when a value is out of range or above the ceiling.
    """
    updates: dict[str, Any] = {}
    for name, value in changes.items():
        if value is None:
            continue
        if name not in LIMIT_LABELS:
            raise LimitError(f"Unknown limit {name!r}.")
        label = LIMIT_LABELS[name]
        if name == "allowed_presets":
            presets = parse_presets(value) if isinstance(value, str) else tuple(value)
            refused = [p for p in presets if p not in ceilings.allowed_presets]
            if refused:
                raise LimitError(
                    f"The preset {', '.join(refused)} is disabled bot-wide; this bot allows only "
                    f"{', '.join(ceilings.allowed_presets)}."
                )
            updates[name] = presets
            continue
        ceiling = getattr(ceilings, name)
        floor = LIMIT_FLOORS[name]
        if not math.isfinite(value):
            raise LimitError(f"The {label} must be a number between {_fmt(floor)} and {_fmt(ceiling)}.")
        if value > ceiling:
            raise LimitError(
                f"The {label} can be at most {_fmt(ceiling)} on this bot (you asked for {_fmt(value)}); "
                "the bot's owner sets that ceiling."
            )
        if value < floor:
            raise LimitError(
                f"The {label} must be at least {_fmt(floor)} (you asked for {_fmt(value)}): below that no "
                "picture could be accepted."
            )
        updates[name] = int(value) if name in _WHOLE else float(value)
    return replace(current, **updates)


def _fmt(value: float) -> str:
    return f"{value:g}"

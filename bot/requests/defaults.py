"""A person's defaults applied to a request: what an option left out becomes, always within the limits here.

``baseline`` turns the stored defaults into the StyleArgs a request starts from (a default preset this server does
not allow falls back, with a note); the cogs lay the options the person did give over it, and ``Baseline.note``
says in the status and the result which of their defaults were used.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.requests.arguments import STRENGTH_MAX, STRENGTH_MIN, StyleArgs
from bot.requests.policy import choose_preset
from bot.storage.limits import Limits
from bot.storage.user_defaults import UserDefaults, UserDefaultsStore


@dataclass(frozen=True)
class Baseline:
    """What a request starts from before its own options: the person's defaults bounded by the limits here."""

    args: StyleArgs
    defaults: UserDefaults
    fallbacks: tuple[str, ...] = ()  # defaults that do not apply here, and what is used instead

    def note(self, args: StyleArgs, *, painting: str | None = None) -> str:
        """"Your defaults: preset fast, colours kept" for the defaults ``args`` really used, then the fallbacks."""
        d = self.defaults
        used: list[str] = []
        if d.preset is not None and args.preset == d.preset:
            used.append(f"preset {d.preset}")
        if d.strength is not None and args.strength == d.strength:
            used.append(f"strength {d.strength:g}")
        if d.preserve_colors is not None and args.preserve_colors == d.preserve_colors:
            used.append("colours kept" if d.preserve_colors else "the painting's colours")
        if d.painting is not None and painting is not None and painting.casefold() == d.painting.casefold():
            used.append(f"painting {d.painting}")
        parts = [f"Your defaults: {', '.join(used)}"] if used else []
        return ". ".join([*parts, *self.fallbacks])


def baseline(defaults: UserDefaults, limits: Limits) -> Baseline:
    """The StyleArgs a request starts from: the bot's defaults, with the person's own laid over them."""
    fallbacks: list[str] = []
    preset = defaults.preset
    if preset is not None and preset not in limits.allowed_presets:
        instead = choose_preset(None, limits)
        fallbacks.append(f"Your default preset {preset} is not allowed here, so {instead} is used")
        preset = None
    strength = defaults.strength if defaults.strength is not None else 1.0
    strength = min(STRENGTH_MAX, max(STRENGTH_MIN, strength))
    args = StyleArgs(preset=preset, strength=strength, preserve_colors=bool(defaults.preserve_colors))
    return Baseline(args=args, defaults=defaults, fallbacks=tuple(fallbacks))


class DefaultsLookup:
    """``await lookup(user_id, guild_id)``: the person's Baseline in that server (None: a DM)."""

    def __init__(self, store: UserDefaultsStore, limits_for: Callable[[int | None], Awaitable[Limits]]) -> None:
        self.store = store
        self.limits_for = limits_for

    async def __call__(self, user_id: int, guild_id: int | None) -> Baseline:
        return baseline(await self.store.get(user_id), await self.limits_for(guild_id))

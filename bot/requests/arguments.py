"""Parse the prefix command's free-form arguments: ``!style [preset] [strength] [colors] [fit] [seed=N]``."""

from __future__ import annotations

from dataclasses import dataclass

from bot import quoting
from bot.config import KNOWN_PRESETS

STRENGTH_MIN = 0.25
STRENGTH_MAX = 4.0
SEED_MAX = 2**31 - 1
COLOR_WORDS = {"colors", "colours", "preserve", "preserve-colors", "preserve-colours", "keep-colors"}
FIT_WORDS = {"fit", "shorten"}
# The painting's colours, for someone whose default keeps the photo's.
STYLE_COLOR_WORDS = {"style-colors", "style-colours", "nocolors", "no-colors", "no-colours"}


class ArgumentError(ValueError):
    """The arguments could not be understood; the message says how to fix them."""


@dataclass(frozen=True)
class StyleArgs:
    """The options a user asked for (preset, strength, colours, seed): arguments of a request, not a job."""

    preset: str | None = None  # None = the first allowed preset of "balanced", "fast", ...
    strength: float = 1.0
    preserve_colors: bool = False
    seed: int = 0
    fit: bool = False  # an animation over the limits is shortened or made smaller (with a note) instead of refused


STYLE_USAGE = (
    "Usage: `{prefix}style [fast|balanced|quality] [strength 0.25-4] [colors|style-colors] [fit] [seed=N]`"
)


def parse_style_args(text: str, *, base: StyleArgs | None = None) -> StyleArgs:
    """Turn the words after the command into StyleArgs, in any order; what they leave out comes from ``base`` (the
    person's defaults) or the bot's own defaults."""
    base = base if base is not None else StyleArgs()
    preset: str | None = None
    strength: float | None = None
    colors: bool | None = None
    fit = False
    seed = 0
    for raw in text.split():
        word = raw.strip().lower()
        if word in KNOWN_PRESETS:
            if preset is not None and preset != word:
                raise ArgumentError(f"Choose one preset, not both `{preset}` and `{quoting.value(word)}`.")
            preset = word
        elif word in COLOR_WORDS or word in STYLE_COLOR_WORDS:
            wanted = word in COLOR_WORDS
            if colors is not None and colors != wanted:
                raise ArgumentError("Choose either the photo's colours (`colors`) or the painting's (`style-colors`).")
            colors = wanted
        elif word in FIT_WORDS:
            fit = True
        elif word.startswith("seed="):
            value = word.removeprefix("seed=")
            # isdecimal, not isdigit: "²" is a digit that int() rejects.
            if not value.isdecimal() or int(value) > SEED_MAX:
                raise ArgumentError(f"The seed must be a whole number from 0 to {SEED_MAX}, not `{value}`.")
            seed = int(value)
        else:
            value = word.removeprefix("strength=").rstrip("x")
            try:
                number = float(value)
            except ValueError:
                raise ArgumentError(
                    f"I don't understand `{quoting.value(raw)}`: expected a preset ({', '.join(KNOWN_PRESETS)}), "
                    f"a strength from {STRENGTH_MIN:g} to {STRENGTH_MAX:g}, `colors`, `fit`, or `seed=N`."
                ) from None
            if strength is not None:
                raise ArgumentError("Give the strength only once.")
            if not STRENGTH_MIN <= number <= STRENGTH_MAX:
                raise ArgumentError(
                    f"The strength must be from {STRENGTH_MIN:g} (subtle) to {STRENGTH_MAX:g} (strong), "
                    f"not {number:g}."
                )
            strength = number
    return StyleArgs(
        preset=base.preset if preset is None else preset,
        strength=base.strength if strength is None else strength,
        preserve_colors=base.preserve_colors if colors is None else colors,
        seed=seed,
        fit=fit,
    )

"""Admin limits have floors: a tiny value is refused with a reason, and one saved before the floors is raised."""

from __future__ import annotations

import math

import pytest

from bot.storage.limits import LIMIT_FLOORS, GuildLimits, LimitError, Limits, apply_update, effective_limits

CEILINGS = Limits(max_file_mb=8, max_megapixels=16, max_output_side=1024, allowed_presets=("fast", "balanced"))


@pytest.mark.parametrize(("name", "tiny"), [("max_file_mb", 1e-9), ("max_megapixels", 1e-9),
                                            ("max_file_mb", 0.0), ("max_megapixels", -3.0),
                                            ("max_output_side", 10)])
def test_values_below_the_floor_are_refused_with_the_floor(name, tiny):
    with pytest.raises(LimitError, match=rf"at least {LIMIT_FLOORS[name]:g} \(you asked for"):
        apply_update(GuildLimits(), CEILINGS, **{name: tiny})


def test_the_floor_itself_is_accepted():
    updated = apply_update(GuildLimits(), CEILINGS, max_file_mb=0.1, max_megapixels=0.1, max_output_side=64)
    assert updated == GuildLimits(max_file_mb=0.1, max_megapixels=0.1, max_output_side=64)
    eff = effective_limits(CEILINGS, updated)
    assert eff.max_bytes > 100_000 and eff.max_pixels == 100_000


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_not_a_number_is_refused(bad):
    with pytest.raises(LimitError, match="must be a number between"):
        apply_update(GuildLimits(), CEILINGS, max_file_mb=bad)


def test_tiny_values_saved_before_the_floors_are_raised_when_read():
    eff = effective_limits(CEILINGS, GuildLimits(max_file_mb=1e-9, max_megapixels=1e-9, max_output_side=1))
    assert (eff.max_file_mb, eff.max_megapixels, eff.max_output_side) == (0.1, 0.1, 64)


def test_an_over_long_preset_list_gives_a_short_refusal():
    from bot.storage.limits import parse_presets

    with pytest.raises(LimitError) as caught:
        parse_presets(",".join(f"nope{i}" for i in range(2000)))
    message = str(caught.value)
    assert len(message) < 400 and "nope0" in message and "choose from fast, balanced, quality" in message

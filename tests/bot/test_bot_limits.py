import pytest

from bot.config import Settings
from bot.storage.limits import GuildLimits, LimitError, Limits, apply_update, effective_limits, parse_presets

CEILINGS = Limits(max_file_mb=8, max_megapixels=16, max_output_side=1024, allowed_presets=("fast", "balanced"))


def test_no_guild_settings_means_ceilings():
    assert effective_limits(CEILINGS, None) == CEILINGS
    assert effective_limits(CEILINGS, GuildLimits()) == CEILINGS


def test_effective_is_the_minimum_per_field():
    guild = GuildLimits(max_file_mb=4, max_megapixels=32, max_output_side=512, allowed_presets=("fast", "quality"))
    eff = effective_limits(CEILINGS, guild)
    assert eff.max_file_mb == 4
    assert eff.max_megapixels == 16  # the guild's 32 is above the ceiling
    assert eff.max_output_side == 512
    assert eff.allowed_presets == ("fast",)  # quality is not allowed bot-wide
    assert eff.max_bytes == 4 * 1024 * 1024
    assert eff.max_pixels == 16_000_000


def test_preset_intersection_never_empty():
    eff = effective_limits(CEILINGS, GuildLimits(allowed_presets=("quality",)))
    assert eff.allowed_presets == CEILINGS.allowed_presets


def test_apply_update_validates_against_ceilings():
    updated = apply_update(GuildLimits(max_megapixels=2), CEILINGS, max_file_mb=3, max_output_side=300)
    assert updated == GuildLimits(max_file_mb=3, max_megapixels=2, max_output_side=300)
    with pytest.raises(LimitError, match=r"at most 8 .*you asked for 20"):
        apply_update(GuildLimits(), CEILINGS, max_file_mb=20)
    with pytest.raises(LimitError, match=r"at least 0\.1"):
        apply_update(GuildLimits(), CEILINGS, max_megapixels=0)
    with pytest.raises(LimitError, match="at least 64"):
        apply_update(GuildLimits(), CEILINGS, max_output_side=10)
    with pytest.raises(LimitError, match="disabled bot-wide"):
        apply_update(GuildLimits(), CEILINGS, allowed_presets="quality")
    assert apply_update(GuildLimits(), CEILINGS, allowed_presets="balanced, fast").allowed_presets == (
        "fast",
        "balanced",
    )


def test_parse_presets():
    assert parse_presets("quality fast") == ("fast", "quality")
    with pytest.raises(LimitError, match="Unknown preset turbo"):
        parse_presets("fast,turbo")
    with pytest.raises(LimitError, match="at least one"):
        parse_presets(" , ")


def test_from_settings(monkeypatch):
    monkeypatch.setenv("ALLOWED_PRESETS", "quality,fast")
    monkeypatch.setenv("MAX_FILE_MB", "2.5")
    limits = Limits.from_settings(Settings(_env_file=None))
    assert limits.allowed_presets == ("fast", "quality")
    assert limits.max_file_mb == 2.5

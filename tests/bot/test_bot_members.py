"""What a member gets from the bot on their own: the cooldown, their defaults within the limits, the version."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from bot.config import Settings
from bot.requests.arguments import StyleArgs
from bot.requests.cooldown import Cooldowns, CoolingDown
from bot.requests.defaults import baseline
from bot.storage.db import Database
from bot.storage.limits import Limits
from bot.storage.user_defaults import UserDefaults, UserDefaultsStore
from nst_engine import __version__

ROOT = Path(__file__).resolve().parents[2]
LIMITS = Limits(max_file_mb=8, max_megapixels=16, max_output_side=1024, allowed_presets=("fast", "balanced"))


def test_cooldown_counts_down_per_user_and_zero_turns_it_off():
    now = [100.0]
    cooldowns = Cooldowns(5.0, clock=lambda: now[0])
    cooldowns.check(1)  # never started: free
    cooldowns.start(1)
    now[0] += 1.2
    with pytest.raises(CoolingDown) as info:
        cooldowns.check(1)
    assert "in 4 s" in str(info.value) and info.value.reason == "cooldown"
    cooldowns.check(2)  # someone else is not held back
    now[0] += 3.8
    cooldowns.check(1)
    off = Cooldowns(0.0, clock=lambda: now[0])
    off.start(1)
    off.check(1)


def test_defaults_are_bounded_by_the_limits_here_with_a_note():
    mine = UserDefaults(preset="quality", strength=2.0, preserve_colors=True, painting="Starry Night")
    base = baseline(mine, LIMITS)
    assert base.args == StyleArgs(preset=None, strength=2.0, preserve_colors=True)  # None: the server's default
    assert base.fallbacks == ("Your default preset quality is not allowed here, so balanced is used",)
    used = StyleArgs(preset="balanced", strength=2.0, preserve_colors=True)
    assert base.note(used, painting="starry night") == (
        "Your defaults: strength 2, colours kept, painting Starry Night. "
        "Your default preset quality is not allowed here, so balanced is used")
    # An option given in the request is not "your default"; no defaults, no note.
    assert base.note(StyleArgs(preset="fast", strength=1.0)) == base.fallbacks[0]
    assert baseline(UserDefaults(), LIMITS).note(StyleArgs()) == ""


async def test_user_defaults_are_stored_updated_and_reset(tmp_path):
    db = Database(tmp_path / "bot.sqlite3")
    await db.open()
    try:
        store = UserDefaultsStore(db)
        assert await store.get(7) == UserDefaults()
        await store.update(7, preset="fast", preserve_colors=False)
        assert await store.update(7, strength=0.5) == UserDefaults("fast", 0.5, False, None)
        assert await store.get(8) == UserDefaults()
        await store.reset(7)
        assert (await store.get(7)).is_empty()
    finally:
        await db.close()


def test_version_is_the_packages_and_both_commands_print_it():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "nst_engine.__version__"}
    assert pyproject["project"]["license"] == {"text": "MIT"} and "MIT License" in (ROOT / "LICENSE").read_text()
    for module, name in (("bot", "nst-bot"), ("nst_engine.cli", "nst")):
        out = subprocess.run([sys.executable, "-m", module, "--version"], cwd=ROOT, capture_output=True, text=True,
                             timeout=60)
        assert (out.returncode, out.stdout, out.stderr) == (0, f"{name} {__version__}\n", "")


def test_settings_of_the_cooldown_and_the_intent():
    settings = Settings(_env_file=None)
    assert (settings.user_cooldown, settings.message_content_intent, settings.source_url) == (5.0, "auto", "")
    assert Settings(_env_file=None, message_content_intent=" OFF ").message_content_intent == "off"  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="message_content_intent"):
        Settings(_env_file=None, message_content_intent="maybe")  # type: ignore[arg-type]

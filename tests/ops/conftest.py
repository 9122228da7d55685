"""Operations (doctor, logs, metrics, health, shards, start-up, shutdown): the bot's database fixture
(tests/bot/conftest.py) and the fake Discord with a worker pool (tests/e2e/bot_harness.py)."""

from __future__ import annotations

from tests.bot.conftest import db
from tests.e2e.bot_harness import fake, pool

__all__ = ["db", "fake", "pool"]  # fixtures

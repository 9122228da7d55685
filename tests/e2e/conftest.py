"""The bot against the fake Discord: a fresh fake per test and one real worker pool per module (tests/e2e/bot_harness.py)."""

from __future__ import annotations

from tests.e2e.bot_harness import fake, pool

__all__ = ["fake", "pool"]  # fixtures

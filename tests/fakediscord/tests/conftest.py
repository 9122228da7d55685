"""Fixtures for the fake Discord's self-tests: a started fake per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakediscord import FakeDiscord, run_discord_client, serving_fake

__all__ = ["run_discord_client"]


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """A started fake Discord on 127.0.0.1; stopped afterwards. Fails the test if an unknown route was hit."""
    async with serving_fake() as fake:
        yield fake

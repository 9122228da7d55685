"""Fixtures for end-to-end tests against the fake Discord (tests/fakediscord)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from tests.fakediscord import FakeDiscord, run_discord_client

__all__ = ["run_discord_client"]


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """A started fake Discord on 127.0.0.1; stopped afterwards. Fails the test if an unknown route was hit."""
    logging.getLogger("fakediscord").setLevel(logging.INFO)
    fake = FakeDiscord()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
    if not fake.allow_unknown_routes:
        assert fake.unknown_routes == [], f"the client called routes the fake does not know: {fake.unknown_routes}"

"""A result Discord would not take (5xx, or 429 after discord.py's retries) is tried again later, not lost."""

from __future__ import annotations

from types import SimpleNamespace

import discord
import pytest

from bot.requests.redelivery import Redelivery, is_transient


def http_error(status: int) -> discord.HTTPException:
    response = SimpleNamespace(status=status, reason="x")
    cls = discord.DiscordServerError if status >= 500 else discord.HTTPException
    return cls(response, {"message": "nope", "code": 0})  # type: ignore[arg-type]


async def test_transient_failures_are_retried_and_the_user_told_once():
    failures = [http_error(503), http_error(429), http_error(500)]
    told: list[tuple[int, float]] = []

    async def attempt() -> str:
        if failures:
            raise failures.pop(0)
        return "sent"

    async def on_retry(exc: BaseException, delay: float) -> None:
        told.append((getattr(exc, "status", 0), delay))

    result = await Redelivery(delays=(0.01, 0.02, 0.03, 0.04)).run(attempt, job_id="j", on_retry=on_retry)
    assert result == "sent" and not failures
    assert told == [(503, 0.01)]


async def test_gives_up_after_the_last_pause_with_the_last_error():
    calls = 0

    async def attempt() -> None:
        nonlocal calls
        calls += 1
        raise http_error(502)

    with pytest.raises(discord.DiscordServerError):
        await Redelivery(delays=(0.0, 0.0)).run(attempt, job_id="j")
    assert calls == 3


async def test_other_errors_are_not_retried():
    calls = 0

    async def attempt() -> None:
        nonlocal calls
        calls += 1
        raise http_error(403)

    with pytest.raises(discord.HTTPException):
        await Redelivery(delays=(0.0, 0.0)).run(attempt, job_id="j")
    assert calls == 1
    assert not is_transient(http_error(400)) and is_transient(http_error(429)) and is_transient(http_error(503))

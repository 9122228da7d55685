"""Deliveries that outlive a Discord hiccup: a result Discord would not take is kept and tried again later.

discord.py already retries a 429 (up to five tries) and some 5xx answers a few times within seconds; when it gives
up, the picture is still good and must not be lost. ``Redelivery.run`` tries again after growing pauses, telling the
user once that the result will come, and gives up only after the last pause (then the caller says so).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import discord

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_DELAYS = (10.0, 30.0, 90.0, 270.0)  # about 7 minutes in all


def is_transient(exc: BaseException) -> bool:
    """Discord's own trouble (5xx) or a rate limit that outlasted discord.py's retries: worth trying again later."""
    if isinstance(exc, discord.DiscordServerError):
        return True
    return isinstance(exc, discord.HTTPException) and exc.status in (429, 500, 502, 503, 504, 520, 522, 524)


def reason(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    return f"HTTP {status}" if status else type(exc).__name__


class Redelivery:
    """Runs a delivery attempt; on a transient failure, waits and tries again (``delays`` seconds apart)."""

    def __init__(self, delays: Sequence[float] = DEFAULT_DELAYS) -> None:
        self.delays = tuple(delays)

    async def run(
        self, attempt: Callable[[], Awaitable[T]], *, job_id: str,
        on_retry: Callable[[BaseException, float], Awaitable[None]] | None = None,
    ) -> T:
        """``attempt()``'s value; re-raises its last error when it is not transient or the pauses are used up.

        ``on_retry(error, delay)`` is awaited before the first pause only (tell the user once)."""
        for tries, delay in enumerate((*self.delays, None)):
            try:
                return await attempt()
            except discord.HTTPException as exc:
                if delay is None or not is_transient(exc):
                    raise
                log.warning("job %s: Discord refused the delivery (%s); trying again in %.0f s (attempt %d)",
                            job_id, reason(exc), delay, tries + 1)
                if tries == 0 and on_retry is not None:
                    try:
                        await on_retry(exc, delay)
                    except discord.HTTPException as tell_exc:
                        log.warning("job %s: could not say the result will come: %s", job_id, tell_exc)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

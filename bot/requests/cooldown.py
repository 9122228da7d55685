"""The per-user cooldown: one person may start a request at most once every ``USER_COOLDOWN`` seconds.

The fair queue bounds how many jobs a person holds; this bounds how fast they send them, so nobody fills the
channel with back-to-back requests as fast as Discord lets them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from bot.requests.policy import Refusal


class CoolingDown(Refusal):
    """Refused: the person started a request less than the cooldown ago; ``remaining`` seconds are left."""

    def __init__(self, remaining: float) -> None:
        seconds = max(1, math.ceil(remaining))
        super().__init__(
            f"Slow down a little: you can start another style transfer in {seconds} s.", reason="cooldown"
        )
        self.remaining = remaining


class Cooldowns:
    """When each person last started a request; ``seconds`` of 0 turns the cooldown off."""

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self._last: dict[int, float] = {}

    def remaining(self, user_id: int) -> float:
        """Seconds before ``user_id`` may start again (0: now)."""
        last = self._last.get(user_id)
        if last is None or self.seconds <= 0:
            return 0.0
        return max(0.0, last + self.seconds - self.clock())

    def check(self, user_id: int) -> None:
        """Raise CoolingDown while the user's cooldown runs."""
        left = self.remaining(user_id)
        if left > 0:
            raise CoolingDown(left)

    def start(self, user_id: int) -> None:
        """The user started a request now; old entries are dropped so the table stays small."""
        now = self.clock()
        if len(self._last) > 1024:
            self._last = {u: t for u, t in self._last.items() if now - t < self.seconds}
        self._last[user_id] = now

"""The checks a request passes before anything public is posted: the per-user cooldown, room in the fair queue, the
options and the attachments' metadata. A refusal here is between the bot and the person who asked (the cogs answer
it privately where Discord allows); the job service checks the same again when it runs the request.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from bot.requests.arguments import StyleArgs
from bot.requests.cooldown import Cooldowns
from bot.requests.events import JobEvent, JobObserver
from bot.requests.failures import Context, Failure, describe
from bot.requests.fair_queue import FairQueue, QueueRefused
from bot.requests.policy import Refusal, Source, plan_request
from bot.storage.limits import Limits

log = logging.getLogger(__name__)


class RequestGate:
    """One per bot; ``check`` is what every entry point (``!style``, ``/style``, Stylize, the re-run buttons) asks
    before it posts anything public."""

    def __init__(
        self,
        *,
        queue: FairQueue,
        limits_for: Callable[[int | None], Awaitable[Limits]],
        cooldowns: Cooldowns,
        max_styles: int,
        job_timeout: float,
        observers: Sequence[JobObserver] = (),  # told of each refusal, like the job service's (metrics)
    ) -> None:
        self.queue = queue
        self.limits_for = limits_for
        self.cooldowns = cooldowns
        self.max_styles = max_styles
        self.context = Context(job_timeout=job_timeout)
        self.observers = observers

    async def check(
        self, *, user_id: int, guild_id: int | None, origin: str, sources: Sequence[Source], args: StyleArgs
    ) -> Failure | None:
        """None when the request may go on (its cooldown starts now); else the failure table's answer to show."""
        try:
            self.cooldowns.check(user_id)
            self.queue.check_room(user_id)
            limits = await self.limits_for(guild_id)
            plan_request(sources, args, limits, max_styles=self.max_styles)
        except (Refusal, QueueRefused) as exc:
            failure = describe(exc, self.context)
            event = JobEvent(kind="refused", job_id="", user_id=user_id, guild_id=guild_id, preset=args.preset,
                             timings={"total": 0.0}, reason=failure.outcome, origin=origin)
            for observer in list(self.observers):
                try:
                    observer(event)
                except Exception:
                    log.exception("job observer %r failed on a refusal", observer)
            return failure
        self.cooldowns.start(user_id)
        return None

"""What the job service tells the user of one request; ``bot.ui.reporters.Reporter`` turns each report into Discord
messages, text and buttons, so the request path knows nothing of how they look."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from nst_engine.types import ProgressEvent, StyleResult


class RequestReporter(Protocol):
    """One request's user, as the job service reaches them."""

    @property
    def user_id(self) -> int: ...

    @property
    def guild_id(self) -> int | None: ...  # None: a DM

    @property
    def channel_id(self) -> int: ...

    @property
    def origin(self) -> str: ...  # how the request came: "prefix", "slash" or "button" (metrics and logs)

    @property
    def status_ref(self) -> tuple[int, int] | None: ...  # (channel id, message id) of the status, once posted

    def accepted(self, job_id: str, *, title: str, preserve_colors: bool) -> None:
        """The request is accepted as ``job_id``: its status shows ``title`` and a Cancel button from now on."""

    async def downloading(self, count: int) -> None: ...

    async def queued(self, position: int) -> None: ...  # 1: next to start

    async def starting(self) -> None: ...

    async def progress(self, event: ProgressEvent, *, preview: bool) -> None: ...  # preview: show the picture

    async def retrying(self, reason: str, delay: float) -> None:
        """Discord refused the result for now (``reason``); it is tried again in ``delay`` seconds."""

    async def deliver(self, result: StyleResult, *, on_sent: Callable[[], Awaitable[None]]) -> int:
        """Post the result (with the re-run buttons); awaits ``on_sent`` as soon as Discord has it; returns the bytes
        uploaded."""
        ...

    async def cancelled(self, by: str) -> None: ...

    async def failed(self, message: str, *, title: str) -> None: ...

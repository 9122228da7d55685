"""Where a job's status and result go: the interaction's response, or replies to the user's message.

An interaction token lives 15 minutes; after that (tracked by time, and by Discord's 401/404 answers)
the result is posted as a normal channel message that mentions the user.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import discord

log = logging.getLogger(__name__)

TOKEN_LIFETIME = 15 * 60.0
TOKEN_MARGIN = 45.0  # stop using the token a little early: a long upload must finish before it expires

FileFactory = Callable[[], list[discord.File]]


def _token_dead(exc: discord.HTTPException) -> bool:
    # 401 code 50027 = invalid webhook token (expired); 404 = unknown interaction/webhook/message.
    return exc.status in (401, 404)


class Reporter:
    """The surface a job talks to. ``status`` edits one message; ``send`` posts the result."""

    user: discord.abc.User
    channel: discord.abc.Messageable
    guild: discord.Guild | None

    @property
    def upload_limit(self) -> int:
        """Bytes one message may upload here."""
        if self.guild is not None:
            return self.guild.filesize_limit
        return discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES

    async def status(
        self, content: str | None = None, *, embed: discord.Embed | None = None, view: discord.ui.View | None = None,
        files: Sequence[discord.File] = (),
    ) -> None:
        raise NotImplementedError

    async def send(
        self, *, content: str, embeds: list[discord.Embed], files: FileFactory, view: discord.ui.View | None
    ) -> discord.Message | None:
        raise NotImplementedError

    async def _channel_send(
        self, *, content: str, embeds: list[discord.Embed], files: list[discord.File],
        view: discord.ui.View | None, reference: discord.MessageReference | None = None,
    ) -> discord.Message:
        kwargs: dict = {"content": content, "embeds": embeds, "files": files}
        if view is not None:
            kwargs["view"] = view
        if reference is not None:
            kwargs["reference"] = reference
        return await self.channel.send(**kwargs)


class InteractionReporter(Reporter):
    """Status in the (deferred) interaction response; result as a follow-up, or a channel message later."""

    def __init__(self, interaction: discord.Interaction, *, lifetime: float = TOKEN_LIFETIME) -> None:
        self.interaction = interaction
        self.user = interaction.user
        self.guild = interaction.guild
        channel = interaction.channel
        if channel is None:
            raise RuntimeError("interaction without a channel")
        self.channel = channel  # type: ignore[assignment]
        self.lifetime = lifetime
        self.expired = False

    @property
    def upload_limit(self) -> int:
        # Discord tells each interaction the limit for its channel (boosts included).
        return getattr(self.interaction, "filesize_limit", None) or super().upload_limit

    def token_usable(self) -> bool:
        if self.expired:
            return False
        age = (discord.utils.utcnow() - self.interaction.created_at).total_seconds()
        if age > self.lifetime - TOKEN_MARGIN:
            self.expired = True
        return not self.expired

    async def status(self, content=None, *, embed=None, view=None, files=()) -> None:
        if not self.token_usable():
            return  # progress after expiry is dropped; the result still arrives in the channel
        kwargs: dict = {"content": content, "embed": embed, "view": view}
        if files:
            kwargs["attachments"] = list(files)
        try:
            await self.interaction.edit_original_response(**kwargs)
        except discord.HTTPException as exc:
            if not _token_dead(exc):
                raise
            log.info("interaction %s token no longer usable (%s)", self.interaction.id, exc.status)
            self.expired = True

    async def send(self, *, content, embeds, files, view) -> discord.Message | None:
        if self.token_usable():
            try:
                kwargs: dict = {"content": content, "embeds": embeds, "files": files(), "wait": True}
                if view is not None:
                    kwargs["view"] = view
                return await self.interaction.followup.send(**kwargs)
            except discord.HTTPException as exc:
                if not _token_dead(exc):
                    raise
                log.info("interaction %s expired; posting to the channel instead", self.interaction.id)
                self.expired = True
        return await self._channel_send(content=content, embeds=embeds, files=files(), view=view)


class MessageReporter(Reporter):
    """Status as a reply to the user's message (edited in place); result as another reply."""

    def __init__(self, message: discord.Message) -> None:
        self.message = message
        self.user = message.author
        self.guild = message.guild
        self.channel = message.channel
        self._status: discord.Message | None = None

    async def status(self, content=None, *, embed=None, view=None, files=()) -> None:
        if self._status is None:
            kwargs: dict = {"content": content, "embed": embed, "mention_author": False, "files": list(files)}
            if view is not None:
                kwargs["view"] = view
            self._status = await self.channel.send(
                reference=self.message.to_reference(fail_if_not_exists=False), **kwargs
            )
            return
        kwargs = {"content": content, "embed": embed, "view": view}
        if files:
            kwargs["attachments"] = list(files)
        try:
            await self._status.edit(**kwargs)
        except discord.NotFound:
            self._status = None  # someone deleted the status message; post a new one next time

    async def send(self, *, content, embeds, files, view) -> discord.Message | None:
        return await self._channel_send(
            content=content, embeds=embeds, files=files(), view=view,
            reference=self.message.to_reference(fail_if_not_exists=False),
        )

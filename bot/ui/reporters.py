"""Where a request's status and result go (the interaction's response, or replies to the user's message): the
reporters turn what the job service reports into Discord messages, text and buttons.

An interaction token lives 15 minutes; after that (tracked by time, and by Discord's 401/404 answers)
the result is posted as a normal channel message that mentions the user. Where the bot may not post in the channel,
the message goes to the user's DMs instead, saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import discord

from bot.requests.failures import Undeliverable
from bot.ui import render
from bot.ui.buttons import cancel_view, result_view
from bot.ui.replies import drops_embeds, missing_permission, pings, where, with_embed_text
from bot.ui.results import FileFactory, deliver_result, preview_file
from nst_engine.types import ProgressEvent, StyleResult

log = logging.getLogger(__name__)

TOKEN_LIFETIME = 15 * 60.0
TOKEN_MARGIN = 45.0  # stop using the token a little early: a long upload must finish before it expires
NOTICE_RETRY_DELAYS = (2.0, 5.0, 10.0)  # seconds before each new try of a failure notice Discord rate-limited
UNKNOWN_MESSAGE = 10008  # Discord's code for a message that no longer exists (e.g. deleted by a moderator)


def _token_dead(exc: discord.HTTPException) -> bool:
    # 401 code 50027 = invalid webhook token (expired); 404 = unknown interaction/webhook. A 404 for an
    # unknown *message* only means the status message was deleted: the token still works.
    return exc.status == 401 or (exc.status == 404 and exc.code != UNKNOWN_MESSAGE)


async def best_effort(update: Awaitable[None]) -> None:
    """Status edits are best effort: a failed edit must not fail the job."""
    try:
        await update
    except discord.HTTPException as exc:
        log.warning("status update failed: %s", exc)


class Reporter:
    """One request's voice in Discord (``bot.requests.reporter.RequestReporter``): ``status`` edits one message,
    ``send`` posts the result; the job service's reports are written in terms of these two."""

    user: discord.User | discord.Member
    channel: discord.abc.Messageable
    guild: discord.Guild | None
    origin: str = "other"  # how the request came: "prefix", "slash" or "button" (metrics and logs)
    # Set once something meant for the channel went to the user's DMs: "I'm missing ... in #channel".
    dm_reason: str | None = None
    # Set when the service accepts the request: its id (the buttons name it), the status's first line.
    job_id: str = ""
    title: str = ""
    _cancel: discord.ui.View | None = None  # on every status message until the job ends
    _preserved_colors: bool = False
    # Which of the person's defaults the request used (``Baseline.note``): shown in the status and the result.
    note: str = ""
    started: bool = False  # the job reached the backend: an ending from here on is a failure, not a refusal

    @property
    def user_id(self) -> int:
        return self.user.id

    @property
    def guild_id(self) -> int | None:
        return self.guild.id if self.guild is not None else None

    @property
    def channel_id(self) -> int:
        channel_id = getattr(self.channel, "id", None)
        if not isinstance(channel_id, int):
            raise TypeError("the reporter's channel has no id")
        return channel_id

    @property
    def status_ref(self) -> tuple[int, int] | None:
        """(channel id, message id) of the status message, once there is one (kept in the journal)."""
        return None

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

    # -- the job service's reports ---------------------------------------------------------------------

    def accepted(self, job_id: str, *, title: str, preserve_colors: bool) -> None:
        self.job_id, self.title, self._preserved_colors = job_id, title, preserve_colors
        if self.note:
            self.title = f"{title}\n*{self.note}*"
        self._cancel = cancel_view(job_id)

    async def downloading(self, count: int) -> None:
        await best_effort(self.status(f"Downloading {count} images…", view=self._cancel))

    async def queued(self, position: int) -> None:
        await best_effort(self.status(render.queued_text(position, title=self.title), view=self._cancel))

    async def starting(self) -> None:
        self.started = True
        await best_effort(self.status(f"{self.title}\nStarting…", view=self._cancel))

    async def progress(self, event: ProgressEvent, *, preview: bool) -> None:
        picture = preview_file(event) if preview else None
        await best_effort(self.status(render.progress_text(event, title=self.title), view=self._cancel,
                                      files=[picture] if picture is not None else []))

    async def retrying(self, reason: str, delay: float) -> None:
        await best_effort(self.status(
            f"{self.title}\nDone, but Discord would not take the picture just now ({reason}). I'm keeping "
            f"it and will try again in {delay:.0f} s: it will come here.", embed=None, view=None))

    async def deliver(self, result: StyleResult, *, on_sent: Callable[[], Awaitable[None]]) -> int:
        view = result_view(self.job_id, preserved_colors=self._preserved_colors)
        sent, nbytes = await deliver_result(self, result, job_id=self.job_id, view=view, note=self.note)
        await on_sent()  # at once: a stop from here on must not report the job as lost
        await best_effort(self.status(self._done_text(sent), embed=None, view=None))
        return nbytes

    async def cancelled(self, by: str) -> None:
        await best_effort(self.status(f"Cancelled by {by}.", embed=None, view=None))

    async def failed(self, message: str, *, title: str) -> None:
        """The failure in the status (and, once the interaction token has expired, in a message of its own).

        A 429 that outlasts discord.py's own retries (a rate-limit storm) means nothing was posted: the notice is
        tried again after NOTICE_RETRY_DELAYS, so the user is not left without an answer."""
        embed = render.error_embed(message, title=title)
        for delay in (*NOTICE_RETRY_DELAYS, None):
            try:
                await self.status(None, embed=embed, view=None)
                if getattr(self, "expired", False):
                    await self.send(content=self.user.mention, embeds=[embed], files=list, view=None)
                return
            except discord.HTTPException as exc:
                if exc.status != 429 or delay is None:
                    log.exception("could not tell user %s: %s", self.user.id, message)
                    return
                log.warning("telling user %s was rate limited; trying again in %g s", self.user.id, delay)
                await asyncio.sleep(delay)

    def _done_text(self, sent: discord.Message | None) -> str:
        moved = sent is not None and self.dm_reason and isinstance(sent.channel, discord.DMChannel)
        if moved and self.guild is not None and not isinstance(self.channel, discord.DMChannel):
            # The status stayed in the channel but the upload was refused there.
            return f"Done, but {self.dm_reason}, so the result is in your direct messages."
        return "Done: the result is below."

    # -- the channel, or the user's DMs ----------------------------------------------------------------

    async def _channel_send(
        self, *, content: str, embeds: list[discord.Embed], files: FileFactory,
        view: discord.ui.View | None, reference: discord.MessageReference | None = None,
    ) -> discord.Message:
        """Post in the channel; where Discord forbids it (missing permissions), post in the user's DMs."""
        if embeds and drops_embeds(self.channel):
            content, embeds = with_embed_text(content, embeds), []
        kwargs: dict[str, Any] = {"content": content, "embeds": embeds, "allowed_mentions": pings(self.user)}
        if view is not None:
            kwargs["view"] = view
        try:
            if reference is not None:
                return await self.channel.send(files=files(), reference=reference, **kwargs)
            return await self.channel.send(files=files(), **kwargs)
        except discord.Forbidden:
            if self.guild is None:
                raise  # already a DM: nowhere else to go
            kwargs.pop("content")
            reason = self._forbidden_reason(files=bool(files()))
            return await self._to_dm(reason, f"{reason}, so I'm sending this here.", content, files=files(), **kwargs)

    def _forbidden_reason(self, *, files: bool) -> str:
        return f"I'm missing {missing_permission(self.channel, files=files)} in {where(self.channel)}"

    async def _to_dm(
        self, reason: str, first: str, content: str | None, *, files: list[discord.File], **kwargs: Any
    ) -> discord.Message:
        """The user's DMs, where the bot may not post in the channel: ``first`` (why it is here), then the message.

        Raises Undeliverable (logged with both reasons) when the DMs are closed too."""
        log.info("forbidden in channel %s; answering user %s by DM", getattr(self.channel, "id", "?"), self.user.id)
        try:
            message = await self.user.send(content=f"{first}\n{content}" if content else first, files=files, **kwargs)
        except discord.Forbidden as exc:
            log.warning("cannot answer user %s: %s, and their DMs refuse the bot (%s %s)", self.user.id, reason,
                        exc.status, exc.code)
            raise Undeliverable(
                f"{reason}, and your direct messages are closed to me (Discord code {exc.code}), so I could not "
                "deliver this. Ask a moderator to give me the permission, or open your DMs, then send it again."
            ) from exc
        self.dm_reason = reason
        return message


class InteractionReporter(Reporter):
    """Status in the (deferred) interaction response; result as a follow-up, or a channel message later."""

    def __init__(self, interaction: discord.Interaction, *, lifetime: float = TOKEN_LIFETIME) -> None:
        self.interaction = interaction
        self.user = interaction.user
        self.guild = interaction.guild
        channel = interaction.channel
        if not isinstance(channel, discord.abc.Messageable):  # None, or a forum/category: nowhere to answer
            raise RuntimeError("interaction without a text channel")
        self.channel = channel
        self.lifetime = lifetime
        self.expired = False
        self._status: discord.WebhookMessage | None = None  # a follow-up replacing a deleted original
        self._original: discord.InteractionMessage | None = None

    @property
    def status_ref(self) -> tuple[int, int] | None:
        message = self._status or self._original
        return (message.channel.id, message.id) if message is not None else None

    @property
    def origin(self) -> str:  # type: ignore[override]
        return "button" if self.interaction.type == discord.InteractionType.component else "slash"

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
            if self._status is None:
                self._original = await self.interaction.edit_original_response(**kwargs)
            else:
                await self._status.edit(**kwargs)
        except discord.HTTPException as exc:
            if exc.status == 404 and exc.code == UNKNOWN_MESSAGE:
                # The status message was deleted (a moderator?): post this update anew, so it is not lost.
                await self._repost_status(content=content, embed=embed, view=view, files=files)
                return
            if not _token_dead(exc):
                raise
            log.info("interaction %s token no longer usable (%s)", self.interaction.id, exc.status)
            self.expired = True

    async def failed(self, message: str, *, title: str) -> None:
        """A request refused before it ran (its checks, its pictures, the queue) is told to the asker alone: the
        reason goes in an ephemeral follow-up and the public status is withdrawn. A job that failed while running is
        reported in its status, like its progress."""
        if self.started or not self.token_usable():
            await super().failed(message, title=title)
            return
        try:
            if self._original is None and self._status is None:
                # The first follow-up after a public defer fills the "thinking" answer, publicly whatever its flags
                # say: give that answer a body first, so the refusal is a message of its own.
                await self.interaction.edit_original_response(content="…", embed=None, view=None)
            await self.interaction.followup.send(embed=render.error_embed(message, title=title), ephemeral=True)
            await self.withdraw_status()
        except discord.HTTPException as exc:
            log.info("could not refuse privately (%s); saying it in the status instead", exc)
            await super().failed(message, title=title)

    async def withdraw_status(self) -> None:
        """Delete the public status (the interaction's answer, or the message that replaced it); gone is fine."""
        with contextlib.suppress(discord.NotFound):
            await self.interaction.delete_original_response()
        if self._status is not None:
            with contextlib.suppress(discord.NotFound):
                await self._status.delete()

    async def _repost_status(
        self, *, content: str | None, embed: discord.Embed | None, view: discord.ui.View | None,
        files: Sequence[discord.File],
    ) -> None:
        kwargs: dict = {"content": content, "wait": True, "files": _rewound(files)}
        if embed is not None:
            kwargs["embed"] = embed
        if view is not None:
            kwargs["view"] = view
        self._status = await self.interaction.followup.send(**kwargs)

    async def send(self, *, content, embeds, files, view) -> discord.Message | None:
        if self.token_usable():
            try:
                kwargs: dict = {"content": content, "embeds": embeds, "files": files(), "wait": True,
                                "allowed_mentions": pings(self.user)}
                if view is not None:
                    kwargs["view"] = view
                return await self.interaction.followup.send(**kwargs)
            except discord.HTTPException as exc:
                if not _token_dead(exc):
                    raise
                log.info("interaction %s expired; posting to the channel instead", self.interaction.id)
                self.expired = True
        return await self._channel_send(content=content, embeds=embeds, files=files, view=view)


class MessageReporter(Reporter):
    """Status as a reply to the user's message (edited in place); result as another reply.

    Where the bot may not post in the channel, the conversation moves to the user's DMs.
    """

    origin = "prefix"

    def __init__(self, message: discord.Message) -> None:
        self.message = message
        self.user = message.author
        self.guild = message.guild
        self.channel = message.channel
        self._reference: discord.MessageReference | None = message.to_reference(fail_if_not_exists=False)
        self._status: discord.Message | None = None
        self._note: str | None = None  # why we answer in DMs, kept at the top of the status there

    @property
    def status_ref(self) -> tuple[int, int] | None:
        return (self._status.channel.id, self._status.id) if self._status is not None else None

    async def status(self, content=None, *, embed=None, view=None, files=()) -> None:
        if embed is not None and drops_embeds(self.channel):
            content, embed = with_embed_text(content, [embed]), None
        if self._note:
            content = f"{self._note}\n{content}" if content else self._note
        if self._status is not None:
            kwargs: dict = {"content": content, "embed": embed, "view": view}
            if files:
                kwargs["attachments"] = list(files)
            try:
                await self._status.edit(**kwargs)
                return
            except discord.NotFound:
                # Deleted (by a moderator?): post this update anew, so a failure or a cancel is not lost.
                self._status = None
                files = _rewound(files)
        self._status = await self._post_status(content=content, embed=embed, view=view, files=list(files))

    async def _post_status(self, *, content, embed, view, files: list[discord.File]) -> discord.Message:
        kwargs: dict = {"content": content, "embed": embed, "files": files, "mention_author": False}
        if view is not None:
            kwargs["view"] = view
        try:
            if self._reference is not None:
                kwargs["reference"] = self._reference
            return await self.channel.send(**kwargs)
        except discord.Forbidden:
            if self.guild is None:
                raise
        # The bot may not post here at all: carry on in the user's DMs, saying why once.
        reason = self._forbidden_reason(files=bool(files))
        self._note = f"{reason}, so I'm answering here."
        for key in ("reference", "mention_author", "content", "files"):
            kwargs.pop(key, None)
        message = await self._to_dm(reason, self._note, content, files=_rewound(files), **kwargs)
        self.channel = message.channel
        self._reference = None
        return message

    async def send(self, *, content, embeds, files, view) -> discord.Message | None:
        return await self._channel_send(
            content=content, embeds=embeds, files=files, view=view, reference=self._reference,
        )


def _rewound(files: Sequence[discord.File]) -> list[discord.File]:
    # A File already given to a failed request has been read; rewind it before sending it again.
    for f in files:
        f.reset()
    return list(files)

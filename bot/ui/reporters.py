"""Where a job's status and result go (the interaction's response, or replies to the user's message), and the
delivery of the result within the upload limit.

An interaction token lives 15 minutes; after that (tracked by time, and by Discord's 401/404 answers)
the result is posted as a normal channel message that mentions the user.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import discord

from bot.ui import render
from nst_engine.errors import EncodeError
from nst_engine.images import encode_image, human_bytes
from nst_engine.types import ProgressEvent, StyleResult

log = logging.getLogger(__name__)

TOKEN_LIFETIME = 15 * 60.0
TOKEN_MARGIN = 45.0  # stop using the token a little early: a long upload must finish before it expires

FileFactory = Callable[[], list[discord.File]]


UNKNOWN_MESSAGE = 10008  # Discord's code for a message that no longer exists (e.g. deleted by a moderator)


def _token_dead(exc: discord.HTTPException) -> bool:
    # 401 code 50027 = invalid webhook token (expired); 404 = unknown interaction/webhook. A 404 for an
    # unknown *message* only means the status message was deleted: the token still works.
    return exc.status == 401 or (exc.status == 404 and exc.code != UNKNOWN_MESSAGE)


def missing_permission(channel: discord.abc.Messageable, *, files: bool) -> str:
    """The bot's permission that most likely caused a 403 when posting in ``channel`` (from the cache)."""
    guild = getattr(channel, "guild", None)
    if guild is None or not hasattr(channel, "permissions_for"):
        return "the permissions it needs"
    perms = channel.permissions_for(guild.me)
    for allowed, name in (
        (perms.view_channel, "View Channel"),
        (perms.send_messages, "Send Messages"),
        (not files or perms.attach_files, "Attach Files"),
        (perms.read_message_history, "Read Message History"),  # needed to reply to a message
    ):
        if not allowed:
            return f"the **{name}** permission"
    return "the permissions it needs"


def drops_embeds(channel: discord.abc.Messageable) -> bool:
    """Whether a message the bot may post in ``channel`` loses its embeds: Discord drops them silently without
    Embed Links. (Without Send Messages the message goes to the user's DMs instead, where embeds work.)"""
    guild = getattr(channel, "guild", None)
    if guild is None or not hasattr(channel, "permissions_for"):
        return False
    perms = channel.permissions_for(guild.me)
    return perms.send_messages and not perms.embed_links


def embed_as_text(embed: discord.Embed) -> str:
    """What an embed says, as message text (for channels where it would be dropped)."""
    parts = [f"**{embed.title}**" if embed.title else "", embed.description or ""]
    parts += [f"**{f.name}**: {f.value}" for f in embed.fields]
    parts.append(embed.footer.text or "")
    return "\n".join(p for p in parts if p)


def with_embed_text(content: str | None, embeds: Sequence[discord.Embed]) -> str:
    """``content`` followed by the embeds' text, within Discord's 2000 characters."""
    text = "\n".join([content or "", *(embed_as_text(e) for e in embeds)]).strip()
    return text if len(text) <= 2000 else text[:1999] + "…"


async def answer(message: discord.Message, embed: discord.Embed) -> None:
    """Answer a user's message with one embed (a quick refusal or the help), as a reply that pings nobody.

    Where Discord would drop the embed (no Embed Links) the embed's text goes as the message instead, and a message
    deleted meanwhile turns the reply into a plain message rather than an error."""
    if drops_embeds(message.channel):
        kwargs: dict[str, Any] = {"content": with_embed_text(None, [embed])}
    else:
        kwargs = {"embed": embed}
    if message.guild is None or message.channel.permissions_for(message.guild.me).read_message_history:
        kwargs["reference"] = message.to_reference(fail_if_not_exists=False)  # replying needs Read Message History
    await message.channel.send(**kwargs, allowed_mentions=discord.AllowedMentions.none())


def _where(channel: discord.abc.Messageable) -> str:
    mention = getattr(channel, "mention", None)
    return mention or "that channel"


class Undeliverable(Exception):
    """Neither the channel nor the user's DMs take the bot's message; the message says why, for the log and the
    status message (which the bot may still be able to edit)."""


def pings(user: discord.abc.Snowflake) -> discord.AllowedMentions:
    """Ping this user and nobody else (the bot's default pings nobody: user text must never ping anyone)."""
    return discord.AllowedMentions(everyone=False, roles=False, users=[user], replied_user=False)


class Reporter:
    """The surface a job talks to. ``status`` edits one message; ``send`` posts the result."""

    user: discord.User | discord.Member
    channel: discord.abc.Messageable
    guild: discord.Guild | None
    origin: str = "other"  # how the request came: "prefix", "slash" or "button" (metrics and logs)

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
            reason = self._forbidden_reason(files=bool(files()))
            log.info("forbidden in channel %s; sending to user %s by DM", getattr(self.channel, "id", "?"),
                     self.user.id)
            kwargs["content"] = f"{reason}, so I'm sending this here.\n{content}"
            message = await self._send_dm(reason, files=files(), **kwargs)
            self.dm_reason = reason
            return message

    async def _send_dm(self, reason: str, **kwargs: Any) -> discord.Message:
        """The user's DMs, the last place to answer; raises Undeliverable (logged with both reasons) if closed."""
        try:
            return await self.user.send(**kwargs)
        except discord.Forbidden as exc:
            log.warning("cannot answer user %s: %s, and their DMs refuse the bot (%s %s)", self.user.id, reason,
                        exc.status, exc.code)
            raise Undeliverable(
                f"{reason}, and your direct messages are closed to me (Discord code {exc.code}), so I could not "
                "deliver this. Ask a moderator to give me the permission, or open your DMs, then send it again."
            ) from exc

    # Set once something meant for the channel went to the user's DMs: "I'm missing ... in #channel".
    dm_reason: str | None = None

    def _forbidden_reason(self, *, files: bool) -> str:
        return f"I'm missing {missing_permission(self.channel, files=files)} in {_where(self.channel)}"


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
        log.info("forbidden in channel %s; moving job status for user %s to DMs", getattr(self.channel, "id", "?"),
                 self.user.id)
        kwargs.pop("reference", None)
        kwargs.pop("mention_author", None)
        kwargs["content"] = f"{self._note}\n{content}" if content else self._note
        kwargs["files"] = _rewound(files)
        message = await self._send_dm(reason, **kwargs)
        self.channel = message.channel
        self._reference = None
        self.dm_reason = reason
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


# -- the result ------------------------------------------------------------------------------------------------


class DeliveryFailed(Exception):
    """The result could not be posted within the upload limit; the message is for the user."""


def as_file(data: bytes, name: str) -> discord.File:
    return discord.File(io.BytesIO(data), filename=name)


def preview_file(event: ProgressEvent) -> discord.File | None:
    """The progress event's preview picture as a JPEG attachment (None when the event has none)."""
    if event.preview is None:
        return None
    buf = io.BytesIO()
    event.preview.save(buf, format="JPEG", quality=70)
    return as_file(buf.getvalue(), "preview.jpg")


async def deliver_result(
    reporter: Reporter, result: StyleResult, *, job_id: str, view: discord.ui.View | None, attempts: int = 4,
    on_sent: Callable[[], Awaitable[None]] | None = None,
) -> int:
    """Post the picture (and the loss chart when it fits) within the upload limit, then mark the status done;
    returns the bytes uploaded (picture and chart). ``on_sent`` is awaited as soon as Discord has the picture.

    Discord's real limit can be lower than the one it announces: on 413 the chart is dropped and the picture is
    re-encoded at half the size, up to ``attempts`` times. Raises DeliveryFailed when nothing fits.
    """
    limit = reporter.upload_limit
    chart = await asyncio.to_thread(result.loss_chart_png)
    margin = min(64 * 1024, limit // 10)  # room for the JSON part of the upload
    # The chart is a bonus: leave it out when it would take a big share of a small upload limit.
    with_chart = len(chart) * 4 < limit
    budget = limit - margin - (len(chart) if with_chart else 0)
    note = ""
    for _attempt in range(attempts):
        try:
            encoded = await asyncio.to_thread(encode_image, result.image, max_bytes=max(1, budget))
        except EncodeError as exc:
            raise DeliveryFailed(
                f"The result could not be made small enough for this server's upload limit "
                f"({human_bytes(limit)}): {exc}."
            ) from exc
        name = f"styled.{encoded.extension}"
        embed = render.result_embed(result.summary, user=reporter.user, filename=name, chart=with_chart, note=note)
        data, chart_now = encoded.data, with_chart

        def files(data: bytes = data, name: str = name, chart_now: bool = chart_now) -> list[discord.File]:
            out = [as_file(data, name)]
            if chart_now:
                out.append(as_file(chart, "losses.png"))
            return out

        try:
            sent = await reporter.send(
                content=f"{reporter.user.mention} here is your picture.", embeds=[embed], files=files, view=view,
            )
        except discord.HTTPException as exc:
            if exc.status != 413:
                raise
            log.info("job %s upload refused (413) at %d bytes; re-encoding smaller", job_id, len(data))
            with_chart = False
            budget = len(data) // 2
            note = "re-encoded smaller to fit this server's upload limit"
            continue
        if on_sent is not None:  # at once: a stop from here on must not report the job as lost
            await on_sent()
        await best_effort(reporter.status(_done_text(reporter, sent), embed=None, view=None))
        return len(data) + (len(chart) if chart_now else 0)
    raise DeliveryFailed(
        "Discord refused the result even after shrinking it: this server's upload limit is too small. "
        "Try the `fast` preset or a smaller output size."
    )


def _done_text(reporter: Reporter, sent: discord.Message | None) -> str:
    moved = sent is not None and reporter.dm_reason and isinstance(sent.channel, discord.DMChannel)
    if moved and reporter.guild is not None and not isinstance(reporter.channel, discord.DMChannel):
        # The status stayed in the channel but the upload was refused there.
        return f"Done, but {reporter.dm_reason}, so the result is in your direct messages."
    return "Done: the result is below."


async def best_effort(update: Awaitable[None]) -> None:
    """Status edits are best effort: a failed edit must not fail the job."""
    try:
        await update
    except discord.HTTPException as exc:
        log.warning("status update failed: %s", exc)


async def tell_failure(reporter: Reporter, message: str, *, title: str = "Can't do that") -> None:
    """Put a failure in the status (and, once the interaction token has expired, in a message of its own)."""
    embed = render.error_embed(message, title=title)
    try:
        await reporter.status(None, embed=embed, view=None)
        if getattr(reporter, "expired", False):
            await reporter.send(content=reporter.user.mention, embeds=[embed], files=list, view=None)
    except discord.HTTPException:
        log.exception("could not tell user %s: %s", reporter.user.id, message)

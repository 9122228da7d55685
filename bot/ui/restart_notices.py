"""After a restart: the jobs the journal still holds open get one true answer each.

A kill can land between any two steps (the result posted but not yet journaled 'done'; a user told but not yet
journaled 'interrupted'), so before telling anyone their job was lost this looks at what Discord shows: the bot's own
messages in the job's channel and the user's DMs since the job began. A message with the job's re-run buttons is its
result (the journal is corrected, nobody is told "lost"); a message showing the job's mark (``job_mark``) is a notice
the user already has. Only when neither is there is the user told, once: the old status message says the job was
lost (and loses its Cancel button), and a reply to it pings the user.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import discord

from bot.requests.jobs import job_mark
from bot.storage.db import Database, JobRecord
from bot.ui.replies import pings

log = logging.getLogger(__name__)

RESTART_NOTICE = (
    "{mention} the bot restarted while your style transfer job was running, so it was lost. "
    "Please send it again. {mark}"
)
RESTART_STATUS = "{mention} interrupted: the bot restarted before this job finished, so it was lost. Please send it " \
                 "again. {mark}"
# Posting the result had begun, but the bot cannot read this channel's history to see whether it arrived.
UNSURE_NOTICE = (
    "{mention} the bot restarted while it was posting your picture. If it is not above, please send the job again. "
    "{mark}"
)
DONE_STATUS = "Done: the result is below."
HISTORY_LIMIT = 500  # bot and user messages read per channel since the oldest open job (a busy channel's restart)
CLOCK_SLACK = 5.0  # seconds: the journal's clock and Discord's may differ a little

Seen = Literal["result", "told", "nothing", "unreadable"]


@dataclass
class History:
    """The bot's own messages since the oldest open job, per channel, read once for all the jobs."""

    bot: discord.Client
    since: dt.datetime
    channels: dict[int, list[discord.Message] | None] = field(default_factory=dict)  # None: not readable

    async def messages(self, channel: discord.abc.Messageable, channel_id: int) -> list[discord.Message] | None:
        if channel_id not in self.channels:
            self.channels[channel_id] = await self._read(channel)
        return self.channels[channel_id]

    def find(self, match: Callable[[discord.Message], bool]) -> discord.Message | None:
        """The first message read so far that ``match`` accepts."""
        return next((m for messages in self.channels.values() for m in messages or () if match(m)), None)

    async def _read(self, channel: discord.abc.Messageable) -> list[discord.Message] | None:
        me = getattr(getattr(channel, "guild", None), "me", None)
        if me is not None and hasattr(channel, "permissions_for"):
            if not channel.permissions_for(me).read_message_history:
                return None  # Discord would answer an empty list: that proves nothing
        try:
            own = self.bot.user
            return [m async for m in channel.history(after=self.since, limit=HISTORY_LIMIT, oldest_first=True)
                    if own is not None and m.author.id == own.id]
        except discord.HTTPException as exc:
            log.info("could not read the history of channel %s after the restart: %s", getattr(channel, "id", "?"),
                     exc)
            return None


def _custom_ids(message: discord.Message) -> list[str]:
    return [child.custom_id or "" for row in message.components if isinstance(row, discord.ActionRow)
            for child in row.children if isinstance(child, discord.Button)]


def shows_result(message: discord.Message, job_id: str) -> bool:
    """The job's result: the message carries its re-run buttons (custom ids end with the job id)."""
    return any(c.startswith("nst:rerun:") and c.endswith(f":{job_id}") for c in _custom_ids(message))


def shows_cancel(message: discord.Message, job_id: str) -> bool:
    """The job's status while it was in flight: it carries the job's Cancel button."""
    return f"nst:cancel:{job_id}" in _custom_ids(message)


def shows_notice(message: discord.Message, job_id: str) -> bool:
    """A notice that the job was stopped or lost (the drain's, or an earlier restart's)."""
    mark = job_mark(job_id)
    texts = [message.content, *(e.description or "" for e in message.embeds)]
    return any(mark in text for text in texts)


class RestartNotices:
    """Gives each job the journal holds open one true answer, checking Discord first."""

    def __init__(self, bot: discord.Client, db: Database) -> None:
        self.bot = bot
        self.db = db

    async def report(self, records: list[JobRecord]) -> None:
        await self.bot.wait_until_ready()
        if not records:
            return
        oldest = min(rec.created_at for rec in records) - CLOCK_SLACK
        history = History(self.bot, dt.datetime.fromtimestamp(oldest, tz=dt.UTC))
        told = found = 0
        for rec in records:
            try:
                outcome = await self.settle(rec, history)
            except Exception:  # one job's trouble must not leave the others untold; it stays open for next time
                log.exception("job %s: could not settle it after the restart", rec.job_id)
                continue
            told += outcome == "told-now"
            found += outcome == "result"
        log.info("after the restart: %d open job(s) in the journal; %d had their result on Discord, %d told they "
                 "were lost, %d had been told already", len(records), found, told, len(records) - found - told)

    async def settle(self, rec: JobRecord, history: History) -> str:
        """One open job: 'result' (Discord shows it), 'told-before' or 'told-now'."""
        status = await self._status(rec)
        seen = await self._seen(rec, status, history)
        if status is None:  # posted, but the kill came before the journal noted where: it still shows Cancel
            status = history.find(lambda m: shows_cancel(m, rec.job_id))
        if seen == "result":
            await self.db.set_job_state(rec.job_id, "done")
            if status is not None and status.components:  # still shows progress and a Cancel button
                await self._edit(rec, status, DONE_STATUS)
            log.info("job %s user=%s outcome=done (Discord has its result; journaled after the restart)",
                     rec.job_id, rec.user_id)
            return "result"
        if seen == "told":
            await self.db.set_job_state(rec.job_id, "interrupted")
            log.info("job %s user=%s outcome=interrupted (told before the restart)", rec.job_id, rec.user_id)
            return "told-before"
        mention, mark = f"<@{rec.user_id}>", job_mark(rec.job_id)
        unsure = rec.state == "delivering" and seen == "unreadable"
        template = UNSURE_NOTICE if unsure else RESTART_NOTICE
        if status is not None:
            await self._edit(rec, status, RESTART_STATUS.format(mention=mention, mark=mark))
        await self._tell(rec, template.format(mention=mention, mark=mark), reply_to=status)
        await self.db.set_job_state(rec.job_id, "interrupted")
        log.info("job %s user=%s outcome=interrupted-by-restart (user told)", rec.job_id, rec.user_id)
        return "told-now"

    async def _seen(self, rec: JobRecord, status: discord.Message | None, history: History) -> Seen:
        """What Discord already shows the user about this job."""
        if status is not None and shows_notice(status, rec.job_id):
            return "told"
        places: list[tuple[int, discord.abc.Messageable]] = []
        channel = await self._channel(rec.channel_id)
        if channel is not None:
            places.append((rec.channel_id, channel))
        if status is not None and status.channel.id != rec.channel_id:
            places.append((status.channel.id, status.channel))
        try:  # a result or notice the channel refused went to the user's DMs
            user = self.bot.get_user(rec.user_id) or await self.bot.fetch_user(rec.user_id)
            dm = user.dm_channel or await user.create_dm()
            places.append((dm.id, dm))
        except discord.HTTPException:
            pass
        unreadable = channel is None
        for channel_id, place in places:
            messages = await history.messages(place, channel_id)
            if messages is None:
                unreadable = unreadable or channel_id == rec.channel_id
                continue
            if any(shows_result(m, rec.job_id) for m in messages):
                return "result"
            if any(shows_notice(m, rec.job_id) for m in messages):
                return "told"
        return "unreadable" if unreadable else "nothing"

    async def _channel(self, channel_id: int) -> discord.abc.Messageable | None:
        try:
            channel = self.bot.get_channel(channel_id) or await self.bot.fetch_channel(channel_id)
        except discord.HTTPException:
            return None
        return channel if isinstance(channel, discord.abc.Messageable) else None

    async def _status(self, rec: JobRecord) -> discord.Message | None:
        """The job's status message as Discord shows it now; None when there is none, or it is gone or unreadable."""
        if rec.status_channel_id is None or rec.status_message_id is None:
            return None
        channel = await self._channel(rec.status_channel_id)
        if channel is None or not hasattr(channel, "fetch_message"):
            return None
        try:
            message: discord.Message = await channel.fetch_message(rec.status_message_id)
        except discord.HTTPException as exc:
            log.info("job %s: its status message could not be read after the restart (%s)", rec.job_id, exc)
            return None
        return message

    async def _edit(self, rec: JobRecord, status: discord.Message, content: str) -> None:
        try:
            await status.edit(content=content, embed=None, view=None)
        except discord.HTTPException as exc:
            log.info("job %s: its status message could not be updated after the restart (%s)", rec.job_id, exc)

    async def _tell(self, rec: JobRecord, text: str, *, reply_to: discord.Message | None) -> None:
        """The notice in the job's channel (a reply to its status there), else in the user's DMs."""
        who = discord.Object(id=rec.user_id)
        channel = await self._channel(rec.channel_id)
        if channel is not None:
            try:
                if reply_to is not None and reply_to.channel.id == rec.channel_id:
                    await channel.send(text, allowed_mentions=pings(who),
                                       reference=reply_to.to_reference(fail_if_not_exists=False))
                else:
                    await channel.send(text, allowed_mentions=pings(who))
                return
            except discord.HTTPException as exc:
                log.info("job %s: the restart notice could not be posted in channel %s (%s); trying DMs",
                         rec.job_id, rec.channel_id, exc)
        try:
            user = await self.bot.fetch_user(rec.user_id)
            await user.send(text)
        except discord.HTTPException as exc:
            log.warning("could not tell user %s about interrupted job %s: %s", rec.user_id, rec.job_id, exc)

"""At a shutdown, one message per channel for the users whose waiting jobs Discord's rate limits keep from being told
in time (their status edits wait in discord.py's queue): it names each of them, with their jobs' marks, so a restart
knows they were told."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

import discord

from bot.requests.jobs import StoppedJob, job_mark

log = logging.getLogger(__name__)

STOPPED_NOTICE = ("{mentions} the bot is restarting, so your waiting jobs were stopped before they ran. Please send "
                  "them again in a minute. {marks}")
PER_MESSAGE = 25  # jobs named in one message: 25 mentions and marks stay well within Discord's 2000 characters


class StoppedNotice:
    """``bot.requests.jobs.BatchNotice`` for the bot: posts to each channel at once (the channels in parallel)."""

    def __init__(self, bot: discord.Client) -> None:
        self.bot = bot

    async def __call__(self, jobs: list[StoppedJob]) -> None:
        by_channel: dict[int, list[StoppedJob]] = defaultdict(list)
        for job in jobs:
            by_channel[job.channel_id].append(job)
        posts = [self._post(channel_id, group[i:i + PER_MESSAGE])
                 for channel_id, group in by_channel.items() for i in range(0, len(group), PER_MESSAGE)]
        await asyncio.gather(*posts)

    async def _post(self, channel_id: int, jobs: list[StoppedJob]) -> None:
        users = sorted({job.user_id for job in jobs})
        text = STOPPED_NOTICE.format(mentions=" ".join(f"<@{u}>" for u in users),
                                     marks=" ".join(job_mark(job.job_id) for job in jobs))
        try:
            channel = self.bot.get_channel(channel_id) or await self.bot.fetch_channel(channel_id)
            if not isinstance(channel, discord.abc.Messageable):
                return
            await channel.send(text, allowed_mentions=discord.AllowedMentions(users=[discord.Object(u) for u in users]))
        except discord.HTTPException as exc:
            log.warning("the shutdown notice for %d job(s) in channel %s failed: %s", len(jobs), channel_id, exc)

"""The bot: a ``commands.Bot`` that makes the database, the style backend and the job service, and hands each cog
what it uses. Nothing calls back into it: jobs report through return values and events (``bot.requests.events``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import Settings
from bot.gallery.store import GalleryStore, PaintingCatalog
from bot.requests.cooldown import Cooldowns
from bot.requests.defaults import DefaultsLookup
from bot.requests.events import JobObserver
from bot.requests.failures import GENERIC, describe_command_error
from bot.requests.gate import RequestGate
from bot.requests.service import JobService
from bot.storage.db import Database, JobRecord
from bot.storage.limits import MB, Limits, LimitsLookup
from bot.storage.user_defaults import UserDefaultsStore
from bot.ui.render import error_embed
from bot.ui.replies import answer, pings
from nst_engine.pool.protocol import StyleBackend

log = logging.getLogger("bot")

RESTART_NOTICE = (
    "{mention} the bot restarted while your style transfer job was running, so it was lost. "
    "Please send it again."
)
RESTART_STATUS = "{mention} interrupted: the bot restarted before this job finished, so it was lost. Please send it again."
GENERIC_ERROR = GENERIC


def build_backend(settings: Settings) -> StyleBackend:
    """The default backend: a local process pool or a Ray cluster (NST_BACKEND), configured from the settings."""
    from nst_engine.pool import backend_from_settings

    return backend_from_settings(settings)


class StyleBot(commands.Bot):
    """The style transfer bot.

    ``backend``: the StyleBackend to run jobs on (default: built from the settings, NST_BACKEND=process|ray). An injected
    backend is started and closed by the bot only when ``manage_backend`` is True.
    ``engine_overrides``: StyleOptions fields forced on every job (tests and development, e.g.
    ``{"size": 48, "iterations": 4}``); the output size stays capped by the limits. They are handed to the job
    service, which reads ``jobs.engine_overrides`` at each request.
    ``observers``: job-event observers the job service starts with (``bot.requests.events``; metrics use it).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        backend: StyleBackend | None = None,
        manage_backend: bool | None = None,
        engine_overrides: dict[str, Any] | None = None,
        observers: Sequence[JobObserver] = (),
        **options: Any,
    ) -> None:
        self.settings = settings if settings is not None else Settings()
        intents = discord.Intents.default()
        # Only `!style` reads message text; "auto" may turn this off in setup_hook, before the gateway connects.
        intents.message_content = self.settings.message_content_intent != "off"
        super().__init__(
            command_prefix=commands.when_mentioned_or(self.settings.bot_prefix),
            intents=intents,
            help_command=None,
            # Nobody is pinged unless a message says whom (ui.replies.pings): filenames and other user text never ping.
            allowed_mentions=discord.AllowedMentions.none(),
            tree_cls=StyleTree,
            **options,
        )
        self.backend = backend
        self.manage_backend = backend is None if manage_backend is None else manage_backend
        self._engine_overrides = dict(engine_overrides or {})  # handed to the job service, which reads them per job
        self._observers = list(observers)
        self.db = Database(self.settings.database_path, retention=self.settings.job_retention_days * 86400)
        self.ceilings = Limits.from_settings(self.settings)
        self.limits_for = LimitsLookup(self.ceilings, self.db)
        self.jobs: JobService
        self._background: set[asyncio.Task[None]] = set()

    async def setup_hook(self) -> None:
        from bot.cogs.admin import AdminCog
        from bot.cogs.gallery import GalleryCog, StylizeCog
        from bot.cogs.help import HelpCog
        from bot.cogs.limits import LimitsCog
        from bot.cogs.style import StyleCog
        from bot.cogs.user_settings import UserSettingsCog
        from bot.ui.buttons import CancelButton, RerunButton

        if self.settings.message_content_intent == "auto":
            await self._choose_message_content()
        await self.db.open()
        # Jobs the journal still holds open were interrupted by the last shutdown or crash.
        stale = await self.db.unfinished_jobs()
        if self.backend is None:
            self.backend = build_backend(self.settings)
        if self.manage_backend:
            await self.backend.start()
        self.jobs = JobService(
            self.settings, self.backend, self.db, self.limits_for, engine_overrides=self._engine_overrides,
            observers=self._observers,
        )
        await self.jobs.start()
        self.gate = RequestGate(
            queue=self.jobs.queue, limits_for=self.limits_for, cooldowns=Cooldowns(self.settings.user_cooldown),
            max_styles=self.settings.max_styles, job_timeout=self.settings.nst_job_timeout,
            observers=self.jobs.observers,  # the same list: observers added later (metrics) hear refusals too
        )
        self.user_defaults = UserDefaultsStore(self.db)
        defaults = DefaultsLookup(self.user_defaults, self.limits_for)
        # Style gallery (bot/gallery/): the built-in paintings and each server's own.
        self.gallery = GalleryStore(self.db, max_items=self.settings.gallery_max_items,
                                    max_bytes=int(self.settings.gallery_max_mb * MB))
        self.paintings = PaintingCatalog(self.gallery)
        await self.add_cog(StyleCog(self.settings, self.jobs, self.paintings, gate=self.gate, defaults=defaults))
        limits_cog = LimitsCog(self.settings, self.limits_for)
        await self.add_cog(limits_cog)
        await self.add_cog(HelpCog(self.settings, self.limits_for))
        await self.add_cog(GalleryCog(self.settings, self.gallery, self.limits_for))
        await self.add_cog(AdminCog(self.settings, self.db, self.gallery, self.limits_for, limits_cog))
        await self.add_cog(UserSettingsCog(self.user_defaults, defaults, self.paintings, self.limits_for))
        await self.add_cog(StylizeCog(self.settings, self.jobs, self.paintings, self.limits_for, self.tree,
                                      gate=self.gate, defaults=defaults))
        self.add_dynamic_items(CancelButton, RerunButton)
        if self.settings.sync_commands:
            await self.sync_commands()
        if stale:
            self._spawn(self._report_interrupted(stale))

    async def _choose_message_content(self) -> None:
        """Ask for the privileged Message Content intent only when the application has it (Developer Portal), so a
        bot without it still starts: slash commands, Stylize and mentions work; only `!style` needs the text."""
        info = self.application or await self.application_info()  # discord.py fetched it at login
        flags = info.flags
        if flags.gateway_message_content or flags.gateway_message_content_limited:
            return
        # Intents are read at IDENTIFY, after this hook: the connection state is what discord.py sends.
        self._connection._intents.message_content = False
        log.warning("the Message Content intent is off for this application, so %sstyle is off (Discord blanks "
                    "message text without it); slash commands, Stylize and @mentions work. Enable it in the "
                    "Developer Portal (Bot → Privileged Gateway Intents) to use %sstyle.",
                    self.settings.bot_prefix, self.settings.bot_prefix)

    async def sync_commands(self) -> None:
        if self.settings.command_guild_id:
            guild = discord.Object(id=self.settings.command_guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
        else:
            synced = await self.tree.sync()
        log.info("synced %d application commands", len(synced))

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        if hasattr(self, "jobs"):
            await self.jobs.close()
        if self.backend is not None and self.manage_backend:
            try:
                await self.backend.close()
            except Exception:
                log.exception("closing the style backend failed")
        await self.db.close()
        await super().close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _report_interrupted(self, records: list[JobRecord]) -> None:
        await self.wait_until_ready()
        for rec in records:
            text = RESTART_NOTICE.format(mention=f"<@{rec.user_id}>")
            who = discord.Object(id=rec.user_id)
            # The old status message says what happened and loses its Cancel button; the notice replies to it.
            status = await self._close_status(rec)
            if not await self._tell_channel(rec.channel_id, text, who, reply_to=status):
                try:
                    user = await self.fetch_user(rec.user_id)
                    await user.send(text)
                except discord.HTTPException as exc:
                    log.warning("could not tell user %s about interrupted job %s: %s", rec.user_id, rec.job_id, exc)
            await self.db.set_job_state(rec.job_id, "interrupted")
            log.info("job %s user=%s outcome=interrupted-by-restart (user told)", rec.job_id, rec.user_id)

    async def _close_status(self, rec: JobRecord) -> discord.PartialMessage | None:
        """Edit the job's old status message (no buttons any more); None when there is none or it is gone."""
        if rec.status_channel_id is None or rec.status_message_id is None:
            return None
        try:
            channel = self.get_channel(rec.status_channel_id) or await self.fetch_channel(rec.status_channel_id)
            if not isinstance(channel, discord.abc.Messageable) or not hasattr(channel, "get_partial_message"):
                return None
            message: discord.PartialMessage = channel.get_partial_message(rec.status_message_id)
            await message.edit(content=RESTART_STATUS.format(mention=f"<@{rec.user_id}>"), embed=None, view=None)
        except discord.HTTPException as exc:
            log.info("job %s: its status message could not be updated after the restart (%s)", rec.job_id, exc)
            return None
        return message

    async def _tell_channel(
        self, channel_id: int, text: str, who: discord.abc.Snowflake, *, reply_to: discord.PartialMessage | None
    ) -> bool:
        try:
            channel = self.get_channel(channel_id) or await self.fetch_channel(channel_id)
            if not isinstance(channel, discord.abc.Messageable):
                return False
            same_channel = reply_to is not None and reply_to.channel.id == channel_id
            reference = reply_to.to_reference(fail_if_not_exists=False) if same_channel and reply_to else None
            if reference is not None:
                await channel.send(text, allowed_mentions=pings(who), reference=reference)
            else:
                await channel.send(text, allowed_mentions=pings(who))
        except discord.HTTPException:
            return False
        return True

    # -- error handlers: never silent, never a traceback to users --------------------------------------

    async def on_command_error(self, ctx: commands.Context[Any], error: commands.CommandError) -> None:
        if isinstance(error, commands.CommandNotFound):
            return
        message = describe_command_error(error)
        if message is None:
            log.error("command %s failed", ctx.command, exc_info=getattr(error, "original", error))
            message = GENERIC_ERROR
        elif isinstance(error, commands.UserInputError):
            message = f"{message} Try `{self.settings.bot_prefix}style-help`."
        try:
            await answer(ctx.message, error_embed(message))
        except discord.HTTPException:
            log.warning("could not report a command error to %s", ctx.author.id)


class StyleTree(app_commands.CommandTree):
    """The command tree, with the bot's one error handler for application commands."""

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        message = describe_command_error(error)
        if message is None:
            log.error("app command %s failed", interaction.command and interaction.command.name,
                      exc_info=getattr(error, "original", error))
            message = GENERIC_ERROR
        embed = error_embed(message)
        try:
            if interaction.response.is_done():
                await interaction.followup.send(embed=embed, ephemeral=True)
            else:
                await interaction.response.send_message(embed=embed, ephemeral=True)
        except discord.HTTPException:
            log.warning("could not report an app command error to %s", interaction.user.id)

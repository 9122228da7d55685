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
from bot.storage.db import Database
from bot.storage.limits import MB, Limits, LimitsLookup
from bot.storage.user_defaults import UserDefaultsStore
from bot.ui.render import error_embed
from bot.ui.replies import answer
from bot.ui.restart_notices import RestartNotices
from bot.ui.stopped_notice import StoppedNotice
from nst_engine.pool.protocol import StyleBackend

log = logging.getLogger("bot")

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
            observers=self._observers, batch_notice=StoppedNotice(self),
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
            self._spawn(RestartNotices(self, self.db).report(stale))

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

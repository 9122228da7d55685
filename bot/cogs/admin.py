"""``/style-admin``: what a server's admins change, kept where members cannot see it.

Discord honours ``default_permissions`` only on top-level commands, so the admin actions live in this one group
(members without **Manage Server** do not see it). Each action still checks the permission in code: a server's
admins can hand a command to other roles in its Integrations settings. Refusals are answered by the bot's app-command
error handler.

    /style-admin gallery add name:<text> image:<image>   /style-admin gallery remove name:<name>
    /style-admin limits set [max_file_mb] [...]          /style-admin limits reset
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.gallery import usage_text
from bot.cogs.limits import LimitsCog
from bot.config import Settings
from bot.gallery.store import GalleryError, GalleryStore, prepare_upload, validate_name
from bot.requests.downloads import DownloadError, download
from bot.requests.policy import image_refusal
from bot.storage.db import Database
from bot.storage.limits import LimitError, LimitsLookup, apply_update
from bot.ui.render import COLOR_OK, error_embed
from nst_engine.errors import ImageError
from nst_engine.images import ImageLimits, human_bytes

log = logging.getLogger(__name__)

GALLERY_IN_DMS = (
    "Galleries belong to servers. In direct messages you can use the built-in paintings "
    "(`/style-gallery list` shows them)."
)
LIMITS_IN_DMS = "Server limits only exist in servers; in direct messages the bot-wide limits apply."


class NotInServer(app_commands.CheckFailure):
    """A server-only admin command used in direct messages."""


def in_server(message: str) -> Callable[[discord.Interaction], bool]:
    """A check that refuses direct messages with ``message``. Discord already hides the group there; a client that
    sends one anyway gets "only in servers", not "you need Manage Server" (it runs before the permission check)."""
    def check(interaction: discord.Interaction) -> bool:
        if interaction.guild is None:
            raise NotInServer(message)
        return True
    return check


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class AdminCog(commands.GroupCog, group_name="style-admin",
               group_description="Change this server's style transfer gallery and limits (Manage Server)"):
    gallery = app_commands.Group(name="gallery", description="This server's own paintings")
    limits = app_commands.Group(name="limits", description="This server's style transfer limits")

    def __init__(self, settings: Settings, db: Database, store: GalleryStore, limits_for: LimitsLookup,
                 limits_cog: LimitsCog) -> None:
        self.settings = settings
        self.db = db
        self.store = store
        self.limits_for = limits_for
        self.limits_cog = limits_cog  # shows the limits after a change, as `/style-limits show` does
        self.session: aiohttp.ClientSession | None = None
        super().__init__()

    async def cog_load(self) -> None:
        self.session = aiohttp.ClientSession()

    async def cog_unload(self) -> None:
        if self.session is not None:
            await self.session.close()

    # -- gallery add -------------------------------------------------------------------------------------

    @gallery.command(name="add", description="Add a painting to this server's gallery (Manage Server)")
    @app_commands.describe(name="What members will call it (2-32 characters)", image="The painting")
    @app_commands.checks.has_permissions(manage_guild=True)
    @app_commands.check(in_server(GALLERY_IN_DMS))
    async def add(self, interaction: discord.Interaction, name: str, image: discord.Attachment) -> None:
        assert interaction.guild is not None
        guild_id = interaction.guild.id
        limits = await self.limits_for(guild_id)
        try:
            name = validate_name(name)
            existing = await self.store.get(guild_id, name)
            if existing is not None:
                raise GalleryError(
                    f"This server's gallery already has a painting called **{existing.name}** (names ignore "
                    "case). Pick another name, or remove that one first."
                )
            count, _ = await self.store.usage(guild_id)
            if count >= self.store.max_items:
                raise GalleryError(
                    f"This server's gallery is full: {count} of {self.store.max_items} paintings. "
                    "Remove one with `/style-admin gallery remove` first."
                )
            self._check_metadata(image, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels,
                                 max_mp=limits.max_megapixels)
        except GalleryError as exc:
            await interaction.response.send_message(embed=error_embed(str(exc)), ephemeral=True)
            return
        # Downloading and checking can take a while: acknowledge now (Discord allows 3 seconds).
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            assert self.session is not None
            data = await download(self.session, image.url, filename=image.filename, max_bytes=limits.max_bytes,
                                  timeout=self.settings.download_timeout)
            image_limits = ImageLimits(max_bytes=limits.max_bytes, max_pixels=limits.max_pixels)
            prepared = await asyncio.to_thread(
                prepare_upload, data, limits=image_limits, max_side=self.settings.gallery_max_side
            )
            entry = await self.store.add(guild_id, name, prepared, added_by=interaction.user.id)
        except (DownloadError, GalleryError) as exc:
            await interaction.followup.send(embed=error_embed(str(exc)), ephemeral=True)
            return
        except ImageError as exc:
            await interaction.followup.send(embed=error_embed(image_refusal(exc, filename=image.filename)),
                                            ephemeral=True)
            return
        log.info("gallery: guild=%s user=%s added %r (%d bytes)", guild_id, interaction.user.id, entry.name,
                 entry.nbytes)
        count, used = await self.store.usage(guild_id)
        embed = discord.Embed(
            title="Painting added",
            description=(
                f"**{entry.name}** is in this server's gallery ({entry.width}×{entry.height}).\n"
                f"Use it with `/style content:<image> painting:{entry.name}`, "
                f"`{self.settings.bot_prefix}style {entry.name}` with one image attached, "
                "or right-click a message with an image → Apps → **Stylize**."
            ),
            color=COLOR_OK,
        )
        embed.set_thumbnail(url="attachment://painting.jpg")
        embed.set_footer(text=usage_text(self.store, count, used))
        await interaction.followup.send(
            embed=embed, file=discord.File(io.BytesIO(prepared.thumb), filename="painting.jpg"), ephemeral=True
        )

    @staticmethod
    def _check_metadata(image: discord.Attachment, *, max_bytes: int, max_pixels: int, max_mp: float) -> None:
        """Refuse (before downloading) what Discord's metadata already shows to be wrong."""
        ctype = (image.content_type or "").split(";")[0].strip().lower()
        if ctype and not ctype.startswith("image/"):
            raise GalleryError(
                f"`{image.filename}` is not an image (Discord says `{ctype}`); send PNG, JPEG, WebP, GIF or BMP."
            )
        if image.size > max_bytes:
            raise GalleryError(
                f"`{image.filename}` is {human_bytes(image.size)}; the limit here is {human_bytes(max_bytes)}. "
                "Send a smaller file."
            )
        if image.width and image.height and image.width * image.height > max_pixels:
            raise GalleryError(
                f"`{image.filename}` is {image.width}×{image.height} px; the limit here is {max_mp:g} MP. "
                "Send a smaller image."
            )

    # -- gallery remove ----------------------------------------------------------------------------------

    @gallery.command(name="remove", description="Remove a painting from this server's gallery (Manage Server)")
    @app_commands.describe(name="The painting to remove")
    @app_commands.checks.has_permissions(manage_guild=True)
    @app_commands.check(in_server(GALLERY_IN_DMS))
    async def remove(self, interaction: discord.Interaction, name: str) -> None:
        assert interaction.guild is not None
        entry = await self.store.remove(interaction.guild.id, name)
        if entry is None:
            await interaction.response.send_message(
                embed=error_embed(f"This server's gallery has no painting called `{name[:64]}`; "
                                  "`/style-gallery list` shows them."),
                ephemeral=True,
            )
            return
        log.info("gallery: guild=%s user=%s removed %r", interaction.guild.id, interaction.user.id, entry.name)
        count, used = await self.store.usage(interaction.guild.id)
        embed = discord.Embed(
            title="Painting removed",
            description=f"**{entry.name}** is no longer in this server's gallery. Jobs already waiting with it "
            "still finish.",
            color=COLOR_OK,
        )
        embed.set_footer(text=usage_text(self.store, count, used))
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @remove.autocomplete("name")
    async def _remove_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        if interaction.guild is None:
            return []
        key = current.casefold().strip()
        names = [e.name for e in await self.store.entries(interaction.guild.id)]
        names = [n for n in names if key in n.casefold()]
        return [app_commands.Choice(name=n, value=n) for n in names[:25]]

    # -- limits set / reset ------------------------------------------------------------------------------

    @limits.command(name="set", description="Set this server's limits (Manage Server)")
    @app_commands.describe(
        max_file_mb="Largest input file, in MB",
        max_megapixels="Largest input image, in megapixels",
        max_output_side="Largest output long side, in pixels",
        allowed_presets="Comma-separated: fast, balanced, quality",
        max_frames="Most frames of an animated picture",
        max_animation_megapixels="Most megapixels of an animation: frames x output size",
    )
    @app_commands.checks.has_permissions(manage_guild=True)
    @app_commands.check(in_server(LIMITS_IN_DMS))
    async def set_limits(
        self,
        interaction: discord.Interaction,
        max_file_mb: float | None = None,
        max_megapixels: float | None = None,
        max_output_side: int | None = None,
        allowed_presets: str | None = None,
        max_frames: int | None = None,
        max_animation_megapixels: float | None = None,
    ) -> None:
        assert interaction.guild is not None  # in_server
        given = (max_file_mb, max_megapixels, max_output_side, allowed_presets, max_frames, max_animation_megapixels)
        if all(v is None for v in given):
            await interaction.response.send_message(
                embed=error_embed("Give at least one limit to change (see `/style-limits show`)."), ephemeral=True
            )
            return
        current = await self.db.guild_limits(interaction.guild.id)
        try:
            updated = apply_update(
                current, self.limits_for.ceilings, max_file_mb=max_file_mb, max_megapixels=max_megapixels,
                max_output_side=max_output_side, allowed_presets=allowed_presets, max_frames=max_frames,
                max_animation_megapixels=max_animation_megapixels,
            )
        except LimitError as exc:
            await interaction.response.send_message(embed=error_embed(str(exc)), ephemeral=True)
            return
        await self.db.set_guild_limits(interaction.guild.id, updated, updated_by=interaction.user.id)
        await self.limits_cog.show_limits(interaction, ephemeral=False, title="Style transfer limits updated")

    @limits.command(name="reset", description="Reset this server's limits to the bot-wide ones (Manage Server)")
    @app_commands.checks.has_permissions(manage_guild=True)
    @app_commands.check(in_server(LIMITS_IN_DMS))
    async def reset_limits(self, interaction: discord.Interaction) -> None:
        assert interaction.guild is not None  # in_server
        await self.db.reset_guild_limits(interaction.guild.id)
        await self.limits_cog.show_limits(interaction, ephemeral=False,
                                          title="Style transfer limits reset to the bot-wide ones")

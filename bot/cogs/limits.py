"""``/style-limits show|set|reset``: per-server limits, never above the bot-wide ceilings.

``set`` and ``reset`` need Manage Server, checked in code by ``app_commands.checks.has_permissions`` (server admins
can change a command's default permissions per role, so those alone are not a check); a refusal is answered by the
bot's app-command error handler. Discord applies ``default_permissions`` only to top-level commands, so it cannot
hide these two subcommands while ``show`` stays visible to everyone.
"""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import Settings
from bot.storage.db import Database
from bot.storage.limits import LimitError, Limits, LimitsLookup, apply_update
from bot.ui.render import error_embed, limits_embed

_GUILD_ONLY = "Server limits only exist in servers; in direct messages the bot-wide limits apply."


def in_guild(interaction: discord.Interaction) -> bool:
    if interaction.guild is None:
        raise app_commands.NoPrivateMessage(_GUILD_ONLY)
    return True


class LimitsCog(commands.GroupCog, group_name="style-limits", group_description="Style transfer limits"):
    def __init__(self, settings: Settings, db: Database, limits_for: LimitsLookup) -> None:
        self.settings = settings
        self.db = db
        self.limits_for = limits_for
        super().__init__()

    @property
    def ceilings(self) -> Limits:
        return self.limits_for.ceilings

    async def _show(self, interaction: discord.Interaction, *, ephemeral: bool, title: str | None = None) -> None:
        guild = interaction.guild
        limits = await self.limits_for(guild.id if guild else None)
        embed = limits_embed(
            limits, ceilings=self.ceilings, guild_name=guild.name if guild else None,
            max_styles=self.settings.max_styles,
        )
        if title:
            embed.title = title
        await interaction.response.send_message(embed=embed, ephemeral=ephemeral)

    @app_commands.command(name="show", description="Show the limits that apply here")
    async def show(self, interaction: discord.Interaction) -> None:
        await self._show(interaction, ephemeral=True)

    @app_commands.command(name="set", description="Set this server's limits (Manage Server)")
    @app_commands.describe(
        max_file_mb="Largest input file, in MB",
        max_megapixels="Largest input image, in megapixels",
        max_output_side="Largest output long side, in pixels",
        allowed_presets="Comma-separated: fast, balanced, quality",
        max_frames="Most frames of an animated picture",
        max_animation_megapixels="Most megapixels of an animation: frames x output size",
    )
    @app_commands.checks.has_permissions(manage_guild=True)
    @app_commands.check(in_guild)
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
        assert interaction.guild is not None  # in_guild
        given = (max_file_mb, max_megapixels, max_output_side, allowed_presets, max_frames, max_animation_megapixels)
        if all(v is None for v in given):
            await interaction.response.send_message(
                embed=error_embed("Give at least one limit to change (see `/style-limits show`)."), ephemeral=True
            )
            return
        current = await self.db.guild_limits(interaction.guild.id)
        try:
            updated = apply_update(
                current, self.ceilings, max_file_mb=max_file_mb, max_megapixels=max_megapixels,
                max_output_side=max_output_side, allowed_presets=allowed_presets, max_frames=max_frames,
                max_animation_megapixels=max_animation_megapixels,
            )
        except LimitError as exc:
            await interaction.response.send_message(embed=error_embed(str(exc)), ephemeral=True)
            return
        await self.db.set_guild_limits(interaction.guild.id, updated, updated_by=interaction.user.id)
        await self._show(interaction, ephemeral=False, title="Style transfer limits updated")

    @app_commands.command(name="reset", description="Reset this server's limits to the bot-wide ones (Manage Server)")
    @app_commands.checks.has_permissions(manage_guild=True)
    @app_commands.check(in_guild)
    async def reset(self, interaction: discord.Interaction) -> None:
        assert interaction.guild is not None  # in_guild
        await self.db.reset_guild_limits(interaction.guild.id)
        await self._show(interaction, ephemeral=False, title="Style transfer limits reset to the bot-wide ones")

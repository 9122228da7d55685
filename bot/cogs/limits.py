"""``/style-limits show|set|reset``: per-server limits, never above the bot-wide ceilings."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.limits import LimitError, apply_update
from bot.render import error_embed, limits_embed

if TYPE_CHECKING:
    from bot.app import StyleBot

NEEDS_MANAGE = "Only members with the **Manage Server** permission can change the limits."
GUILD_ONLY = "Server limits only exist in servers; in direct messages the bot-wide limits apply."


def can_manage(interaction: discord.Interaction) -> bool:
    perms = getattr(interaction.user, "guild_permissions", None)
    return bool(perms and perms.manage_guild)


class LimitsCog(commands.GroupCog, group_name="style-limits", group_description="Style transfer limits"):
    def __init__(self, bot: StyleBot) -> None:
        self.bot = bot
        super().__init__()

    async def _show(self, interaction: discord.Interaction, *, ephemeral: bool, title: str | None = None) -> None:
        guild = interaction.guild
        limits = await self.bot.limits_for(guild)
        embed = limits_embed(
            limits, ceilings=self.bot.ceilings, guild_name=guild.name if guild else None,
            max_styles=self.bot.settings.max_styles,
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
    )
    async def set_limits(
        self,
        interaction: discord.Interaction,
        max_file_mb: float | None = None,
        max_megapixels: float | None = None,
        max_output_side: int | None = None,
        allowed_presets: str | None = None,
    ) -> None:
        if not await self._may_change(interaction):
            return
        assert interaction.guild is not None
        if all(v is None for v in (max_file_mb, max_megapixels, max_output_side, allowed_presets)):
            await interaction.response.send_message(
                embed=error_embed("Give at least one limit to change (see `/style-limits show`)."), ephemeral=True
            )
            return
        current = await self.bot.db.guild_limits(interaction.guild.id)
        try:
            updated = apply_update(
                current, self.bot.ceilings, max_file_mb=max_file_mb, max_megapixels=max_megapixels,
                max_output_side=max_output_side, allowed_presets=allowed_presets,
            )
        except LimitError as exc:
            await interaction.response.send_message(embed=error_embed(str(exc)), ephemeral=True)
            return
        await self.bot.db.set_guild_limits(interaction.guild.id, updated, updated_by=interaction.user.id)
        await self._show(interaction, ephemeral=False, title="Style transfer limits updated")

    @app_commands.command(name="reset", description="Reset this server's limits to the bot-wide ones (Manage Server)")
    async def reset(self, interaction: discord.Interaction) -> None:
        if not await self._may_change(interaction):
            return
        assert interaction.guild is not None
        await self.bot.db.reset_guild_limits(interaction.guild.id)
        await self._show(interaction, ephemeral=False, title="Style transfer limits reset to the bot-wide ones")

    async def _may_change(self, interaction: discord.Interaction) -> bool:
        # Checked here, not only by default_permissions: server admins can override those per role.
        if interaction.guild is None:
            await interaction.response.send_message(embed=error_embed(GUILD_ONLY), ephemeral=True)
            return False
        if not can_manage(interaction):
            await interaction.response.send_message(embed=error_embed(NEEDS_MANAGE), ephemeral=True)
            return False
        return True

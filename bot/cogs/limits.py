"""``/style-limits show``: the limits that apply here, for everyone. Admins change them with ``/style-admin limits``
(bot/cogs/admin.py), never above the bot-wide ceilings."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import Settings
from bot.storage.limits import Limits, LimitsLookup
from bot.ui.render import limits_embed


class LimitsCog(commands.GroupCog, group_name="style-limits", group_description="Style transfer limits"):
    def __init__(self, settings: Settings, limits_for: LimitsLookup) -> None:
        self.settings = settings
        self.limits_for = limits_for
        super().__init__()

    @property
    def ceilings(self) -> Limits:
        return self.limits_for.ceilings

    async def show_limits(self, interaction: discord.Interaction, *, ephemeral: bool, title: str | None = None) -> None:
        """Answer ``interaction`` with the limits that apply where it came from."""
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
        await self.show_limits(interaction, ephemeral=True)

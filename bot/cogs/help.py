"""``/style-help`` (and ``!style-help``): how to use the bot, with this server's limits."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import Settings
from bot.storage.limits import LimitsLookup
from bot.ui.render import help_embed
from bot.ui.replies import answer


class HelpCog(commands.Cog):
    def __init__(self, settings: Settings, limits_for: LimitsLookup) -> None:
        self.settings = settings
        self.limits_for = limits_for

    async def _embed(self, guild: discord.Guild | None) -> discord.Embed:
        limits = await self.limits_for(guild.id if guild else None)
        return help_embed(self.settings, limits=limits)

    @app_commands.command(name="style-help", description="How to use the style transfer bot")
    async def help_slash(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(embed=await self._embed(interaction.guild), ephemeral=True)

    @commands.command(name="style-help")
    async def help_prefix(self, ctx: commands.Context[commands.Bot]) -> None:
        await answer(ctx.message, await self._embed(ctx.guild))

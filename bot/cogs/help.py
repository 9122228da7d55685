"""``/style-help`` (and ``!style-help``, ``!help``): how to use the bot, with this server's limits; ``/style-about``
(and ``!style-about``): the version, what is stored and for how long, and where the source is."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import Settings
from bot.storage.limits import LimitsLookup
from bot.ui.about import about_embed
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

    @commands.command(name="style-help", aliases=["help"])
    async def help_prefix(self, ctx: commands.Context[commands.Bot]) -> None:
        await answer(ctx.message, await self._embed(ctx.guild))

    @app_commands.command(name="style-about", description="Version, what the bot stores about you, and its source")
    async def about_slash(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(embed=about_embed(self.settings), ephemeral=True)

    @commands.command(name="style-about")
    async def about_prefix(self, ctx: commands.Context[commands.Bot]) -> None:
        await answer(ctx.message, about_embed(self.settings))

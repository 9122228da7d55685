"""``/style-help`` (and ``!style-help``): how to use the bot, with this server's limits."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.render import help_embed

if TYPE_CHECKING:
    from bot.app import StyleBot


class HelpCog(commands.Cog):
    def __init__(self, bot: StyleBot) -> None:
        self.bot = bot

    async def _embed(self, guild: discord.Guild | None) -> discord.Embed:
        limits = await self.bot.limits_for(guild)
        return help_embed(self.bot.settings.bot_prefix, limits=limits, max_styles=self.bot.settings.max_styles)

    @app_commands.command(name="style-help", description="How to use the style transfer bot")
    async def help_slash(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(embed=await self._embed(interaction.guild), ephemeral=True)

    @commands.command(name="style-help")
    async def help_prefix(self, ctx: commands.Context) -> None:
        await ctx.reply(embed=await self._embed(ctx.guild), mention_author=False)

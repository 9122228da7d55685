"""``/style-settings``: show and set your own defaults (preset, strength, colours, a favourite painting); Reset is one
click. They are stored per person in the database and used whenever a request leaves an option out."""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.style import PRESET_CHOICES
from bot.gallery.store import PaintingCatalog, UnknownPainting
from bot.requests.arguments import STRENGTH_MAX, STRENGTH_MIN
from bot.requests.defaults import Baseline, DefaultsLookup
from bot.storage.limits import LimitsLookup
from bot.storage.user_defaults import UserDefaultsStore
from bot.ui.defaults_view import ResetDefaults, defaults_embed
from bot.ui.render import error_embed

log = logging.getLogger(__name__)

COLOUR_CHOICES = [
    app_commands.Choice(name="keep the photo's colours", value="photo"),
    app_commands.Choice(name="take the painting's colours", value="painting"),
]


class UserSettingsCog(commands.Cog):
    def __init__(self, store: UserDefaultsStore, defaults: DefaultsLookup, paintings: PaintingCatalog,
                 limits_for: LimitsLookup) -> None:
        self.store = store
        self.defaults = defaults
        self.paintings = paintings
        self.limits_for = limits_for

    @app_commands.command(name="style-settings", description="Show or set your own defaults for style requests")
    @app_commands.describe(
        preset="Your default preset",
        strength=f"Your default strength: {STRENGTH_MIN:g} subtle … {STRENGTH_MAX:g} strong",
        colours="Whose colours your pictures keep by default",
        painting="Your favourite painting, used when you attach no style",
    )
    @app_commands.choices(preset=PRESET_CHOICES, colours=COLOUR_CHOICES)
    async def style_settings(
        self,
        interaction: discord.Interaction,
        preset: app_commands.Choice[str] | None = None,
        strength: app_commands.Range[float, STRENGTH_MIN, STRENGTH_MAX] | None = None,
        colours: app_commands.Choice[str] | None = None,
        painting: str | None = None,
    ) -> None:
        user_id = interaction.user.id
        guild_id = interaction.guild.id if interaction.guild else None
        changes: dict[str, object] = {}
        if preset is not None:
            changes["preset"] = preset.value
        if strength is not None:
            changes["strength"] = float(strength)
        if colours is not None:
            changes["preserve_colors"] = colours.value == "photo"
        if painting is not None:
            try:
                changes["painting"] = (await self.paintings.resolve(guild_id, painting)).name
            except UnknownPainting as exc:
                await interaction.response.send_message(embed=error_embed(str(exc)), ephemeral=True)
                return
        if changes:
            await self.store.update(user_id, **changes)
            log.info("user %s set defaults %s", user_id, sorted(changes))
        base = await self.defaults(user_id, guild_id)
        limits = await self.limits_for(guild_id)

        async def reset() -> Baseline:
            await self.store.reset(user_id)
            log.info("user %s reset their defaults", user_id)
            return await self.defaults(user_id, guild_id)

        here = base.defaults.painting is not None and await self.paintings.exists(guild_id, base.defaults.painting)
        embed = defaults_embed(base, limits, favourite_here=here,
                               title="Your defaults are saved" if changes else "Your defaults")
        view = ResetDefaults(user_id=user_id, on_reset=reset, limits=limits) if not base.defaults.is_empty() else None
        if view is not None:
            await interaction.response.send_message(embed=embed, view=view, ephemeral=True)
        else:
            await interaction.response.send_message(embed=embed, ephemeral=True)

    @style_settings.autocomplete("painting")
    async def _painting_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        names = await self.paintings.suggest(interaction.guild.id if interaction.guild else None, current)
        return [app_commands.Choice(name=n, value=n) for n in names]

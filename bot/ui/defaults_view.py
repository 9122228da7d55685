"""What ``/style-settings`` shows: a person's own defaults, how they apply here, and a one-click Reset."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

import discord

from bot.requests.defaults import Baseline
from bot.requests.policy import choose_preset
from bot.storage.limits import Limits
from bot.ui.render import COLOR_INFO

ResetCallback = Callable[[], Awaitable[Baseline]]  # forgets the defaults; the Baseline without them


def defaults_embed(base: Baseline, limits: Limits, *, favourite_here: bool, title: str = "Your defaults") -> discord.Embed:
    """The person's defaults, each with what it means in this server."""
    d = base.defaults
    embed = discord.Embed(
        title=title, color=COLOR_INFO,
        description="Used whenever a request leaves the option out (`/style`, `!style`, **Stylize**). Only you see "
                    "this; change any with `/style-settings`, or press **Reset** to forget them all.",
    )
    bot_preset = choose_preset(None, limits)
    embed.add_field(name="Preset", value=d.preset or f"not set (the bot's: {bot_preset})")
    embed.add_field(name="Strength", value=f"{d.strength:g}" if d.strength is not None else "not set (1)")
    colours = {None: "not set (the painting's)", True: "keep the photo's", False: "the painting's"}
    embed.add_field(name="Colours", value=colours[d.preserve_colors])
    painting = d.painting or "not set (attach a style or name one)"
    if d.painting and not favourite_here:
        painting += " (not available here)"
    embed.add_field(name="Favourite painting", value=painting)
    if base.fallbacks:
        embed.add_field(name="Here", value=". ".join(base.fallbacks) + ".", inline=False)
    return embed


class ResetDefaults(discord.ui.View):
    """The one-click Reset under ``/style-settings``'s answer (an ephemeral message: only its owner sees it)."""

    def __init__(self, *, user_id: int, on_reset: ResetCallback, limits: Limits, timeout: float = 600.0) -> None:
        super().__init__(timeout=timeout)
        self.user_id = user_id
        self.on_reset = on_reset
        self.limits = limits
        button: discord.ui.Button[ResetDefaults] = discord.ui.Button(
            label="Reset", emoji="↩️", style=discord.ButtonStyle.secondary, custom_id=f"nst:defaults:reset:{secrets.token_hex(4)}")
        button.callback = self._reset  # type: ignore[method-assign]
        self.reset_button = button
        self.add_item(button)

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return interaction.user.id == self.user_id

    async def _reset(self, interaction: discord.Interaction) -> None:
        base = await self.on_reset()
        self.reset_button.disabled = True
        self.stop()
        embed = defaults_embed(base, self.limits, favourite_here=False, title="Your defaults are reset")
        await interaction.response.edit_message(embed=embed, view=self)

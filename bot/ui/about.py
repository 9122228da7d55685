"""What ``/style-about`` shows: the version, what the bot keeps about people and servers and for how long, and where
its source is."""

from __future__ import annotations

import discord

from bot.config import Settings
from bot.ui.render import COLOR_INFO
from nst_engine import __version__

LICENSE = "MIT"


def about_embed(settings: Settings) -> discord.Embed:
    days = f"{settings.job_retention_days:g} days"
    minutes = f"{settings.rerun_cache_ttl / 60:g} minutes"
    embed = discord.Embed(
        title="About this style transfer bot",
        description=f"nst-discord-bot **{__version__}** · {LICENSE} licence · neural style transfer (Gatys et al.)",
        color=COLOR_INFO,
    )
    embed.add_field(name="About you", inline=False, value=(
        "• **Your defaults** (`/style-settings`): until you press **Reset**.\n"
        "• **The job journal**: each job's id, your user id, the server, channel and status message, and how it "
        f"ended, so a restart can tell you about a lost job; deleted {days} after the job ends.\n"
        f"• **Your pictures**: in memory only, for the re-run buttons, for at most {minutes}; never written to disk.\n"
        "• **The bot's log**: job ids, user and server ids, presets and outcomes, kept as long as the host keeps logs."
    ))
    embed.add_field(name="About each server", inline=False, value=(
        "• **Limits** set with `/style-admin limits set`: until `/style-admin limits reset`.\n"
        "• **Gallery paintings** (the picture, its name, who added it): until `/style-admin gallery remove`."
    ))
    source = settings.source_url or "ships with the bot; this host has not published a link (SOURCE_URL)"
    embed.add_field(name="Source", value=source, inline=False)
    return embed

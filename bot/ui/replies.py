"""Quick answers the cogs give (a refusal, the help) and the rules every message follows: who it pings, and its
embeds as text where Discord would drop them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import discord


def missing_permission(channel: discord.abc.Messageable, *, files: bool) -> str:
    """The bot's permission that most likely caused a 403 when posting in ``channel`` (from the cache)."""
    guild = getattr(channel, "guild", None)
    if guild is None or not hasattr(channel, "permissions_for"):
        return "the permissions it needs"
    perms = channel.permissions_for(guild.me)
    for allowed, name in (
        (perms.view_channel, "View Channel"),
        (perms.send_messages, "Send Messages"),
        (not files or perms.attach_files, "Attach Files"),
        (perms.read_message_history, "Read Message History"),  # needed to reply to a message
    ):
        if not allowed:
            return f"the **{name}** permission"
    return "the permissions it needs"


def drops_embeds(channel: discord.abc.Messageable) -> bool:
    """Whether a message the bot may post in ``channel`` loses its embeds: Discord drops them silently without
    Embed Links. (Without Send Messages the message goes to the user's DMs instead, where embeds work.)"""
    guild = getattr(channel, "guild", None)
    if guild is None or not hasattr(channel, "permissions_for"):
        return False
    perms = channel.permissions_for(guild.me)
    return perms.send_messages and not perms.embed_links


def embed_as_text(embed: discord.Embed) -> str:
    """What an embed says, as message text (for channels where it would be dropped)."""
    parts = [f"**{embed.title}**" if embed.title else "", embed.description or ""]
    parts += [f"**{f.name}**: {f.value}" for f in embed.fields]
    parts.append(embed.footer.text or "")
    return "\n".join(p for p in parts if p)


def with_embed_text(content: str | None, embeds: Sequence[discord.Embed]) -> str:
    """``content`` followed by the embeds' text, within Discord's 2000 characters."""
    text = "\n".join([content or "", *(embed_as_text(e) for e in embeds)]).strip()
    return text if len(text) <= 2000 else text[:1999] + "…"


async def answer(message: discord.Message, embed: discord.Embed) -> None:
    """Answer a user's message with one embed (a quick refusal or the help), as a reply that pings nobody.

    Where Discord would drop the embed (no Embed Links) the embed's text goes as the message instead, and a message
    deleted meanwhile turns the reply into a plain message rather than an error."""
    if drops_embeds(message.channel):
        kwargs: dict[str, Any] = {"content": with_embed_text(None, [embed])}
    else:
        kwargs = {"embed": embed}
    if message.guild is None or message.channel.permissions_for(message.guild.me).read_message_history:
        kwargs["reference"] = message.to_reference(fail_if_not_exists=False)  # replying needs Read Message History
    await message.channel.send(**kwargs, allowed_mentions=discord.AllowedMentions.none())


def where(channel: discord.abc.Messageable) -> str:
    mention = getattr(channel, "mention", None)
    return mention or "that channel"


def pings(user: discord.abc.Snowflake) -> discord.AllowedMentions:
    """Ping this user and nobody else (the bot's default pings nobody: user text must never ping anyone)."""
    return discord.AllowedMentions(everyone=False, roles=False, users=[user], replied_user=False)

"""The invite link: the two scopes and exactly the permissions the bot uses, from ``discord.utils.oauth_url``."""

from __future__ import annotations

import discord

SCOPES = ("bot", "applications.commands")


def required_permissions() -> discord.Permissions:
    """What the bot does in a channel, and nothing more.

    View Channel and Read Message History: see the command and fetch the message a ``!style`` replies to;
    Send Messages (also in threads): status and results; Embed Links: the result and error embeds;
    Attach Files: the picture and the loss chart. Slash commands and their answers need no permission.
    """
    return discord.Permissions(
        view_channel=True,
        send_messages=True,
        send_messages_in_threads=True,
        embed_links=True,
        attach_files=True,
        read_message_history=True,
    )


def invite_url(application_id: int) -> str:
    return discord.utils.oauth_url(application_id, permissions=required_permissions(), scopes=SCOPES)

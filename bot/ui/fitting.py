"""Discord's size limits, and shortening that keeps a message whole rather than losing it.

Discord refuses a message whose content, embed or total is over its limits (HTTP 400, code 50035), and a refusal
that cannot be sent leaves the user hearing nothing: whole messages are cut to the limits here, as a last resort.
User text quoted inside a message is made short and inert first (``bot.quoting``).
"""

from __future__ import annotations

import discord

from bot.quoting import shorten

CONTENT_MAX = 2000
EMBED_TITLE_MAX = 256
EMBED_DESCRIPTION_MAX = 4096
EMBED_FIELD_NAME_MAX = 256
EMBED_FIELD_VALUE_MAX = 1024
EMBED_FOOTER_MAX = 2048
EMBED_AUTHOR_MAX = 256
EMBED_TOTAL_MAX = 6000
def content(text: str | None) -> str | None:
    return None if text is None else shorten(text, CONTENT_MAX)


def fit_embed(embed: discord.Embed) -> discord.Embed:
    """The embed within Discord's per-part and total limits (cut in place; the description gives way first)."""
    if embed.title:
        embed.title = shorten(embed.title, EMBED_TITLE_MAX)
    if embed.description:
        embed.description = shorten(embed.description, EMBED_DESCRIPTION_MAX)
    for i, f in enumerate(embed.fields):
        embed.set_field_at(i, name=shorten(f.name or "", EMBED_FIELD_NAME_MAX),
                           value=shorten(f.value or "", EMBED_FIELD_VALUE_MAX), inline=bool(f.inline))
    if embed.footer.text:
        embed.set_footer(text=shorten(embed.footer.text, EMBED_FOOTER_MAX), icon_url=embed.footer.icon_url)
    if embed.author.name:
        embed.set_author(name=shorten(embed.author.name, EMBED_AUTHOR_MAX), url=embed.author.url,
                         icon_url=embed.author.icon_url)
    over = len(embed) - EMBED_TOTAL_MAX
    if over > 0 and embed.description:
        embed.description = shorten(embed.description, max(1, len(embed.description) - over))
    while len(embed) > EMBED_TOTAL_MAX and embed.fields:
        embed.remove_field(len(embed.fields) - 1)
    return embed

"""Discord's size limits, and shortening that keeps a message whole rather than losing it.

Discord refuses a message whose content, embed or total is over its limits (HTTP 400, code 50035), and a refusal
that cannot be sent leaves the user hearing nothing. Everything the bot shows passes through here: user-supplied
text (filenames, argument values) is shortened in the middle, keeping its ends (a name's extension), and made inert
(no mentions, no breaking out of inline code); whole messages are cut to the limits as a last resort.
"""

from __future__ import annotations

import discord

CONTENT_MAX = 2000
EMBED_TITLE_MAX = 256
EMBED_DESCRIPTION_MAX = 4096
EMBED_FIELD_NAME_MAX = 256
EMBED_FIELD_VALUE_MAX = 1024
EMBED_FOOTER_MAX = 2048
EMBED_AUTHOR_MAX = 256
EMBED_TOTAL_MAX = 6000
ELLIPSIS = "…"

NAME_MAX = 80  # a filename shown in a message: enough to recognise it
VALUE_MAX = 60  # a value the user typed, quoted back to them


def shorten(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters: the start and the end kept, an ellipsis in the middle."""
    if len(text) <= limit:
        return text
    if limit <= 1:
        return ELLIPSIS[:limit]
    keep = limit - 1
    tail = keep // 3
    return text[: keep - tail] + ELLIPSIS + (text[-tail:] if tail else "")


def inert(text: str) -> str:
    """User text made harmless inside inline code: no backticks to break out, no mentions, no line breaks."""
    text = " ".join(text.split())
    text = text.replace("`", "'")
    return discord.utils.escape_mentions(text)


def name(filename: str, limit: int = NAME_MAX) -> str:
    """A filename to show between backticks: inert, and shortened keeping its extension."""
    return shorten(inert(filename), limit)


def value(text: str, limit: int = VALUE_MAX) -> str:
    """A value the user typed, to quote back between backticks."""
    return shorten(inert(text), limit)


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

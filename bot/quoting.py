"""User text quoted back in a message: shortened in the middle, keeping its ends (a name's extension), and made
inert (no mentions, no breaking out of inline code). Pure text; every part of the bot may import it."""

from __future__ import annotations

import discord

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

"""Paintings named in a ``!style`` message: ``!style <painting> [+ <painting>…] [preset] [strength] [colors]``.

Painting names may hold spaces, so the longest run of leading words that names a painting wins; a name can also be
quoted (``!style "Blue Period" fast``). Several paintings joined with ``+`` are blended. What follows is parsed as
the usual options. Names that would read as options are refused when a painting is added, so
``!style fast 2`` can never mean a painting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.gallery.store import PaintingCatalog, UnknownPainting, discord_safe, reads_as_options
from bot.requests.arguments import ArgumentError, StyleArgs, parse_style_args


@dataclass(frozen=True)
class PaintingRequest:
    paintings: tuple[str, ...]  # canonical names, in the order given; empty when none was named
    args: StyleArgs


_QUOTED = re.compile(r'("[^"]*"|“[^”]*”)')


def _split(text: str) -> list[str]:
    """Words, with a quoted name kept as one word and ``+`` always a word of its own."""
    words: list[str] = []
    for part in _QUOTED.split(text):
        if len(part) >= 2 and part[0] in "\"“" and part[-1] in "\"”":
            words.append(part[1:-1].strip())
            continue
        if any(q in part for q in "\"“”"):
            raise ArgumentError("A painting's name in quotes needs a closing quote.")
        words += part.replace("+", " + ").split()
    return words


async def parse_painting_request(
    text: str, catalog: PaintingCatalog, guild_id: int | None, *, one_image: bool, base: StyleArgs | None = None
) -> PaintingRequest:
    """Split the words after ``!style`` into paintings and options.

    Raises ArgumentError for options that make no sense, UnknownPainting when leading words name no painting but
    were surely meant to (``one_image``: the message brings only the picture to paint, or a painting's name is close).
    ``base``: what options left out become (the person's defaults).
    """
    words = _split(text)
    names: list[str] = []
    while words:
        found = await catalog.match_prefix(guild_id, words)
        if found is None:
            if names or (words[0] == "+"):
                raise await _unknown(catalog, guild_id, words)
            break
        name, used = found
        names.append(name)
        words = words[used:]
        if words and words[0] == "+":
            words = words[1:]
            if not words:
                raise ArgumentError("Name a painting after `+`.")
            continue
        break
    rest = " ".join(words)
    try:
        args = parse_style_args(rest, base=base)
    except ArgumentError as exc:
        if names:
            raise
        # Leading words that are neither options nor a painting: most likely a painting's name, mistyped.
        leading = []
        for word in words:
            if reads_as_options(word):
                break
            leading.append(word)
        unknown = await _unknown(catalog, guild_id, leading) if leading else None
        if unknown is None:
            raise
        if one_image or unknown.close:
            raise unknown from None
        raise ArgumentError(f"{exc} Or name a painting first (`/style-gallery list` shows them).") from None
    return PaintingRequest(tuple(names), args)


async def _unknown(catalog: PaintingCatalog, guild_id: int | None, words: list[str]) -> UnknownPainting:
    name = " ".join(w for w in words if w != "+")
    try:
        await catalog.resolve(guild_id, name)
    except UnknownPainting as exc:
        return exc
    return UnknownPainting(f"I could not read the painting's name in `{discord_safe(name)}`.")

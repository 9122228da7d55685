"""Paintings on hand: each server's own gallery (stored in SQLite) and the built-ins, found by name.

A gallery painting is checked like any input when it is added, then stored once, normalised: decoded, its long
side brought down to ``GALLERY_MAX_SIDE`` and saved as a high-quality JPEG, with a small thumbnail for the
contact sheet. Jobs get the decoded stored image from a small cache, so one painting reaches the engine as the same
pixels every time (the engine can then reuse its style targets).
"""

from __future__ import annotations

import asyncio
import difflib
import io
import re
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from PIL import Image

from bot.gallery.builtin import BUILTINS, builtin_image, find_builtin
from bot.requests.arguments import ArgumentError, parse_style_args
from bot.requests.policy import ImageInput
from bot.storage.db import Database
from nst_engine.images import ImageLimits, decode_image, human_bytes

PAINTING_NAME_MIN = 2
PAINTING_NAME_MAX = 32
# Letters and digits of any script, then also spaces and a little punctuation; nothing Discord would format
# (` * _ ~ | < > @ # :) so a name shows as written everywhere.
_NAME_RE = re.compile(r"^[^\W_](?:[^\W_]|[ '.&!?()+-])*$")
THUMB_SIDE = 256
STORE_QUALITY = 95
DECODED_CACHE = 16  # decoded gallery paintings kept in memory (about 3 MB each at 1024 px)

PaintingOrigin = Literal["built-in", "gallery"]  # where a painting comes from


class GalleryError(Exception):
    """A gallery request we refuse; the message is shown to the user as is."""


class UnknownPainting(GalleryError):
    """No painting by that name here; ``close`` holds similar names (suggested in the message)."""

    def __init__(self, message: str, *, close: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.close = tuple(close)


@dataclass(frozen=True)
class Painting:
    """A painting ready for a job: its decoded, normalised image and where it comes from."""

    name: str
    image: Image.Image
    source: PaintingOrigin
    key: str  # stable identity: "builtin:starry_night" or "gallery:<row id>"


@dataclass(frozen=True)
class GalleryEntry:
    id: int
    guild_id: int
    name: str
    width: int
    height: int
    nbytes: int
    added_by: int
    added_at: float


@dataclass(frozen=True)
class PreparedPainting:
    """An upload after checking and normalising, ready to store."""

    data: bytes  # JPEG
    thumb: bytes  # JPEG, long side THUMB_SIDE
    width: int
    height: int


def clean_name(text: str) -> str:
    """The name as stored and shown: surrounding space removed, inner runs of space collapsed to one."""
    return " ".join(text.split())


def name_key(name: str) -> str:
    """What makes two names the same painting: case-insensitive (Unicode casefold), spaces collapsed."""
    return clean_name(name).casefold()


def validate_name(text: str) -> str:
    """A valid gallery name from ``text``, or GalleryError saying what is wrong with it."""
    name = clean_name(text)
    if not PAINTING_NAME_MIN <= len(name) <= PAINTING_NAME_MAX:
        raise GalleryError(f"A painting's name must be {PAINTING_NAME_MIN} to {PAINTING_NAME_MAX} characters long "
                           f"(got {len(name)}).")
    if not _NAME_RE.match(name):
        raise GalleryError(
            "A painting's name may use letters, digits, spaces and ' . & ! ? ( ) + - and must start with a letter "
            f"or digit; `{discord_safe(name)}` does not."
        )
    if reads_as_options(name):
        raise GalleryError(
            f"`{name}` can't be a painting's name: it reads as a `!style` option (a preset, a strength, "
            "`colors` or `seed=`). Pick another name."
        )
    if find_builtin(name) is not None:
        raise GalleryError(f"`{name}` is a built-in painting already; pick another name.")
    return name


def reads_as_options(text: str) -> bool:
    """True when ``text`` parses entirely as ``!style`` options (a preset, a strength…): never a painting's name."""
    try:
        parse_style_args(text)
    except ArgumentError:
        return False
    return True


def discord_safe(text: str) -> str:
    """``text`` safe inside inline code in a Discord message (used to echo refused input)."""
    return text.replace("`", "'")[:64]


def prepare_upload(data: bytes, *, limits: ImageLimits, max_side: int) -> PreparedPainting:
    """Check ``data`` like any input (type, bytes, pixels, bombs) and normalise it for storage.

    Raises nst_engine's ImageError subclasses, whose messages say what is wrong.
    """
    image = decode_image(data, role="the painting", limits=limits)
    if max(image.size) > max_side:
        scale = max_side / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    stored = _jpeg(image, STORE_QUALITY)
    thumb = image.copy()
    thumb.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
    return PreparedPainting(data=stored, thumb=_jpeg(thumb, 85), width=image.width, height=image.height)


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    # 4:4:4 chroma: a painting's colours are what style transfer copies.
    image.save(buf, "JPEG", quality=quality, subsampling=0)
    return buf.getvalue()


class GalleryStore:
    """Each server's paintings in the bot's SQLite database, capped in count and stored bytes."""

    def __init__(self, db: Database, *, max_items: int, max_bytes: int) -> None:
        self.db = db
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._decoded: OrderedDict[int, Image.Image] = OrderedDict()

    async def add(self, guild_id: int, name: str, painting: PreparedPainting, *, added_by: int) -> GalleryEntry:
        """Store ``painting`` as ``name`` (validated); GalleryError when the name is taken or a cap is reached."""
        name = validate_name(name)
        size = len(painting.data)
        now = time.time()
        # One statement checks both caps and inserts, so two moderators adding at once cannot pass a cap.
        sql = (
            "INSERT INTO gallery (guild_id, name, name_key, image, thumb, width, height, added_by, added_at) "
            "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE "
            "(SELECT COUNT(*) FROM gallery WHERE guild_id = ?) < ? AND "
            "(SELECT COALESCE(SUM(LENGTH(image)), 0) FROM gallery WHERE guild_id = ?) + ? <= ?"
        )
        params = (
            guild_id, name, name_key(name), painting.data, painting.thumb, painting.width, painting.height,
            added_by, now, guild_id, self.max_items, guild_id, size, self.max_bytes,
        )
        try:
            cursor = await self.db.conn.execute(sql, params)
        except sqlite3.IntegrityError:
            await self.db.conn.rollback()
            existing = await self.get(guild_id, name)
            shown = existing.name if existing else name
            raise GalleryError(
                f"This server's gallery already has a painting called **{shown}** (names ignore case). "
                "Pick another name, or remove that one first."
            ) from None
        if cursor.rowcount != 1:
            await self.db.conn.rollback()
            count, used = await self.usage(guild_id)
            if count >= self.max_items:
                raise GalleryError(
                    f"This server's gallery is full: {count} of {self.max_items} paintings. "
                    "Remove one with `/style-admin gallery remove` first."
                )
            raise GalleryError(
                f"No room for this painting: it takes {human_bytes(size)} once stored and the gallery already "
                f"uses {human_bytes(used)} of its {human_bytes(self.max_bytes)}. Remove a painting first."
            )
        row_id = cursor.lastrowid
        await self.db.conn.commit()
        assert row_id is not None
        return GalleryEntry(row_id, guild_id, name, painting.width, painting.height, size, added_by, now)

    async def remove(self, guild_id: int, name: str) -> GalleryEntry | None:
        """Remove the painting called ``name``; returns what was removed, or None when there was none."""
        entry = await self.get(guild_id, name)
        if entry is None:
            return None
        await self.db.conn.execute("DELETE FROM gallery WHERE id = ?", (entry.id,))
        await self.db.conn.commit()
        self._decoded.pop(entry.id, None)
        return entry

    async def get(self, guild_id: int, name: str) -> GalleryEntry | None:
        rows = await self._entries("WHERE guild_id = ? AND name_key = ?", (guild_id, name_key(name)))
        return rows[0] if rows else None

    async def entries(self, guild_id: int) -> list[GalleryEntry]:
        """The server's paintings, in the order they were added."""
        return await self._entries("WHERE guild_id = ? ORDER BY added_at, id", (guild_id,))

    async def usage(self, guild_id: int) -> tuple[int, int]:
        """(paintings, stored bytes) of a server's gallery."""
        sql = "SELECT COUNT(*), COALESCE(SUM(LENGTH(image)), 0) FROM gallery WHERE guild_id = ?"
        async with self.db.conn.execute(sql, (guild_id,)) as cur:
            row = await cur.fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    async def thumbnails(self, guild_id: int) -> list[tuple[str, bytes]]:
        sql = "SELECT name, thumb FROM gallery WHERE guild_id = ? ORDER BY added_at, id"
        async with self.db.conn.execute(sql, (guild_id,)) as cur:
            rows = await cur.fetchall()
        return [(str(r[0]), bytes(r[1])) for r in rows]

    async def image(self, entry: GalleryEntry) -> Image.Image | None:
        """The stored painting, decoded (once: later calls get the same image object); None if removed."""
        cached = self._decoded.get(entry.id)
        if cached is not None:
            self._decoded.move_to_end(entry.id)
            return cached
        async with self.db.conn.execute("SELECT image FROM gallery WHERE id = ?", (entry.id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        # Our own normalised JPEG: the checks have been made when it was added.
        image = await asyncio.to_thread(decode_image, bytes(row[0]), role=f"painting {entry.name}")
        self._decoded[entry.id] = image
        while len(self._decoded) > DECODED_CACHE:
            self._decoded.popitem(last=False)
        return image

    async def _entries(self, where: str, params: tuple[object, ...]) -> list[GalleryEntry]:
        sql = f"SELECT id, guild_id, name, width, height, LENGTH(image), added_by, added_at FROM gallery {where}"
        async with self.db.conn.execute(sql, params) as cur:
            rows = await cur.fetchall()
        return [GalleryEntry(*row) for row in rows]


class PaintingCatalog:
    """Every painting a request can name: the built-ins everywhere, plus the server's gallery in a server."""

    def __init__(self, store: GalleryStore) -> None:
        self.store = store

    async def names(self, guild_id: int | None) -> list[str]:
        """Built-ins first, then the server's paintings in the order they were added."""
        names = [p.name for p in BUILTINS]
        if guild_id is not None:
            names += [e.name for e in await self.store.entries(guild_id)]
        return names

    async def suggest(self, guild_id: int | None, typed: str, *, limit: int = 25) -> list[str]:
        """Names for autocomplete: those starting with what was typed, then those containing it."""
        typed_key = name_key(typed)
        names = await self.names(guild_id)
        starts = [n for n in names if n.casefold().startswith(typed_key)]
        contains = [n for n in names if typed_key in n.casefold() and n not in starts]
        return (starts + contains)[:limit]

    async def exists(self, guild_id: int | None, name: str) -> bool:
        """Whether ``name`` is a painting here (cheap: nothing is decoded)."""
        if find_builtin(name) is not None:
            return True
        return guild_id is not None and await self.store.get(guild_id, name) is not None

    async def resolve(self, guild_id: int | None, name: str) -> Painting:
        """The painting called ``name`` here, decoded; UnknownPainting (with close names) when there is none."""
        builtin = find_builtin(name)
        if builtin is not None:
            image = await asyncio.to_thread(builtin_image, builtin)
            return Painting(builtin.name, image, "built-in", builtin.key)
        if guild_id is not None:
            entry = await self.store.get(guild_id, name)
            if entry is not None:
                stored = await self.store.image(entry)
                if stored is not None:
                    return Painting(entry.name, stored, "gallery", f"gallery:{entry.id}")
        text, close = await self._unknown_text(guild_id, name)
        raise UnknownPainting(text, close=close)

    async def match_prefix(self, guild_id: int | None, words: list[str]) -> tuple[str, int] | None:
        """The longest run of leading ``words`` that names a painting here: (name, words used), or None."""
        known = {name_key(n): n for n in await self.names(guild_id)}
        for n in range(len(words), 0, -1):
            found = known.get(name_key(" ".join(words[:n])))
            if found is not None:
                return found, n
        return None

    async def _unknown_text(self, guild_id: int | None, name: str) -> tuple[str, list[str]]:
        names = await self.names(guild_id)
        by_key = {n.casefold(): n for n in names}
        close = [by_key[c] for c in difflib.get_close_matches(name_key(name), list(by_key), n=3, cutoff=0.6)]
        where = "here" if guild_id is not None else "in direct messages (only the built-in paintings)"
        text = f"There is no painting called `{discord_safe(clean_name(name))}` {where}."
        if close:
            text += " Did you mean " + " or ".join(f"**{c}**" for c in close) + "?"
        return text + " `/style-gallery list` shows them all.", close


async def painting_sources(catalog: PaintingCatalog, guild_id: int | None, names: Sequence[str]) -> list[ImageInput]:
    """The named paintings as a request's decoded inputs (the job holds the pixels, so a painting removed while the
    job waits does not affect it). Raises UnknownPainting."""
    return [ImageInput(p.name, p.image) for p in [await catalog.resolve(guild_id, n) for n in names]]

"""Each person's own defaults for requests (preset, strength, colour keeping, a favourite painting), kept in the
database's ``user_defaults`` table until they reset them. Reads never fail a request: a database that cannot be read
gives "no defaults"; a write that fails raises DatabaseUnavailable with the user's message."""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass, fields, replace
from typing import Any

from bot.storage.db import Database, DatabaseUnavailable

log = logging.getLogger(__name__)

NOT_SAVED = (
    "Your defaults could not be saved: the bot's database cannot be written right now. Nothing was changed; please "
    "try again later."
)


@dataclass(frozen=True)
class UserDefaults:
    """One person's defaults; ``None`` means "not set" (the bot's own default applies)."""

    preset: str | None = None
    strength: float | None = None
    preserve_colors: bool | None = None
    painting: str | None = None  # a painting's name, as the person chose it

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))


class UserDefaultsStore:
    """The ``user_defaults`` table, on the bot's one database connection."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, user_id: int) -> UserDefaults:
        sql = "SELECT preset, strength, preserve_colors, painting FROM user_defaults WHERE user_id = ?"
        try:
            async with self.db.conn.execute(sql, (user_id,)) as cur:
                row = await cur.fetchone()
        except sqlite3.Error as exc:
            log.warning("reading the defaults of user %s failed (%s); using none", user_id, exc)
            return UserDefaults()
        if row is None:
            return UserDefaults()
        return UserDefaults(row[0], row[1], None if row[2] is None else bool(row[2]), row[3])

    async def update(self, user_id: int, **changes: Any) -> UserDefaults:
        """Set the given fields (others keep their value); returns the defaults now saved."""
        merged = replace(await self.get(user_id), **changes)
        await self._write(
            "INSERT INTO user_defaults (user_id, preset, strength, preserve_colors, painting, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(user_id) DO UPDATE SET preset = excluded.preset, "
            "strength = excluded.strength, preserve_colors = excluded.preserve_colors, painting = excluded.painting, "
            "updated_at = excluded.updated_at",
            (user_id, merged.preset, merged.strength,
             None if merged.preserve_colors is None else int(merged.preserve_colors), merged.painting, time.time()),
        )
        return merged

    async def reset(self, user_id: int) -> None:
        """Forget everything stored for ``user_id``."""
        await self._write("DELETE FROM user_defaults WHERE user_id = ?", (user_id,))

    async def _write(self, sql: str, params: tuple[object, ...]) -> None:
        conn = self.db.conn
        try:
            await conn.execute(sql, params)
            await conn.commit()
        except sqlite3.Error as exc:
            log.warning("saving user defaults failed: %s", exc)
            try:
                await conn.rollback()
            except sqlite3.Error:
                pass
            raise DatabaseUnavailable(NOT_SAVED) from exc

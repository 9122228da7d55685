"""SQLite storage (aiosqlite): per-server limits and the jobs accepted but not yet finished.

The schema is versioned: ``MIGRATIONS[i]`` moves a database from version ``i`` to ``i + 1``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from bot.limits import GuildLimits

MIGRATIONS: tuple[str, ...] = (
    # 1: server settings and the journal of accepted jobs.
    """
    CREATE TABLE guild_settings (
        guild_id INTEGER PRIMARY KEY,
        max_file_mb REAL,
        max_megapixels REAL,
        max_output_side INTEGER,
        allowed_presets TEXT,
        updated_by INTEGER,
        updated_at REAL
    );
    CREATE TABLE jobs (
        job_id TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL,
        guild_id INTEGER,
        channel_id INTEGER NOT NULL,
        state TEXT NOT NULL,
        created_at REAL NOT NULL,
        finished_at REAL
    );
    """,
    # 2: find unfinished jobs quickly at start-up.
    "CREATE INDEX jobs_state ON jobs(state);",
    # 3: each server's style gallery (bot/gallery.py): normalised JPEG + thumbnail, names unique ignoring case.
    """
    CREATE TABLE gallery (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        guild_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        name_key TEXT NOT NULL,
        image BLOB NOT NULL,
        thumb BLOB NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        added_by INTEGER NOT NULL,
        added_at REAL NOT NULL,
        UNIQUE (guild_id, name_key)
    );
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
OPEN_STATES = ("accepted", "running")


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    user_id: int
    guild_id: int | None
    channel_id: int
    state: str
    created_at: float


class Database:
    """A thin async wrapper; one connection for the whole bot."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn: aiosqlite.Connection | None = None

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("Database is not open")
        return self._conn

    async def open(self) -> None:
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = await aiosqlite.connect(self.path)
        await self._conn.execute("PRAGMA journal_mode=WAL")
        await self.migrate()

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def version(self) -> int:
        await self.conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        async with self.conn.execute("SELECT version FROM schema_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def migrate(self, target: int = SCHEMA_VERSION) -> int:
        """Apply the missing migrations, each in its own transaction; returns the new version."""
        current = await self.version()
        if current > SCHEMA_VERSION:
            raise RuntimeError(
                f"The database {self.path} has schema version {current}, newer than this bot "
                f"({SCHEMA_VERSION}); upgrade the bot or use another DATABASE_PATH."
            )
        for version in range(current, target):
            script = MIGRATIONS[version]
            # executescript commits first; wrap each step so a failure leaves the old version intact.
            await self.conn.executescript(
                f"BEGIN;\n{script}\nDELETE FROM schema_version;\n"
                f"INSERT INTO schema_version (version) VALUES ({version + 1});\nCOMMIT;"
            )
        return max(current, target)

    # -- server settings -------------------------------------------------------------------------------

    async def guild_limits(self, guild_id: int) -> GuildLimits:
        sql = (
            "SELECT max_file_mb, max_megapixels, max_output_side, allowed_presets "
            "FROM guild_settings WHERE guild_id = ?"
        )
        async with self.conn.execute(sql, (guild_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            return GuildLimits()
        presets = tuple(row[3].split(",")) if row[3] else None
        return GuildLimits(row[0], row[1], row[2], presets)

    async def set_guild_limits(self, guild_id: int, limits: GuildLimits, *, updated_by: int) -> None:
        presets = ",".join(limits.allowed_presets) if limits.allowed_presets is not None else None
        await self.conn.execute(
            "INSERT INTO guild_settings (guild_id, max_file_mb, max_megapixels, max_output_side, "
            "allowed_presets, updated_by, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(guild_id) DO UPDATE SET max_file_mb = excluded.max_file_mb, "
            "max_megapixels = excluded.max_megapixels, max_output_side = excluded.max_output_side, "
            "allowed_presets = excluded.allowed_presets, updated_by = excluded.updated_by, "
            "updated_at = excluded.updated_at",
            (
                guild_id,
                limits.max_file_mb,
                limits.max_megapixels,
                limits.max_output_side,
                presets,
                updated_by,
                time.time(),
            ),
        )
        await self.conn.commit()

    async def reset_guild_limits(self, guild_id: int) -> None:
        await self.conn.execute("DELETE FROM guild_settings WHERE guild_id = ?", (guild_id,))
        await self.conn.commit()

    # -- job journal -----------------------------------------------------------------------------------

    async def record_job(self, job_id: str, *, user_id: int, guild_id: int | None, channel_id: int) -> None:
        await self.conn.execute(
            "INSERT OR REPLACE INTO jobs (job_id, user_id, guild_id, channel_id, state, created_at) "
            "VALUES (?, ?, ?, ?, 'accepted', ?)",
            (job_id, user_id, guild_id, channel_id, time.time()),
        )
        await self.conn.commit()

    async def set_job_state(self, job_id: str, state: str) -> None:
        finished = None if state in OPEN_STATES else time.time()
        await self.conn.execute(
            "UPDATE jobs SET state = ?, finished_at = ? WHERE job_id = ?", (state, finished, job_id)
        )
        await self.conn.commit()

    async def unfinished_jobs(self) -> list[JobRecord]:
        sql = (
            "SELECT job_id, user_id, guild_id, channel_id, state, created_at FROM jobs "
            "WHERE state IN (?, ?) ORDER BY created_at"
        )
        async with self.conn.execute(sql, OPEN_STATES) as cur:
            rows = await cur.fetchall()
        return [JobRecord(*row) for row in rows]

    async def prune_jobs(self, older_than: float) -> None:
        """Forget finished jobs older than ``older_than`` seconds, so the table stays small."""
        await self.conn.execute(
            "DELETE FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ?", (time.time() - older_than,)
        )
        await self.conn.commit()

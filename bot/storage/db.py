"""SQLite storage (aiosqlite): per-server limits and the jobs accepted but not yet finished.

The schema is versioned: ``MIGRATIONS[i]`` moves a database from version ``i`` to ``i + 1``.

Opening checks the path the way an operator may have got it wrong (a folder that cannot be written, a file
where a folder should be, a garbage or newer file...) and raises ``DatabaseOpenError`` with one line that names
the path and the fix. Once running, a database that turns locked or read-only does not stop the bot: settings
reads fall back to the bot-wide defaults and journal writes are skipped, each with a (rate-limited) warning.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from bot.storage.limits import GuildLimits

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
    # 3: each server's style gallery (bot/gallery/): normalised JPEG + thumbnail, names unique ignoring case.
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
    # 4: where a job's status message is, so after a restart it can say what happened (and lose its Cancel button).
    """
    ALTER TABLE jobs ADD COLUMN status_channel_id INTEGER;
    ALTER TABLE jobs ADD COLUMN status_message_id INTEGER;
    """,
    # 5: a server's limits on animations.
    """
    ALTER TABLE guild_settings ADD COLUMN max_frames INTEGER;
    ALTER TABLE guild_settings ADD COLUMN max_animation_megapixels REAL;
    """,
    # 6: each person's own defaults for requests (bot/storage/user_defaults.py); NULL = not set.
    """
    CREATE TABLE user_defaults (
        user_id INTEGER PRIMARY KEY,
        preset TEXT,
        strength REAL,
        preserve_colors INTEGER,
        painting TEXT,
        updated_at REAL NOT NULL
    );
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
# A job's life in the journal: accepted -> running -> delivering (its result is being posted) -> done, or
# interrupted / failed. The open states are what a restart must look at; 'delivering' means Discord may already show
# the result, so the restart checks there before telling anyone the job was lost.
OPEN_STATES = ("accepted", "running", "delivering")
DEFAULT_RETENTION = 30 * 86400.0  # seconds finished jobs stay in the journal
PRUNE_EVERY = 3600.0  # seconds between prunes while running
WARN_EVERY = 60.0  # seconds between repeated warnings about a failing database

log = logging.getLogger(__name__)


class DatabaseOpenError(RuntimeError):
    """The database cannot be used at start-up; the message is one line naming the path and the fix."""


class DatabaseUnavailable(RuntimeError):
    """A write the user asked for (server settings) failed; the message is for the user."""


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    user_id: int
    guild_id: int | None
    channel_id: int
    state: str
    created_at: float
    status_channel_id: int | None = None
    status_message_id: int | None = None


class Database:
    """A thin async wrapper; one connection for the whole bot.

    ``retention``: seconds a finished job stays in the journal (pruned at open and hourly); ``busy_timeout``:
    seconds a statement waits for another process's lock before it fails.
    """

    def __init__(
        self, path: str | Path, *, retention: float = DEFAULT_RETENTION, busy_timeout: float = 2.0
    ) -> None:
        self.path = Path(path)
        self.retention = retention
        self.busy_timeout = busy_timeout
        self._conn: aiosqlite.Connection | None = None
        self._last_prune = 0.0
        self._last_warning = -WARN_EVERY

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("Database is not open")
        return self._conn

    async def open(self) -> None:
        """Open (creating folder and file), migrate and prove it writable; raises DatabaseOpenError."""
        memory = str(self.path) == ":memory:"
        if not memory:
            problem = check_path(self.path)
            if problem:
                raise DatabaseOpenError(problem)
        try:
            self._conn = await aiosqlite.connect(self.path, timeout=self.busy_timeout)
            await self._conn.execute("PRAGMA journal_mode=WAL")
            await self.migrate()
            # Opening alone proves little: SQLite silently opens a file it may not write read-only.
            await self._conn.execute("BEGIN IMMEDIATE")
            await self._conn.execute("UPDATE schema_version SET version = version")
            await self._conn.rollback()
        except DatabaseOpenError:
            await self.close()
            raise
        except sqlite3.Error as exc:
            await self.close()
            raise DatabaseOpenError(explain_sqlite_error(self.path, exc)) from exc
        await self.prune_jobs(self.retention)

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
            raise DatabaseOpenError(
                f"The database {self.path} has schema version {current}, newer than this bot "
                f"({SCHEMA_VERSION}): a newer version of the bot wrote it. Upgrade the bot, or set DATABASE_PATH "
                "to another file."
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
        """A server's settings; the bot-wide defaults (with a warning) when the database cannot be read."""
        sql = (
            "SELECT max_file_mb, max_megapixels, max_output_side, allowed_presets, max_frames, "
            "max_animation_megapixels FROM guild_settings WHERE guild_id = ?"
        )
        try:
            async with self.conn.execute(sql, (guild_id,)) as cur:
                row = await cur.fetchone()
        except sqlite3.Error as exc:
            self._warn(f"reading the settings of server {guild_id}; using the bot-wide defaults", exc)
            return GuildLimits()
        if row is None:
            return GuildLimits()
        presets = tuple(row[3].split(",")) if row[3] else None
        return GuildLimits(row[0], row[1], row[2], presets, row[4], row[5])

    async def set_guild_limits(self, guild_id: int, limits: GuildLimits, *, updated_by: int) -> None:
        presets = ",".join(limits.allowed_presets) if limits.allowed_presets is not None else None
        await self._save_settings(
            "INSERT INTO guild_settings (guild_id, max_file_mb, max_megapixels, max_output_side, "
            "allowed_presets, max_frames, max_animation_megapixels, updated_by, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(guild_id) DO UPDATE SET max_file_mb = excluded.max_file_mb, "
            "max_megapixels = excluded.max_megapixels, max_output_side = excluded.max_output_side, "
            "allowed_presets = excluded.allowed_presets, max_frames = excluded.max_frames, "
            "max_animation_megapixels = excluded.max_animation_megapixels, updated_by = excluded.updated_by, "
            "updated_at = excluded.updated_at",
            (
                guild_id,
                limits.max_file_mb,
                limits.max_megapixels,
                limits.max_output_side,
                presets,
                limits.max_frames,
                limits.max_animation_megapixels,
                updated_by,
                time.time(),
            ),
        )

    async def reset_guild_limits(self, guild_id: int) -> None:
        await self._save_settings("DELETE FROM guild_settings WHERE guild_id = ?", (guild_id,))

    async def _save_settings(self, sql: str, params: tuple[object, ...]) -> None:
        try:
            await self._write(sql, params)
        except sqlite3.Error as exc:
            self._warn("saving server settings", exc)
            raise DatabaseUnavailable(
                "The settings could not be saved: the bot's database cannot be written right now. Nothing was "
                "changed; please try again later (the bot's owner can see why in its log)."
            ) from exc

    # -- job journal -----------------------------------------------------------------------------------

    # The journal is best effort: a job runs and is delivered even when it cannot be written down.

    async def record_job(self, job_id: str, *, user_id: int, guild_id: int | None, channel_id: int) -> None:
        await self._journal(
            "recording job " + job_id,
            "INSERT OR REPLACE INTO jobs (job_id, user_id, guild_id, channel_id, state, created_at) "
            "VALUES (?, ?, ?, ?, 'accepted', ?)",
            (job_id, user_id, guild_id, channel_id, time.time()),
        )

    async def set_job_state(self, job_id: str, state: str) -> None:
        finished = None if state in OPEN_STATES else time.time()
        await self._journal(
            f"marking job {job_id} {state}",
            "UPDATE jobs SET state = ?, finished_at = ? WHERE job_id = ?", (state, finished, job_id),
        )
        if finished is not None and time.monotonic() - self._last_prune > PRUNE_EVERY:
            await self.prune_jobs(self.retention)

    async def set_job_status_message(self, job_id: str, *, channel_id: int, message_id: int) -> None:
        """Remember the job's status message (edited after a restart to say what happened)."""
        await self._journal(
            f"noting the status message of job {job_id}",
            "UPDATE jobs SET status_channel_id = ?, status_message_id = ? WHERE job_id = ?",
            (channel_id, message_id, job_id),
        )

    async def unfinished_jobs(self) -> list[JobRecord]:
        sql = (
            "SELECT job_id, user_id, guild_id, channel_id, state, created_at, status_channel_id, status_message_id "
            f"FROM jobs WHERE state IN ({', '.join('?' * len(OPEN_STATES))}) ORDER BY created_at"
        )
        try:
            async with self.conn.execute(sql, OPEN_STATES) as cur:
                rows = await cur.fetchall()
        except sqlite3.Error as exc:
            self._warn("reading the journal of unfinished jobs", exc)
            return []
        return [JobRecord(*row) for row in rows]

    async def prune_jobs(self, older_than: float) -> None:
        """Forget finished jobs older than ``older_than`` seconds, so the table stays small."""
        self._last_prune = time.monotonic()
        await self._journal(
            "pruning old jobs",
            "DELETE FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ?", (time.time() - older_than,),
        )

    # -- helpers ---------------------------------------------------------------------------------------

    async def _journal(self, what: str, sql: str, params: tuple[object, ...]) -> None:
        try:
            await self._write(sql, params)
        except sqlite3.Error as exc:
            self._warn(what, exc)

    async def _write(self, sql: str, params: tuple[object, ...]) -> None:
        """One statement in its own transaction; rolled back on failure so the connection stays usable."""
        try:
            await self.conn.execute(sql, params)
            await self.conn.commit()
        except sqlite3.Error:
            try:
                await self.conn.rollback()
            except sqlite3.Error:
                pass
            raise

    def _warn(self, what: str, exc: sqlite3.Error) -> None:
        now = time.monotonic()
        if now - self._last_warning < WARN_EVERY:
            log.debug("database %s failed %s: %s", self.path, what, exc)
            return
        self._last_warning = now
        log.warning("the database %s failed %s (%s); the bot keeps serving without it", self.path, what, exc)


def check_path(path: Path) -> str | None:
    """What is wrong with ``path`` as a place for the database (folder created when missing), or None."""
    hint = "or set DATABASE_PATH to another place"
    if path.is_dir():
        return f"DATABASE_PATH {path} is a folder, not a file: set it to a file inside, e.g. {path / 'bot.sqlite3'}."
    parent = path.parent
    for folder in (parent, *parent.parents):
        if folder.exists():
            if not folder.is_dir():
                return (
                    f"Cannot create the database {path}: {folder} is a file, not a folder. Move that file away, "
                    f"{hint}."
                )
            break
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return (
            f"Cannot create the folder {parent} for the database {path} ({exc.strerror or exc}): create it and "
            f"let the bot's user (uid {os.getuid()}) write there, {hint}."
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        return (
            f"The folder {parent} of the database {path} is not writable by the bot's user (uid {os.getuid()}); "
            f"SQLite needs to create its journal files there. Make it writable (chown/chmod), {hint}."
        )
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return (
            f"The database {path} cannot be read and written by the bot's user (uid {os.getuid()}). Fix its owner "
            f"or mode (chown/chmod; `lsattr` shows an immutable flag, `chattr -i` clears it), {hint}."
        )
    return None


def explain_sqlite_error(path: Path, exc: sqlite3.Error) -> str:
    """One line for an error SQLite raised while opening ``path``."""
    text = str(exc)
    if isinstance(exc, sqlite3.DatabaseError) and ("not a database" in text or "malformed" in text):
        return (
            f"The file {path} is not a usable SQLite database ({text}). Move it away (the bot then creates a new "
            "one) or set DATABASE_PATH to the right file."
        )
    if "readonly" in text or "read-only" in text:
        return (
            f"The database {path} is read-only ({text}): it may be immutable (`lsattr`; `chattr -i` clears it), on "
            "a read-only filesystem, or owned by another user. Make it writable, or set DATABASE_PATH to another "
            "place."
        )
    if "locked" in text or "busy" in text:
        return (
            f"The database {path} is locked by another process ({text}): is another copy of the bot running on "
            "it? Stop it, or set DATABASE_PATH to another file."
        )
    return f"Cannot use the database {path} ({text}); check the file and its folder, or set DATABASE_PATH."


def preflight(path: str | Path, *, retention: float = DEFAULT_RETENTION) -> str | None:
    """Open, migrate and close the database once, before the bot logs in: the problem in one line, or None."""

    async def attempt() -> None:
        db = Database(path, retention=retention)
        try:
            await db.open()
        finally:
            await db.close()

    try:
        asyncio.run(attempt())
    except DatabaseOpenError as exc:
        return str(exc)
    return None

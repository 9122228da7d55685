import sqlite3

import pytest

from bot.storage.db import MIGRATIONS, SCHEMA_VERSION, Database
from bot.storage.limits import GuildLimits


async def test_fresh_database_is_migrated_to_the_latest_version(tmp_path):
    db = Database(tmp_path / "sub" / "bot.sqlite3")
    await db.open()
    try:
        assert await db.version() == SCHEMA_VERSION == len(MIGRATIONS)
    finally:
        await db.close()


async def test_migrates_an_old_database_step_by_step(tmp_path):
    path = tmp_path / "old.sqlite3"
    db = Database(path)
    db._conn = None
    await db.open()
    await db.close()
    # Build a version-1 database by hand (as an older bot would have left it), then open it.
    path.unlink()
    con = sqlite3.connect(path)
    con.executescript(MIGRATIONS[0] + "CREATE TABLE schema_version (version INTEGER NOT NULL);"
                      "INSERT INTO schema_version VALUES (1);")
    con.execute("INSERT INTO guild_settings (guild_id, max_file_mb) VALUES (7, 2.0)")
    con.commit()
    con.close()
    db = Database(path)
    await db.open()
    try:
        assert await db.version() == SCHEMA_VERSION
        assert (await db.guild_limits(7)).max_file_mb == 2.0  # data kept across the migration
        async with db.conn.execute("SELECT name FROM sqlite_master WHERE type='index'") as cur:
            assert ("jobs_state",) in await cur.fetchall()
    finally:
        await db.close()


async def test_refuses_a_newer_schema(tmp_path):
    path = tmp_path / "new.sqlite3"
    con = sqlite3.connect(path)
    con.executescript("CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (99);")
    con.close()
    db = Database(path)
    with pytest.raises(RuntimeError, match="newer than this bot"):
        await db.open()
    await db.close()


async def test_guild_limits_persist_across_reopen(tmp_path):
    path = tmp_path / "bot.sqlite3"
    db = Database(path)
    await db.open()
    assert await db.guild_limits(1) == GuildLimits()
    await db.set_guild_limits(1, GuildLimits(max_file_mb=3, allowed_presets=("fast",)), updated_by=9)
    await db.set_guild_limits(1, GuildLimits(max_file_mb=4, max_output_side=256), updated_by=9)
    await db.close()
    db = Database(path)
    await db.open()
    try:
        assert await db.guild_limits(1) == GuildLimits(max_file_mb=4, max_output_side=256)
        await db.reset_guild_limits(1)
        assert await db.guild_limits(1) == GuildLimits()
    finally:
        await db.close()


async def test_job_journal_keeps_unfinished_jobs_for_the_next_start(tmp_path):
    path = tmp_path / "bot.sqlite3"
    db = Database(path)
    await db.open()
    await db.record_job("a", user_id=1, guild_id=5, channel_id=10)
    await db.record_job("b", user_id=2, guild_id=None, channel_id=11)
    await db.record_job("c", user_id=3, guild_id=5, channel_id=10)
    await db.record_job("d", user_id=4, guild_id=5, channel_id=10)
    await db.set_job_state("b", "running")
    await db.set_job_state("c", "done")
    await db.set_job_state("d", "delivering")  # its result may be on Discord: the next start looks there
    await db.close()
    db = Database(path)
    await db.open()
    try:
        open_jobs = await db.unfinished_jobs()
        assert [(j.job_id, j.user_id, j.guild_id, j.channel_id, j.state) for j in open_jobs] == [
            ("a", 1, 5, 10, "accepted"),
            ("b", 2, None, 11, "running"),
            ("d", 4, 5, 10, "delivering"),
        ]
        await db.set_job_state("a", "interrupted")
        await db.set_job_state("d", "done")
        assert [j.job_id for j in await db.unfinished_jobs()] == ["b"]
        await db.prune_jobs(older_than=-1)
        async with db.conn.execute("SELECT job_id FROM jobs ORDER BY job_id") as cur:
            assert await cur.fetchall() == [("b",)]
    finally:
        await db.close()

"""A database that turns locked or read-only while the bot runs, and pruning of the job journal."""

from __future__ import annotations

import logging
import sqlite3
import time

import pytest

from bot.storage.db import Database, DatabaseUnavailable
from bot.storage.limits import GuildLimits


@pytest.fixture
async def db(tmp_path):
    d = Database(tmp_path / "bot.sqlite3", busy_timeout=0.2)
    await d.open()
    await d.set_guild_limits(1, GuildLimits(max_file_mb=2.0), updated_by=9)
    try:
        yield d
    finally:
        await d.close()


async def test_locked_database_keeps_the_bot_serving(db, caplog):
    other = sqlite3.connect(db.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    other.execute("INSERT INTO jobs (job_id, user_id, channel_id, state, created_at) VALUES ('x', 1, 1, 'done', 0)")
    try:
        with caplog.at_level(logging.WARNING, logger="bot.storage.db"):
            await db.record_job("j1", user_id=1, guild_id=1, channel_id=2)  # skipped, not raised
            await db.set_job_state("j1", "running")
            assert (await db.guild_limits(1)).max_file_mb == 2.0  # WAL: reads still work
            with pytest.raises(DatabaseUnavailable, match="could not be saved"):
                await db.set_guild_limits(1, GuildLimits(max_file_mb=1.0), updated_by=9)
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "locked" in warnings[0].getMessage()  # rate-limited: one, not four
        assert str(db.path) in warnings[0].getMessage()
    finally:
        other.execute("ROLLBACK")
        other.close()
    # The lock is gone: the same connection works again (no transaction left dangling).
    await db.record_job("j2", user_id=1, guild_id=1, channel_id=2)
    assert [j.job_id for j in await db.unfinished_jobs()] == ["j2"]
    await db.set_guild_limits(1, GuildLimits(max_file_mb=1.0), updated_by=9)
    assert (await db.guild_limits(1)).max_file_mb == 1.0


async def test_read_only_database_while_running(db, caplog):
    await db.conn.execute("PRAGMA query_only = ON")  # as if the file had turned read-only under us
    with caplog.at_level(logging.WARNING, logger="bot.storage.db"):
        await db.record_job("j1", user_id=1, guild_id=1, channel_id=2)
        with pytest.raises(DatabaseUnavailable):
            await db.reset_guild_limits(1)
    assert "readonly" in caplog.text
    assert (await db.guild_limits(1)).max_file_mb == 2.0


async def test_unreadable_settings_fall_back_to_the_bot_wide_defaults(db, caplog):
    other = sqlite3.connect(db.path)
    other.execute("DROP TABLE guild_settings")  # e.g. a half-restored backup
    other.commit()
    other.close()
    with caplog.at_level(logging.WARNING, logger="bot.storage.db"):
        assert await db.guild_limits(1) == GuildLimits()
        assert await db.unfinished_jobs() == []
    assert "using the bot-wide defaults" in caplog.text


async def test_finished_jobs_are_pruned_after_the_retention_period(tmp_path):
    path = tmp_path / "bot.sqlite3"
    db = Database(path, retention=3600)
    await db.open()
    for job_id, state in (("old-done", "done"), ("old-failed", "failed"), ("new-done", "done"), ("open", "running")):
        await db.record_job(job_id, user_id=1, guild_id=None, channel_id=1)
        await db.set_job_state(job_id, state)
    # Two finished two hours ago, one just now; an unfinished job is never pruned, however old.
    await db.conn.execute("UPDATE jobs SET finished_at = ?, created_at = ? WHERE job_id LIKE 'old-%'",
                          (time.time() - 7200, time.time() - 7200))
    await db.conn.execute("UPDATE jobs SET created_at = ? WHERE job_id = 'open'", (time.time() - 10 * 86400,))
    await db.conn.commit()
    await db.close()

    db = Database(path, retention=3600)
    await db.open()  # prunes at start-up
    try:
        async with db.conn.execute("SELECT job_id FROM jobs ORDER BY job_id") as cur:
            assert [r[0] for r in await cur.fetchall()] == ["new-done", "open"]
    finally:
        await db.close()


async def test_pruning_runs_again_while_the_bot_runs(tmp_path, monkeypatch):
    db = Database(tmp_path / "bot.sqlite3", retention=60)
    await db.open()
    try:
        await db.record_job("a", user_id=1, guild_id=None, channel_id=1)
        await db.set_job_state("a", "done")
        await db.conn.execute("UPDATE jobs SET finished_at = ? WHERE job_id = 'a'", (time.time() - 120,))
        await db.conn.commit()
        monkeypatch.setattr("bot.storage.db.PRUNE_EVERY", 0.0)  # an hour has passed since the last prune
        await db.record_job("b", user_id=1, guild_id=None, channel_id=1)
        await db.set_job_state("b", "done")
        async with db.conn.execute("SELECT job_id FROM jobs") as cur:
            assert [r[0] for r in await cur.fetchall()] == ["b"]
    finally:
        await db.close()


async def test_the_status_message_of_an_unfinished_job_is_remembered(tmp_path):
    path = tmp_path / "bot.sqlite3"
    db = Database(path)
    await db.open()
    await db.record_job("a", user_id=1, guild_id=5, channel_id=10)
    await db.record_job("b", user_id=2, guild_id=5, channel_id=10)
    await db.set_job_status_message("a", channel_id=11, message_id=99)
    await db.close()
    db = Database(path)
    await db.open()
    try:
        jobs = {j.job_id: j for j in await db.unfinished_jobs()}
        assert (jobs["a"].status_channel_id, jobs["a"].status_message_id) == (11, 99)
        assert (jobs["b"].status_channel_id, jobs["b"].status_message_id) == (None, None)
    finally:
        await db.close()


def test_settings_that_cannot_be_saved_get_a_clear_answer():
    from discord import app_commands

    from bot.requests.failures import describe_command_error

    error = app_commands.CommandInvokeError.__new__(app_commands.CommandInvokeError)
    error.original = DatabaseUnavailable("The settings could not be saved: the bot's database cannot be written.")
    assert describe_command_error(error) == str(error.original)

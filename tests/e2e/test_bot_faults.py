"""Faults: an expired interaction token, Discord refusing an upload, a crashed worker, a restart mid-job."""

from __future__ import annotations

import os
import signal

from bot.storage.db import Database
from tests.e2e.bot_harness import (
    E2E,
    embed_text,
    fake,
    images,
    is_error,
    is_result,
    make_settings,
    pool,
    running_bot,
)

pytestmark = E2E
__all__ = ["fake", "pool"]  # fixtures

SLOW = {"size": 48, "iterations": 400}  # runs long enough to be interrupted
MEDIUM = {"size": 48, "iterations": 12}  # a few seconds


async def test_result_after_the_token_expired_goes_to_the_channel(fake, tmp_path, pool):
    async with running_bot(fake, make_settings(tmp_path), pool, engine_overrides=MEDIUM):
        c, s = images(1)
        record = await fake.invoke_slash("style", {"content": c, "style": s})
        await fake.wait_for_ack(record, timeout=3)
        fake.config.token_ttl = 0.0  # from now on, as if the job had outlived Discord's 15 minutes
        result = await fake.wait_for_message(fake.channel, is_result, timeout=60)
        assert result not in record.followups and result.interaction_id is None
        assert fake.member in result.mentions  # pinged, as Discord records it
        assert any(code == 50027 for code in [r.error_code for r in fake.requests])  # the 401 was seen


async def test_the_bots_own_token_clock_sends_a_late_result_to_the_channel(fake, tmp_path, pool):
    """Rule: the bot stops using an interaction token before Discord's 15 minutes are up (its own clock, from the
    interaction's creation time), so a long job's result never races the expiry. The interaction arrives 14.5
    minutes old: the token still works at Discord (no 401 is ever answered), yet the bot must not use it."""
    async with running_bot(fake, make_settings(tmp_path), pool):
        c, s = images(8)
        record = await fake.invoke_slash("style", {"content": c, "style": s}, age=14.5 * 60)
        await fake.wait_for_ack(record, timeout=3)
        result = await fake.wait_for_message(fake.channel, lambda m: is_result(m) or is_error(m), timeout=60)
        assert is_result(result), embed_text(result)
        assert result not in record.followups and result.interaction_id is None
        assert fake.member in result.mentions
        assert record.token_age < fake.config.token_ttl  # Discord would still have taken the token
        webhook_calls = [r for r in fake.requests if r.path.startswith("/webhooks/")]
        assert webhook_calls == [] and not any(r.error_code == 50027 for r in fake.requests)


async def test_upload_over_the_limit_is_shrunk_or_explained(fake, tmp_path, pool):
    async with running_bot(fake, make_settings(tmp_path), pool):
        # discord.py believes 10 MiB; Discord answers 413 above 6000 bytes: drop the chart and re-encode.
        fake.guild.upload_limit = 6000
        await fake.post_message(fake.channel, fake.member, "!style", attachments=images(2))
        result = await fake.wait_for_message(fake.channel, is_result, timeout=60)
        assert sum(a.size for a in result.attachments) <= 6000
        assert [a.filename.split(".")[0] for a in result.attachments] == ["styled"]
        assert "re-encoded smaller to fit this server's upload limit" in str(result.embeds)
        assert any(r.status == 413 for r in fake.requests)

        # Far too small for any picture: the user is told, not left waiting.
        fake.guild.upload_limit = 300
        await fake.post_message(fake.channel, fake.member, "!style", attachments=images(3))
        msg = await fake.wait_for_message(fake.channel, is_error, timeout=60)
        assert "upload limit" in embed_text(msg)


async def test_worker_crash_is_reported_and_the_next_job_works(fake, tmp_path, pool):
    settings = make_settings(tmp_path)
    async with running_bot(fake, settings, pool, engine_overrides=SLOW) as bot:
        user_msg = await fake.post_message(fake.channel, fake.member, "!style", attachments=images(4))
        await fake.wait_for_message(fake.channel, lambda m: m.reference_id == user_msg.id and "%" in m.content,
                                    timeout=30)
        [job] = bot.jobs.active.values()
        os.kill(job.handle.worker_pid, signal.SIGKILL)
        msg = await fake.wait_for_message(fake.channel, is_error, timeout=30)
        assert "The worker process running your job crashed" in embed_text(msg)
    async with running_bot(fake, settings, pool):
        await fake.post_message(fake.channel, fake.admin, "!style", attachments=images(5))
        await fake.wait_for_message(fake.channel, is_result, timeout=90)


async def test_jobs_in_flight_at_shutdown_are_reported_after_restart(fake, tmp_path, pool):
    settings = make_settings(tmp_path)
    async with running_bot(fake, settings, pool, engine_overrides=SLOW) as bot:
        running = await fake.post_message(fake.channel, fake.member, "!style", attachments=images(6))
        await fake.wait_for_message(fake.channel, lambda m: m.reference_id == running.id and "%" in m.content,
                                    timeout=30)
        waiting = await fake.post_message(fake.other_channel, fake.admin, "!style", attachments=images(7))
        await fake.wait_for_message(fake.other_channel,
                                    lambda m: m.reference_id == waiting.id and "you are next" in m.content)
        assert len(bot.jobs.active) == 2
    # The bot is stopped: both jobs stay open in the journal.
    db = Database(settings.database_path)
    await db.open()
    assert {(j.user_id, j.channel_id) for j in await db.unfinished_jobs()} == {
        (fake.member.id, fake.channel.id), (fake.admin.id, fake.other_channel.id)
    }
    await db.close()

    async with running_bot(fake, settings, pool) as bot:
        for user, channel in ((fake.member, fake.channel), (fake.admin, fake.other_channel)):
            msg = await fake.wait_for_message(
                channel, lambda m, user=user: m.content.startswith(user.mention) and "restarted while" in m.content,
                timeout=10, since=0,
            )
            assert "please send it again" in msg.content.lower()
            assert msg.mentions == [user]  # the notice pings its user, and only them
        await fake.wait_for(lambda: not bot._background, timeout=5, what="the restart notices are done")
    db = Database(settings.database_path)
    await db.open()
    assert await db.unfinished_jobs() == []  # told once, not at every start
    await db.close()

"""The last ways a result or an answer could be lost (issue #13), each proven against the fake Discord."""

from __future__ import annotations

import asyncio
import logging

from bot.storage.db import Database
from tests.e2e.bot_harness import (
    E2E,
    embed_text,
    fake,
    images,
    is_error,
    is_result,
    make_settings,
    png,
    pool,
    running_bot,
)
from tests.fakediscord import FileSpec, Perm

pytestmark = E2E
__all__ = ["fake", "pool"]  # fixtures


def deny(fake, permission: int) -> None:
    for role in (fake.guild.everyone_role, fake.bot_role):
        role.permissions &= ~permission


async def test_a_result_discord_refuses_is_kept_and_sent_later(fake, tmp_path, pool):
    async with running_bot(fake, make_settings(tmp_path, delivery_retry_seconds=0.5), pool):
        # Discord is down for the result's first five uploads: discord.py's own five tries (about 16 s) all fail.
        c, s = images(1)
        record = await fake.invoke_slash("style", {"content": c, "style": s})
        await fake.wait_for_ack(record, timeout=5)
        fake.server_error(r"^POST /webhooks/", count=5, status=503)
        result = await fake.wait_for_message(fake.channel, is_result, timeout=120)
        assert result in record.followups
        refused = [r for r in fake.requests if r.status == 503]
        assert len(refused) == 5
        told = [r for r in fake.requests if r.method == "PATCH" and "it will come here" in str((r.json or {}).get("content"))]
        assert len(told) == 1 and "HTTP 503" in told[0].json["content"]  # told once, with the reason
        await fake.wait_for(lambda: "Done" in (record.original.content or ""), timeout=10, what="status says done")


async def test_channel_and_dms_both_refusing_is_logged_and_shown_in_the_status(fake, tmp_path, pool, caplog):
    deny(fake, Perm.ATTACH_FILES)  # the status can be posted, the result cannot
    fake.member.accepts_dms = False
    with caplog.at_level(logging.WARNING, logger="bot.ui.reporters"):
        async with running_bot(fake, make_settings(tmp_path), pool):
            user_msg = await fake.post_message(fake.channel, fake.member, "!style", attachments=images(2))
            status = await fake.wait_for_message(
                fake.channel, lambda m: m.reference_id == user_msg.id and is_error(m), timeout=90)
            text = embed_text(status)
            assert "**Attach Files** permission" in text and "direct messages are closed" in text, text
            assert "Something went wrong" not in text
    assert any("DMs refuse the bot" in r.getMessage() and "50007" in r.getMessage() for r in caplog.records)
    assert not any(m.channel.is_dm for m in fake.bot_messages())


async def test_a_download_in_flight_at_a_stop_is_told_after_the_restart(fake, tmp_path, pool):
    settings = make_settings(tmp_path, download_timeout=60)
    stalled = fake.make_attachment(fake.channel, FileSpec("stalled.png", png(seed=3)))
    fake.cdn_fault(stalled, "slow", delay=60)
    style = fake.make_attachment(fake.channel, FileSpec("style.png", png(seed=4)))
    async with running_bot(fake, settings, pool):
        user_msg = await fake.post_message(fake.channel, fake.member, "!style", attachments=[stalled, style])
        status = await fake.wait_for_message(
            fake.channel, lambda m: m.reference_id == user_msg.id and "Downloading" in m.content, timeout=30)
        assert any(c.startswith("nst:cancel:") for c in status.custom_ids())
        # The journal has the job, and (a moment after the status is posted) where its status message is.
        db = Database(settings.database_path)
        await db.open()

        async def journaled() -> list:
            return [(j.user_id, j.status_message_id) for j in await db.unfinished_jobs()]

        for _ in range(100):
            if await journaled() == [(fake.member.id, status.id)]:
                break
            await asyncio.sleep(0.05)
        assert await journaled() == [(fake.member.id, status.id)]
        await db.close()
    # Stopped mid-download.

    fake.clear_cdn_fault(stalled)
    async with running_bot(fake, settings, pool) as bot:
        notice = await fake.wait_for_message(
            fake.channel, lambda m: m.reference_id == status.id and fake.member.mention in m.content, timeout=20,
            since=0)
        assert "restarted" in notice.content
        assert fake.member.id in {u.id for u in notice.mentions} or fake.member.mention in notice.content
        await fake.wait_for(lambda: "interrupted: the bot restarted" in status.content, timeout=10,
                            what="old status updated")
        assert status.custom_ids() == []  # its Cancel button is gone
        await fake.wait_for(lambda: not bot._background, timeout=10, what="the restart notices are done")
    db = Database(settings.database_path)
    await db.open()
    assert await db.unfinished_jobs() == []
    await db.close()


async def test_a_rerun_is_checked_against_the_limits_of_now(fake, tmp_path, pool):
    async def set_limits(**options) -> None:
        record = await fake.invoke_slash("style-admin", options, user=fake.admin, group="limits", subcommand="set")
        await fake.wait_for_ack(record, timeout=5)
        assert "limits updated" in embed_text(record.original)

    async def rerun(kind: str) -> str:
        custom_id = next(c for c in result.custom_ids() if c.startswith(f"nst:rerun:{kind}:"))
        click = await fake.click_button(result, custom_id, user=fake.member)
        await fake.wait_for_ack(click, timeout=5)
        await fake.wait_for(lambda: click.original is not None and is_error(click.original), timeout=30,
                            what="the re-run refused")
        assert click.original.ephemeral  # for the clicker alone
        return embed_text(click.original)

    async with running_bot(fake, make_settings(tmp_path), pool):
        await fake.post_message(fake.channel, fake.member, "!style balanced", attachments=images(5))
        result = await fake.wait_for_message(fake.channel, is_result, timeout=90)
        # A moderator turns the job's preset off: the re-run is refused, not run with the old settings.
        await set_limits(allowed_presets="fast")
        assert "The `balanced` preset is not allowed here; choose from fast" in await rerun("stronger")


async def test_every_message_fits_and_user_text_pings_nobody(fake, tmp_path, pool):
    async with running_bot(fake, make_settings(tmp_path), pool):
        # A 4,200-character filename: the refusal that names it is shortened, not dropped (was: 50035, silence).
        long_name = "x" * 4196 + ".txt"
        user_msg = await fake.post_message(fake.channel, fake.member, "!style",
                                           attachments=[(long_name, b"not a picture"), ("s.png", png(seed=8))])
        refusal = await fake.wait_for_message(fake.channel, lambda m: m.reference_id == user_msg.id and is_error(m))
        text = embed_text(refusal)
        assert "is not an image" in text and "…" in text and "x.txt` (content image)" in text and len(text) < 1000

        # An over-long value is quoted back shortened.
        user_msg = await fake.post_message(fake.channel, fake.member, "!style " + "w" * 3000,
                                           attachments=images(9))
        refusal = await fake.wait_for_message(fake.channel, lambda m: m.reference_id == user_msg.id and is_error(m))
        assert "I don't understand" in embed_text(refusal) and len(embed_text(refusal)) < 1500

        # Filenames that mention people or everyone ping nobody; the result pings only its requester.
        sneaky = f"<@{fake.admin.id}> @everyone.png"
        await fake.post_message(fake.channel, fake.member, "!style",
                                attachments=[(sneaky, png(seed=10)), ("s.png", png(seed=11))])
        await fake.wait_for_message(fake.channel, is_result, timeout=90)
        sent = [r for r in fake.requests if r.method in ("POST", "PATCH") and r.json and "content" in r.json
                and ("/messages" in r.path or "/webhooks/" in r.path)]
        assert sent
        for r in sent:
            allowed = r.json.get("allowed_mentions")
            assert allowed is not None and allowed.get("parse") == [], (r.path, allowed)
            assert set(allowed.get("users", [])) <= {str(fake.member.id), fake.member.id}, (r.path, allowed)
            assert not allowed.get("replied_user"), (r.path, allowed)
        assert any(str(fake.member.id) in map(str, r.json["allowed_mentions"].get("users", [])) for r in sent)

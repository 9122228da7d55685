"""A hostile user and a hostile Discord: lying metadata, odd files, missing permissions, deleted messages.

Each test states the product rule it checks: a clear message naming the file and the cause, nothing lost,
never silent, and the bot keeps serving.
"""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

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

SLOW = {"size": 48, "iterations": 400}  # runs long enough to act while it runs


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width``×``height`` (a decompression bomb's shape, a few bytes long)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(
        b"IEND", b"")


def animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (64, 48), color) for color in ("red", "green", "blue")]
    buf = io.BytesIO()
    frames[0].save(buf, format=fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def deny(fake, permission: int) -> None:
    """Take ``permission`` from the bot in the test guild (from @everyone and from the bot's own role)."""
    for role in (fake.guild.everyone_role, fake.bot_role):
        role.permissions &= ~permission


def cancel_id(msg) -> str:
    return next(cid for cid in msg.custom_ids() if cid.startswith("nst:cancel:"))


async def click(fake, msg, custom_id: str, user) -> str:
    record = await fake.click_button(msg, custom_id, user=user)
    await fake.wait_for_ack(record, timeout=3)
    return record.original.content if record.original is not None else ""


def no_traceback(fake) -> None:
    assert not any("Traceback" in embed_text(m) for m in fake.bot_messages())


async def test_lying_metadata_and_odd_files(fake, tmp_path, pool):
    settings = make_settings(tmp_path, max_megapixels=0.01, max_file_mb=0.2)
    good = ("good.png", png(seed=1))
    async with running_bot(fake, settings, pool):
        # Discord says 10×10; the header says 20000×20000: the decoder's header check refuses it.
        bomb = fake.make_attachment(fake.channel, FileSpec("bomb.png", png_header(20000, 20000)))
        bomb.width = bomb.height = 10
        await fake.post_message(fake.channel, fake.member, "!style", attachments=[good, bomb])
        text = embed_text(await fake.wait_for_message(fake.channel, is_error))
        assert "bomb.png" in text and "400.0 MP" in text and "style image" in text.lower(), text

        # Metadata says a small PNG; the CDN streams 5 MB without a Content-Length.
        liar = fake.make_attachment(fake.channel, FileSpec("liar.png", png(seed=2)))
        fake.cdn_fault(liar, "huge", size=5_000_000, lie_length=-1)
        await fake.post_message(fake.channel, fake.member, "!style", attachments=[liar, good])
        text = embed_text(await fake.wait_for_message(fake.channel, is_error))
        assert "`liar.png` is larger than the" in text, text

        # A zero-byte file.
        await fake.post_message(fake.channel, fake.member, "!style", attachments=[good, ("empty.png", b"")])
        text = embed_text(await fake.wait_for_message(fake.channel, is_error))
        assert "empty.png" in text and "style image is empty" in text.lower(), text

        # A text file renamed .png.
        await fake.post_message(fake.channel, fake.member, "!style",
                                attachments=[("notes.png", b"hello, this is not a picture\n" * 5), good])
        text = embed_text(await fake.wait_for_message(fake.channel, is_error))
        assert "notes.png" in text and "content image" in text.lower(), text

        # Animated GIF and WebP are accepted (first frame), as is the same image as content and style.
        await fake.post_message(fake.channel, fake.member, "!style",
                                attachments=[("anim.gif", animated("GIF")), ("anim.webp", animated("WEBP"))])
        await fake.wait_for_message(fake.channel, is_result, timeout=60)
        same = fake.make_attachment(fake.channel, FileSpec("same.png", png(seed=3)))
        record = await fake.invoke_slash("style", {"content": same, "style": same})
        await fake.wait_for_ack(record, timeout=3)
        await fake.wait_for_message(fake.channel, is_result, timeout=60)
        no_traceback(fake)


async def test_garbage_arguments_get_usage_not_a_generic_error(fake, tmp_path, pool):
    async with running_bot(fake, make_settings(tmp_path), pool):
        for args, expected in [
            ("ultra 99 foo", "I don't understand `ultra`"),
            ("-2", "The strength must be from 0.25"),
            ("seed=99999999999999", "The seed must be a whole number"),
            ("seed=²", "The seed must be a whole number"),  # str.isdigit() is True for "²", int() is not
            ("strength=nan", "The strength must be from 0.25"),
        ]:
            await fake.post_message(fake.channel, fake.member, f"!style {args}", attachments=images(1))
            text = embed_text(await fake.wait_for_message(fake.channel, is_error))
            assert expected in text and "Usage:" in text, (args, text)

        # A reply to a message without images, with one image attached: told what is missing.
        plain = await fake.post_message(fake.channel, fake.admin, "look at this")
        await fake.post_message(fake.channel, fake.member, "!style", attachments=[("only.png", png())],
                                reference=plain)
        text = embed_text(await fake.wait_for_message(fake.channel, is_error))
        assert "only one file (`only.png`)" in text
        no_traceback(fake)


async def test_request_in_a_dm_is_answered_there(fake, tmp_path, pool):
    async with running_bot(fake, make_settings(tmp_path), pool):
        await fake.post_message(fake.dm_channel, fake.member, "!style fast", attachments=images(2))
        result = await fake.wait_for_message(fake.dm_channel, is_result, timeout=60)
        assert result.attachments[0].filename.startswith("styled.")


async def test_cancel_twice_and_by_another_member(fake, tmp_path, pool):
    async with running_bot(fake, make_settings(tmp_path, download_timeout=5.0), pool) as bot:
        slow = fake.make_attachment(fake.channel, FileSpec("slow.png", png(seed=4)))
        fake.cdn_fault(slow, "slow", delay=1.5)
        user_msg = await fake.post_message(fake.channel, fake.member, "!style", attachments=[slow, ("s.png", png())])
        status = await fake.wait_for_message(fake.channel, lambda m: m.reference_id == user_msg.id)
        cid = cancel_id(status)
        assert "Only the person who started this job" in await click(fake, status, cid, fake.admin)
        first = await click(fake, status, cid, fake.member)
        second = await click(fake, status, cid, fake.member)
        assert first == "Cancelled." and second in ("This job is already being cancelled.",
                                                    "That job is no longer running."), second
        await fake.wait_for(lambda: status.content.startswith("Cancelled by you"), timeout=5,
                            what="status says cancelled")
        await fake.wait_for(lambda: not bot.jobs.active, timeout=5, what="no job left")
        assert status.button(cid) is None  # the finished job's status has no Cancel button left


async def test_rate_limited_edits_still_deliver(fake, tmp_path, pool):
    async with running_bot(fake, make_settings(tmp_path), pool, engine_overrides={"size": 48, "iterations": 40}):
        fake.rate_limit(r"PATCH /channels/\d+/messages/\d+", count=4, retry_after=0.2)
        user_msg = await fake.post_message(fake.channel, fake.member, "!style", attachments=images(5))
        # 40 iterations take a while on a busy 2-core machine: a generous bound, not a speed test
        await fake.wait_for_message(fake.channel, is_result, timeout=180)
        status = next(m for m in fake.bot_messages(fake.channel) if m.reference_id == user_msg.id)
        await fake.wait_for(lambda: status.content.startswith("Done"), timeout=10, what="status says Done")
        assert any(r.status == 429 for r in fake.requests)


async def test_rapid_rerun_clicks_respect_the_per_user_limit(fake, tmp_path, pool):
    settings = make_settings(tmp_path, user_max_running=1, user_max_waiting=1)
    async with running_bot(fake, settings, pool) as bot:
        await fake.post_message(fake.channel, fake.member, "!style", attachments=images(6))
        result = await fake.wait_for_message(fake.channel, is_result, timeout=60)
        # The job service reads its overrides (given to it when the bot is made) at every request: from now on
        # jobs are slow, so the re-runs pile up: one running, one waiting, the third refused.
        bot.jobs.engine_overrides.update(SLOW)
        rerun = next(cid for cid in result.custom_ids() if cid.startswith("nst:rerun:stronger:"))
        records = [await fake.click_button(result, rerun, user=fake.member) for _ in range(3)]
        for record in records:
            await fake.wait_for_ack(record, timeout=3)
        refused = await fake.wait_for_message(fake.channel, is_error, timeout=10)
        assert "the limit is 1 running + 1 waiting per person" in embed_text(refused)
        assert len(bot.jobs.active) == 2
        assert [job.options and job.options.iterations for job in bot.jobs.active.values()] == [400, 400]
        for job in list(bot.jobs.active):
            bot.jobs.cancel(job, by=fake_user(bot, fake.member.id), moderator=False)
        await fake.wait_for(lambda: not bot.jobs.active, timeout=10, what="jobs cancelled")
        # Both re-runs were stopped by the cancel, neither had finished: the slow-down reached the jobs.
        statuses = [r.original.content or "" for r in records if r.original is not None]
        assert sum(text.startswith("Cancelled by you") for text in statuses) == 2, statuses
        assert sum(1 for m in fake.bot_messages(fake.channel) if is_result(m)) == 1


def fake_user(bot, user_id: int):
    return bot.get_user(user_id) or type("U", (), {"id": user_id, "display_name": "u"})()


async def test_status_deleted_by_a_moderator_before_a_failure(fake, tmp_path, pool):
    async with running_bot(fake, make_settings(tmp_path), pool):
        cut = fake.make_attachment(fake.channel, FileSpec("cut.png", png(seed=7)))
        fake.cdn_fault(cut, "truncated", send_bytes=100, delay=1.0)
        user_msg = await fake.post_message(fake.channel, fake.member, "!style", attachments=[("c.png", png()), cut])
        status = await fake.wait_for_message(fake.channel, lambda m: m.reference_id == user_msg.id)
        await fake.delete_user_message(status)  # a moderator tidies up while it downloads
        msg = await fake.wait_for_message(fake.channel, is_error, timeout=10)
        assert "download of `cut.png` was cut off" in embed_text(msg)


async def test_users_message_deleted_mid_job_still_gets_the_result(fake, tmp_path, pool):
    async with running_bot(fake, make_settings(tmp_path), pool):
        slow = fake.make_attachment(fake.channel, FileSpec("slow.png", png(seed=8)))
        fake.cdn_fault(slow, "slow", delay=1.0)  # the user deletes their message during the download
        user_msg = await fake.post_message(fake.channel, fake.member, "!style", attachments=[slow, ("s.png", png())])
        await fake.wait_for_message(fake.channel, lambda m: m.reference_id == user_msg.id)
        await fake.delete_user_message(user_msg)
        # Discord refuses a reply to a deleted message unless fail_if_not_exists is false; then it is a plain
        # message (no reference) that still pings the user through the mention in its content.
        result = await fake.wait_for_message(fake.channel, lambda m: is_result(m) or is_error(m), timeout=60)
        assert is_result(result), embed_text(result)
        assert result.reference_id is None and result.type == 0
        assert fake.member in result.mentions
        assert not any(r.error_code == 50035 for r in fake.requests)


async def test_no_attach_files_permission_sends_the_result_by_dm(fake, tmp_path, pool):
    deny(fake, Perm.ATTACH_FILES)
    async with running_bot(fake, make_settings(tmp_path), pool):
        await fake.post_message(fake.channel, fake.member, "!style", attachments=images(9))
        result = await fake.wait_for_message(fake.dm_channel, is_result, timeout=60)
        assert result.attachments[0].filename.startswith("styled.")
        status = await fake.wait_for_message(fake.channel, lambda m: "Attach Files" in embed_text(m), since=0)
        assert "direct message" in embed_text(status)
        no_traceback(fake)


async def test_no_send_permission_answers_by_dm(fake, tmp_path, pool):
    deny(fake, Perm.SEND_MESSAGES)
    async with running_bot(fake, make_settings(tmp_path), pool):
        await fake.post_message(fake.channel, fake.member, "!style", attachments=images(10))
        result = await fake.wait_for_message(fake.dm_channel, is_result, timeout=60)
        assert fake.member in result.mentions
        notice = await fake.wait_for_message(fake.dm_channel, lambda m: fake.channel.mention in m.content, since=0)
        assert "Send Messages" in notice.content
        await fake.post_message(fake.channel, fake.member, "!style", attachments=[("one.png", png())])
        refusal = await fake.wait_for_message(fake.dm_channel, is_error, timeout=10)
        assert "only one file (`one.png`)" in embed_text(refusal)


async def test_slash_result_survives_a_deleted_status_where_the_bot_cannot_post(fake, tmp_path, pool):
    # Slash commands work without the bot's channel permissions; only the interaction webhook can answer.
    deny(fake, Perm.SEND_MESSAGES)
    async with running_bot(fake, make_settings(tmp_path), pool):
        slow = fake.make_attachment(fake.channel, FileSpec("slow.png", png(seed=11)))
        fake.cdn_fault(slow, "slow", delay=1.0)  # the status is deleted during the download
        record = await fake.invoke_slash("style", {"content": slow, "style": ("s.png", png())})
        await fake.wait_for_ack(record, timeout=3)
        await fake.wait_for(lambda: record.original is not None and not record.original.loading, timeout=10,
                            what="the status replaced the thinking placeholder")
        await fake.delete_user_message(record.original)
        result = await fake.wait_for_message(fake.channel, is_result, timeout=60)
        assert result in record.followups
        reposted = record.followups[0]  # the status, posted anew as a follow-up once its message was gone
        await fake.wait_for(lambda: reposted.content.startswith("Done"), timeout=5, what="the new status is done")
        assert not any(r.status == 403 for r in fake.requests)  # never tried to post in the channel


async def test_stronger_at_the_strongest_is_refused_not_rerun(fake, tmp_path, pool):
    async with running_bot(fake, make_settings(tmp_path), pool) as bot:
        await fake.post_message(fake.channel, fake.member, "!style 4", attachments=images(12))
        result = await fake.wait_for_message(fake.channel, is_result, timeout=60)
        stronger = next(cid for cid in result.custom_ids() if cid.startswith("nst:rerun:stronger:"))
        record = await fake.click_button(result, stronger, user=fake.member)
        await fake.wait_for_ack(record, timeout=3)
        assert record.original.ephemeral and "already used the strongest (4)" in record.original.content
        assert not bot.jobs.active


async def test_cancel_stops_a_stalled_download_at_once(fake, tmp_path, pool):
    async with running_bot(fake, make_settings(tmp_path, download_timeout=30.0), pool) as bot:
        stalled = fake.make_attachment(fake.channel, FileSpec("stalled.png", png(seed=13)))
        fake.cdn_fault(stalled, "slow", delay=20.0)
        user_msg = await fake.post_message(fake.channel, fake.member, "!style", attachments=[stalled, ("s.png", png())])
        status = await fake.wait_for_message(fake.channel, lambda m: m.reference_id == user_msg.id)
        assert await click(fake, status, cancel_id(status), fake.member) == "Cancelled."
        await fake.wait_for(lambda: status.content.startswith("Cancelled by you"), timeout=3,
                            what="status says cancelled without waiting for the download")
        await fake.wait_for(lambda: not bot.jobs.active, timeout=3, what="no job left")
        # The user may send the next request right away.
        await fake.post_message(fake.channel, fake.member, "!style", attachments=images(14))
        await fake.wait_for_message(fake.channel, is_result, timeout=60)


async def test_a_failed_download_is_refused_without_waiting_for_a_stalled_one(fake, tmp_path, pool):
    """Rule: a request that cannot run is refused promptly; a stalled sibling download does not hold the answer."""
    async with running_bot(fake, make_settings(tmp_path, download_timeout=20.0), pool):
        missing = fake.make_attachment(fake.channel, FileSpec("gone.png", png(seed=12)))
        fake.cdn_fault(missing, "404")
        stalled = fake.make_attachment(fake.channel, FileSpec("stalled.png", png(seed=13)))
        fake.cdn_fault(stalled, "slow", delay=15.0)
        await fake.post_message(fake.channel, fake.member, "!style", attachments=[missing, stalled])
        msg = await fake.wait_for_message(fake.channel, is_error, timeout=5)  # well before the 15 s stall ends
        assert "gone.png" in embed_text(msg)


async def test_without_embed_links_refusals_and_results_still_say_their_text(fake, tmp_path, pool):
    """Rule: without Embed Links Discord drops embeds silently (an embed-only message is then refused as empty);
    the user must still read why a request was refused, and the result's loss summary."""
    fake.set_permissions(fake.channel, fake.bot_role, deny=Perm.EMBED_LINKS)
    async with running_bot(fake, make_settings(tmp_path), pool):
        await fake.post_message(fake.channel, fake.member, "!style", attachments=[("only.png", png())])
        refusal = await fake.wait_for_message(fake.channel, lambda m: "only one file (`only.png`)" in m.content,
                                              timeout=10)
        assert refusal.embeds == [] and "Can't do that" in refusal.content
        # The quick answers of the prefix commands too: a bad option, and the help.
        await fake.post_message(fake.channel, fake.member, "!style turbo", attachments=images(16))
        await fake.wait_for_message(fake.channel, lambda m: "turbo" in m.content and m.embeds == [], timeout=10)
        await fake.post_message(fake.channel, fake.member, "!style-help")
        await fake.wait_for_message(fake.channel, lambda m: "/style" in m.content and m.embeds == [], timeout=10)
        await fake.post_message(fake.channel, fake.member, "!style", attachments=images(15))
        result = await fake.wait_for_message(fake.channel, lambda m: any(a.filename.startswith("styled.")
                                                                         for a in m.attachments), timeout=60)
        assert result.embeds == [] and "Loss (start → end)" in result.content and "Preset" in result.content
        assert fake.member in result.mentions
        assert not any(r.error_code == 50006 for r in fake.requests)
        no_traceback(fake)


async def test_a_refusal_is_posted_even_when_rate_limits_outlast_discord_pys_retries(fake, tmp_path, pool):
    """discord.py gives up after five 429s; the bot then tries the notice again itself, so the user still hears."""
    async with running_bot(fake, make_settings(tmp_path), pool):
        fake.rate_limit(r"POST /channels/\d+/messages", count=6, retry_after=0.1)
        user_msg = await fake.post_message(fake.channel, fake.member, "!style",
                                           attachments=[("c.png", png()), FileSpec("notes.txt", b"just text")])
        refusal = await fake.wait_for_message(fake.channel, lambda m: m.reference_id == user_msg.id, timeout=60)
        assert "`notes.txt` (style image) is not an image" in embed_text(refusal)
        assert sum(r.status == 429 for r in fake.requests) == 6  # all six taken: discord.py's five, then ours

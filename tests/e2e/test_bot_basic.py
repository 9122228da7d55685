"""The main paths: prefix and slash requests answered with a stylised image and a loss summary."""

from __future__ import annotations

from tests.e2e.bot_harness import E2E, embed_text, fake, is_error, is_result, make_settings, png, pool, running_bot
from tests.fakediscord import FileSpec

pytestmark = E2E
__all__ = ["fake", "pool"]  # fixtures


async def test_prefix_command_with_two_images_gets_a_result(fake, tmp_path, pool):
    async with running_bot(fake, make_settings(tmp_path), pool):
        await fake.post_message(
            fake.channel, fake.member, "!style fast 2",
            attachments=[FileSpec("cat.png", png(seed=1), "image/png"), FileSpec("wave.png", png(seed=2), "image/png")],
        )
        result = await fake.wait_for_message(fake.channel, is_result, timeout=60)
        assert fake.member in result.mentions  # pinged, as Discord records it (allowed_mentions honoured)
        names = [a.filename for a in result.attachments]
        assert names[0].startswith("styled.") and "losses.png" in names
        text = embed_text(result)
        assert "Loss (start → end)" in text and "Preset: fast" in text and "Iterations" in text
        assert not any(is_error(m) for m in fake.bot_messages())


async def test_slash_command_is_acknowledged_fast_and_answered(fake, tmp_path, pool):
    settings = make_settings(tmp_path, preview_interval=0.5)
    # Long enough (seconds) for several progress edits at the test's edit interval.
    async with running_bot(fake, settings, pool, engine_overrides={"size": 48, "iterations": 150}):
        assert {c.name for c in fake.commands} >= {"style", "style-limits", "style-help"}
        record = await fake.invoke_slash(
            "style",
            {"content": ("c.png", png(seed=3)), "style": ("s.png", png(seed=4)), "preset": "quality",
             "strength": 0.5, "preserve_colors": True, "seed": 7},
        )
        await fake.wait_for_ack(record, timeout=3)
        assert record.ack_type == 5 and record.ack_latency < 3
        # 150 iterations take a while on a busy 2-core machine: a generous bound, not a speed test
        result = await fake.wait_for_message(fake.channel, is_result, timeout=180)
        assert result in record.followups
        assert "Preset: quality" in embed_text(result)
        status = record.original
        assert status is not None
        await fake.wait_for(lambda: "Done" in status.content, timeout=5, what="status edited to Done")
        assert status.edits >= 3  # "Starting…", progress, then "Done"
        # Progress edits: a bar with percentage, ETA and losses, and a small preview picture.
        edits = [r for r in fake.requests if r.method == "PATCH" and "/messages/@original" in r.path]
        progress = [r.json.get("content") or "" for r in edits if "%" in (r.json.get("content") or "")]
        assert progress and "ETA" in progress[0] and "Loss: content" in progress[0]
        assert any(f.filename == "preview.jpg" for r in edits for f in r.files)


async def test_each_preset_reply_form_mention_prefix_and_rerun_button(fake, tmp_path, pool):
    async with running_bot(fake, make_settings(tmp_path, bot_prefix="?"), pool) as bot:
        # Every preset via the slash command.
        for preset in ("fast", "balanced"):
            record = await fake.invoke_slash("style", {"content": ("c.png", png(seed=5)),
                                                       "style": ("s.png", png(seed=6)), "preset": preset})
            await fake.wait_for_ack(record, timeout=3)
            result = await fake.wait_for_message(fake.channel, is_result, timeout=60)
            assert f"Preset: {preset}" in embed_text(result)

        # Reply form: the content image is on the replied-to message, the style on the command.
        content_msg = await fake.post_message(fake.channel, fake.admin, "look", attachments=[("me.png", png(seed=7))])
        command = await fake.post_message(fake.channel, fake.member, "?style fast",
                                          attachments=[("art.png", png(seed=8))], reference=content_msg)
        result = await fake.wait_for_message(fake.channel, is_result, timeout=60)
        assert result.reference_id == command.id and fake.member in result.mentions
        # The status (a reply to the command) named the replied-to image as the content, the attached one as style.
        (status,) = [m for m in fake.bot_messages(fake.channel) if m.reference_id == command.id and m is not result]
        shown = [r.json.get("content") or "" for r in fake.requests
                 if r.method == "PATCH" and r.path.endswith(f"/messages/{status.id}")]
        assert any("`me.png` in the style of `art.png`" in text for text in shown), shown

        # A mention works as a prefix too.
        await fake.post_message(fake.channel, fake.member, f"<@{fake.bot_user.id}> style fast",
                                attachments=[("a.png", png(seed=9)), ("b.png", png(seed=10))])
        result = await fake.wait_for_message(fake.channel, is_result, timeout=60)

        # "Stronger style" re-runs the last job from the kept inputs with twice the strength.
        job_ids = [cid.split(":")[-1] for cid in result.custom_ids() if cid.startswith("nst:rerun:stronger:")]
        assert job_ids and bot.jobs.reruns.get(job_ids[0]) is not None
        click = await fake.click_button(result, f"nst:rerun:stronger:{job_ids[0]}")
        await fake.wait_for_ack(click, timeout=3)
        rerun = await fake.wait_for_message(fake.channel, is_result, timeout=60, since=result)
        assert rerun.id != result.id
        assert any("strength 2" in m.content for m in fake.bot_messages(fake.channel))

        # Once the kept inputs are gone (evicted or after a restart), the button says so.
        bot.jobs.reruns._items.clear()
        click = await fake.click_button(rerun, next(c for c in rerun.custom_ids() if ":weaker:" in c))
        await fake.wait_for_ack(click, timeout=3)
        assert "no longer have the images" in click.original.content and click.original.ephemeral


async def test_help_works_in_dms_and_servers(fake, tmp_path, pool):
    async with running_bot(fake, make_settings(tmp_path, max_file_mb=4), pool):
        record = await fake.invoke_slash("style-help", channel=fake.dm_channel)
        await fake.wait_for_ack(record, timeout=3)
        text = embed_text(record.original)
        assert "/style content:" in text and "Files up to 4 MB" in text
        await fake.post_message(fake.channel, fake.member, "!style-help")
        msg = await fake.wait_for_message(fake.channel, lambda m: "Neural style transfer" in embed_text(m))
        assert "!style" in embed_text(msg)

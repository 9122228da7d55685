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
        assert fake.member.mention in result.content
        names = [a.filename for a in result.attachments]
        assert names[0].startswith("styled.") and "losses.png" in names
        text = embed_text(result)
        assert "Loss (start → end)" in text and "Preset: fast" in text and "Iterations" in text
        assert not any(is_error(m) for m in fake.bot_messages())


async def test_slash_command_is_acknowledged_fast_and_answered(fake, tmp_path, pool):
    async with running_bot(fake, make_settings(tmp_path), pool):
        assert {c.name for c in fake.commands} >= {"style", "style-limits", "style-help"}
        record = await fake.invoke_slash(
            "style",
            {"content": ("c.png", png(seed=3)), "style": ("s.png", png(seed=4)), "preset": "quality",
             "strength": 0.5, "preserve_colors": True, "seed": 7},
        )
        await fake.wait_for_ack(record, timeout=3)
        assert record.ack_type == 5 and record.ack_latency < 3
        result = await fake.wait_for_message(fake.channel, is_result, timeout=60)
        assert result in record.followups
        assert "Preset: quality" in embed_text(result)
        status = record.original
        assert status is not None
        await fake.wait_for(lambda: "Done" in status.content, timeout=5, what="status edited to Done")
        assert status.edits >= 2  # "Starting…", progress, then "Done"

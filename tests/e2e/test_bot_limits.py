"""/style-limits: moderators lower limits within the bot-wide ceilings; members only look."""

from __future__ import annotations

from tests.e2e.bot_harness import E2E, embed_text, fake, is_error, make_settings, png, pool, running_bot

pytestmark = E2E
__all__ = ["fake", "pool"]  # fixtures


async def slash(fake, subcommand: str, options=None, *, user=None, channel=None):
    # Everyone sees `/style-limits show`; `set` and `reset` live in the admins' `/style-admin limits`.
    name, group = ("style-limits", None) if subcommand == "show" else ("style-admin", "limits")
    record = await fake.invoke_slash(
        name, options or {}, user=user or fake.member, channel=channel, subcommand=subcommand, group=group
    )
    await fake.wait_for_ack(record, timeout=3)
    return record, embed_text(record.original)


async def test_admin_sets_limits_and_members_are_held_to_them(fake, tmp_path, pool):
    async with running_bot(fake, make_settings(tmp_path, max_file_mb=8, max_output_side=512), pool):
        _, text = await slash(fake, "show")
        assert "Max file size: 8 MB" in text

        # An ordinary member may not change anything (checked in code, whatever the command permissions say).
        record, text = await slash(fake, "set", {"max_file_mb": 0.01})
        assert "Only members with the **Manage Server** permission" in text
        assert record.original.ephemeral

        # Above the bot-wide ceiling: a clear refusal.
        _, text = await slash(fake, "set", {"max_file_mb": 50}, user=fake.admin)
        assert "at most 8 on this bot (you asked for 50)" in text
        _, text = await slash(fake, "set", {"allowed_presets": "fast,turbo"}, user=fake.admin)
        assert "Unknown preset turbo" in text

        # Below the floor: refused (0.01 MB would refuse every picture).
        _, text = await slash(fake, "set", {"max_file_mb": 0.01}, user=fake.admin)
        assert "must be at least 0.1 (you asked for 0.01)" in text
        record, text = await slash(fake, "set", {"max_file_mb": 0.1, "allowed_presets": "fast"}, user=fake.owner)
        assert "limits updated" in text and "Max file size: 0.1 MB (bot-wide: 8 MB)" in text
        assert not record.original.ephemeral

        # Everyone sees the new limits, and a request above them is refused before downloading.
        _, text = await slash(fake, "show")
        assert "Presets: fast" in text
        await fake.post_message(fake.channel, fake.member, "!style",
                                attachments=[("c.png", png(220, 220, seed=1)), ("s.png", png(seed=2))])
        msg = await fake.wait_for_message(fake.channel, is_error)
        assert "`c.png` (content image) is" in embed_text(msg) and "the limit here is 0.1 MB" in embed_text(msg)
        await fake.post_message(fake.channel, fake.member, "!style quality",
                                attachments=[("c.png", png(seed=1)), ("s.png", png(seed=2))])
        msg = await fake.wait_for_message(fake.channel, is_error)
        assert "The `quality` preset is not allowed here; choose from fast" in embed_text(msg)

        # Reset: only moderators, and then the bot-wide limits apply again.
        _, text = await slash(fake, "reset")
        assert "Manage Server" in text
        _, text = await slash(fake, "reset", user=fake.admin)
        assert "reset to the bot-wide ones" in text and "Max file size: 8 MB" in text

        # In DMs: `show` explains the bot-wide limits, `set` says it needs a server.
        _, text = await slash(fake, "show", channel=fake.dm_channel)
        assert "direct messages (bot-wide limits)" in text
        _, text = await slash(fake, "set", {"max_file_mb": 1}, channel=fake.dm_channel)
        assert "only exist in servers" in text


async def test_limits_survive_a_restart(fake, tmp_path, pool):
    settings = make_settings(tmp_path)
    async with running_bot(fake, settings, pool):
        _, text = await slash(fake, "set", {"max_megapixels": 2}, user=fake.admin)
        assert "Max image size: 2 MP (bot-wide: 16 MP)" in text
    async with running_bot(fake, settings, pool):
        _, text = await slash(fake, "show")
        assert "Max image size: 2 MP (bot-wide: 16 MP)" in text

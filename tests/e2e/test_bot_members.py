"""What members and hosts expect: private refusals, a cooldown, their own defaults, admin commands out of sight, a bot
that says who it is, and a start without the Message Content intent."""

from __future__ import annotations

import logging
import re

from nst_engine import __version__
from tests.e2e.bot_harness import E2E, embed_text, fake, is_error, is_result, make_settings, png, pool, running_bot
from tests.fakediscord import FakeDiscord, FakeMessage, FileSpec, InteractionRecord
from tests.fakediscord.gateway import MESSAGE_CONTENT

pytestmark = E2E
__all__ = ["fake", "pool"]  # fixtures


def public(fake: FakeDiscord) -> list[FakeMessage]:
    """What the channel sees from the bot: its messages that are neither ephemeral nor deleted."""
    return [m for m in fake.bot_messages(fake.channel) if not m.ephemeral and not m.deleted]


def footer(msg: FakeMessage) -> str:
    return (msg.embeds[0].get("footer") or {}).get("text", "")


async def answer(fake: FakeDiscord, record: InteractionRecord) -> str:
    await fake.wait_for_ack(record, timeout=3)
    assert record.original is not None
    return embed_text(record.original)


async def test_refusals_are_private_and_cost_nothing_in_the_channel(fake, tmp_path, pool):
    settings = make_settings(tmp_path, max_file_mb=0.05, download_timeout=1.0, user_cooldown=60, max_queue=1)
    good = ("good.png", png(seed=1))
    async with running_bot(fake, settings, pool):
        # Wrong size or type: answered at once and privately, nothing downloaded, nothing public.
        for options, expected in (({"content": ("big.png", png(200, 200, seed=2)), "style": good},
                                   "the limit here is 0.05 MB"),
                                  ({"content": FileSpec("c.txt", b"hello"), "style": good}, "is not an image")):
            record = await fake.invoke_slash("style", options)
            assert expected in await answer(fake, record)
            assert record.ack_type == 4 and record.original.ephemeral

        # Accepted (a public "thinking" answer), then its picture cannot be fetched: the public status is withdrawn
        # and only the asker hears why.
        slow = fake.make_attachment(fake.channel, FileSpec("slow.png", png(seed=3)))
        fake.cdn_fault(slow, "slow", delay=3.0)
        first = await fake.invoke_slash("style", {"content": slow, "style": good})
        await fake.wait_for_ack(first, timeout=3)
        assert first.ack_type == 5
        await fake.wait_for(lambda: first.original is not None and "Downloading" in first.original.content,
                            timeout=10, what="the first request downloading")

        # Meanwhile: the same member is cooling down, and the queue (one place) is full for anyone else.
        again = await fake.invoke_slash("style", {"content": ("c.png", png(seed=4)), "style": good})
        assert re.search(r"start another style transfer in (59|60) s\.", await answer(fake, again))
        other = await fake.invoke_slash("style", {"content": ("c.png", png(seed=4)), "style": good}, user=fake.admin)
        assert "The queue is full (1 jobs waiting)" in await answer(fake, other)
        assert again.original.ephemeral and other.original.ephemeral

        await fake.wait_for(lambda: any(is_error(m) for m in first.followups), timeout=15, what="the refusal")
        refusal = next(m for m in first.followups if is_error(m))
        assert refusal.ephemeral and "Downloading `slow.png` took longer than 1 s" in embed_text(refusal)
        await fake.wait_for(lambda: first.original.deleted, timeout=5, what="the public status withdrawn")

        # Stylize on a picture above the limit: refused in the picker, which only the asker sees.
        photo = await fake.post_message(fake.channel, fake.owner, "", attachments=[("huge.png", png(200, 200))])
        record = await fake.invoke_message_command("Stylize", photo, user=fake.admin)
        await fake.wait_for_ack(record, timeout=3)
        picker = record.original
        menu = next(c for c in picker.custom_ids() if ":painting:" in c)
        await fake.wait_for_ack(await fake.click_button(picker, menu, values=["The Scream"], user=fake.admin), 3)
        go = next(c for c in picker.custom_ids() if c.endswith(":go"))
        await fake.wait_for_ack(await fake.click_button(picker, go, user=fake.admin), timeout=3)
        assert picker.ephemeral and "`huge.png` (content image) is" in embed_text(picker)

        assert public(fake) == []  # none of the above showed anything to the channel


async def test_own_defaults_are_used_said_bounded_by_the_server_and_reset(fake, tmp_path, pool):
    async with running_bot(fake, make_settings(tmp_path), pool):
        record = await fake.invoke_slash("style-settings", {"preset": "fast", "strength": 2, "colours": "photo",
                                                            "painting": "starry NIGHT"})
        text = await answer(fake, record)
        assert record.original.ephemeral and "Your defaults are saved" in text
        assert "Preset: fast" in text and "Strength: 2" in text and "Favourite painting: Starry Night" in text

        # Every option left out: the member's own, said in the result's summary line.
        await fake.invoke_slash("style", {"content": ("c.png", png(seed=1))})
        first = await fake.wait_for_message(fake.channel, is_result, timeout=60)
        assert "Preset: fast" in embed_text(first)
        assert "Your defaults: preset fast, strength 2, colours kept, painting Starry Night" in footer(first)

        # The server no longer allows fast: the default falls back, with a note; a given option wins.
        limits = await fake.invoke_slash("style-admin", {"allowed_presets": "balanced"}, user=fake.admin,
                                         group="limits", subcommand="set")
        assert "limits updated" in await answer(fake, limits)
        await fake.post_message(fake.channel, fake.member, "!style 1", attachments=[("c.png", png(seed=2))])
        second = await fake.wait_for_message(fake.channel, lambda m: is_result(m) and m is not first, timeout=60)
        assert "Preset: balanced" in embed_text(second)
        assert footer(second).startswith("Your defaults: colours kept, painting Starry Night. Your default preset "
                                         "fast is not allowed here, so balanced is used")

        # Reset is one click, and forgets them.
        shown = await fake.invoke_slash("style-settings", {})
        assert "is not allowed here, so balanced is used" in await answer(fake, shown)
        reset = next(c for c in shown.original.custom_ids() if c.startswith("nst:defaults:reset:"))
        await fake.wait_for_ack(await fake.click_button(shown.original, reset), timeout=3)
        assert "Your defaults are reset" in embed_text(shown.original)
        after = await fake.invoke_slash("style-settings", {})
        assert "Preset: not set (the bot's: balanced)" in await answer(fake, after)
        assert after.original.custom_ids() == []  # nothing to reset

        # `!help` answers like /style-help.
        ask = await fake.post_message(fake.channel, fake.member, "!help")
        reply = await fake.wait_for_message(fake.channel, lambda m: m.reference_id == ask.id)
        assert "Neural style transfer" in embed_text(reply) and "Slash command" in embed_text(reply)


async def test_starts_without_the_intent_hides_admin_commands_and_says_who_it_is(fake, tmp_path, pool, caplog):
    fake.config.app_flags = 0  # Message Content is off in the Developer Portal
    with caplog.at_level(logging.WARNING, logger="bot"):
        async with running_bot(fake, make_settings(tmp_path), pool):
            # It asked Discord and did not request the intent, so nothing was refused; one line says so.
            assert fake.gateway.refused_identifies == []
            assert all(not s.intents & MESSAGE_CONTENT for s in fake.gateway.sessions.values())
            lines = [r.getMessage() for r in caplog.records if "Message Content intent is off" in r.getMessage()]
            assert len(lines) == 1 and "!style is off" in lines[0]

            # Discord blanks the text of `!help`; a mention carries it, so `@Bot help` is answered.
            plain = await fake.post_message(fake.channel, fake.member, "!help")
            mention = await fake.post_message(fake.channel, fake.member, f"<@{fake.bot_user.id}> help")
            reply = await fake.wait_for_message(fake.channel, lambda m: m.reference_id == mention.id)
            assert "Neural style transfer" in embed_text(reply)
            assert not any(m.reference_id == plain.id for m in fake.bot_messages(fake.channel))

            # Admin actions are out of members' sight (top-level default_permissions), and out of DMs.
            member, admin = fake.visible_commands(fake.member), fake.visible_commands(fake.admin)
            assert {"style-gallery list", "style-limits show", "style-settings", "style-about"} <= member
            assert not any(path.startswith("style-admin") for path in member)
            assert {"style-admin gallery add", "style-admin gallery remove", "style-admin limits set",
                    "style-admin limits reset"} <= admin
            assert not any(p.startswith("style-admin") for p in fake.visible_commands(channel=fake.dm_channel))

            about = await fake.invoke_slash("style-about", {})
            text = await answer(fake, about)
            assert about.original.ephemeral and f"nst-discord-bot **{__version__}** · MIT licence" in text
            assert "job journal" in text and "deleted 30 days after the job ends" in text
            assert "Your defaults" in text and "Gallery paintings" in text and "SOURCE_URL" in text

"""One-image requests on the fake Discord: /style painting:, !style <painting>, blends, and "Stylize" on a message."""

from __future__ import annotations

from tests.e2e.bot_harness import E2E, embed_text, fake, is_error, is_result, make_settings, png, pool, running_bot
from tests.e2e.test_bot_gallery import add, answered
from tests.fakediscord import FakeDiscord, FakeMessage, FileSpec, InteractionRecord

pytestmark = E2E
__all__ = ["fake", "pool"]  # fixtures


def status_with(fake: FakeDiscord, text: str) -> FakeMessage | None:
    return next((m for m in fake.bot_messages() if text in m.content), None)


async def test_slash_with_a_painting_chosen_by_autocomplete(fake, tmp_path, pool):
    async with running_bot(fake, make_settings(tmp_path), pool):
        await add(fake, "Our Mascot", png(200, 150, seed=1))
        # Typing in `painting:` offers the built-ins and the server's gallery.
        auto = await fake.invoke_autocomplete("style", {"painting": ""}, "painting")
        await fake.wait_for_ack(auto, timeout=3)
        assert [c["value"] for c in auto.choices()] == [
            "Starry Night", "The Scream", "The Shipwreck", "Woman with a Hat", "Our Mascot"]
        auto = await fake.invoke_autocomplete("style", {"painting": "o"}, "painting")
        await fake.wait_for_ack(auto, timeout=3)
        assert [c["value"] for c in auto.choices()] == ["Our Mascot", "Woman with a Hat"]  # starts with, contains
        auto = await fake.invoke_autocomplete("style", {"painting": "scre"}, "painting")
        await fake.wait_for_ack(auto, timeout=3)
        assert [c["value"] for c in auto.choices()] == ["The Scream"]

        record = await fake.invoke_slash("style", {"content": ("me.png", png(seed=2)), "painting": "Our Mascot",
                                                   "preset": "fast"})
        result = await fake.wait_for_message(fake.channel, is_result, timeout=60)
        assert result in record.followups and "Preset: fast" in embed_text(result)
        assert any("`me.png` in the style of `Our Mascot`" in m.content for m in fake.bot_messages())

        # A painting and an attached style are blended.
        await fake.invoke_slash("style", {"content": ("me.png", png(seed=2)), "style": ("s.png", png(seed=3)),
                                          "painting": "the scream"})
        await fake.wait_for_message(fake.channel, is_result, timeout=60)
        assert status_with(fake, "in the style of `s.png` + 1 more") is not None

        # Neither a style nor a painting, and a painting that does not exist: clear refusals, nothing runs.
        record = await fake.invoke_slash("style", {"content": ("me.png", png(seed=2))})
        text = await answered(fake, record)
        assert "Choose a `painting`" in text and "or attach a `style` image" in text and record.original.ephemeral
        record = await fake.invoke_slash("style", {"content": ("me.png", png(seed=2)), "painting": "Our Mascott"})
        text = await answered(fake, record)
        assert "no painting called `Our Mascott`" in text and "Did you mean **Our Mascot**" in text


async def test_prefix_with_a_painting_name_and_blends(fake, tmp_path, pool):
    async with running_bot(fake, make_settings(tmp_path), pool):
        await add(fake, "Blue Period", png(120, 100, seed=4))
        await fake.post_message(fake.channel, fake.member, "!style blue period fast 2",
                                attachments=[FileSpec("cat.png", png(seed=5), "image/png")])
        result = await fake.wait_for_message(fake.channel, is_result, timeout=60)
        assert "Preset: fast" in embed_text(result)
        assert status_with(fake, "`cat.png` in the style of `Blue Period` · preset fast, strength 2") is not None

        # Built-ins in DMs, blended with `+`.
        await fake.post_message(fake.dm_channel, fake.member, "!style starry night + the scream fast",
                                attachments=[("cat.png", png(seed=5))])
        await fake.wait_for_message(fake.dm_channel, is_result, timeout=60)
        assert status_with(fake, "in the style of `Starry Night` + 1 more") is not None

        # Paintings and an attached style together.
        await fake.post_message(fake.channel, fake.member, "!style blue period",
                                attachments=[("cat.png", png(seed=5)), ("wave.png", png(seed=6))])
        await fake.wait_for_message(fake.channel, is_result, timeout=60)
        assert status_with(fake, "`cat.png` in the style of `wave.png` + 1 more") is not None

        # Refusals: a mistyped name, the server's painting in DMs, no picture attached.
        await fake.post_message(fake.channel, fake.member, "!style blu period fast", attachments=[("c.png", png())])
        msg = await fake.wait_for_message(fake.channel, is_error)
        assert "no painting called `blu period`" in embed_text(msg) and "**Blue Period**" in embed_text(msg)
        await fake.post_message(fake.dm_channel, fake.member, "!style blue period", attachments=[("c.png", png())])
        msg = await fake.wait_for_message(fake.dm_channel, is_error)
        assert "in direct messages (only the built-in paintings)" in embed_text(msg)
        await fake.post_message(fake.channel, fake.member, "!style the scream")
        msg = await fake.wait_for_message(fake.channel, is_error)
        assert "Attach the picture to paint" in embed_text(msg)


async def test_a_painting_removed_while_its_job_waits_still_finishes(fake, tmp_path, pool):
    # The first job is made long (it is cancelled at the end), so the gallery job is surely waiting in the queue.
    async with running_bot(fake, make_settings(tmp_path), pool,
                           engine_overrides={"size": 48, "iterations": 10_000}) as bot:
        await add(fake, "Fleeting", png(150, 100, seed=7))
        first = await fake.post_message(fake.channel, fake.admin, "!style the scream fast",
                                        attachments=[("a.png", png())])
        first_status = await fake.wait_for_message(
            fake.channel, lambda m: m.reference_id == first.id and any(":cancel:" in c for c in m.custom_ids())
            and ("Starting" in m.content or "%" in m.content), timeout=60)
        bot.jobs.engine_overrides["iterations"] = 2  # the test knob: jobs accepted from now on are quick
        waiting = await fake.post_message(fake.channel, fake.member, "!style fleeting fast",
                                          attachments=[("b.png", png(seed=8))])
        await fake.wait_for_message(fake.channel, lambda m: m.reference_id == waiting.id and "Queued" in m.content,
                                    timeout=60)
        _, text = await add_then_remove(fake, "Fleeting")
        assert "no longer in this server's gallery" in text

        # The running job ends (cancelled by its owner); the waiting one runs with the painting it was given.
        cancel = next(c for c in first_status.custom_ids() if ":cancel:" in c)
        await fake.wait_for_ack(await fake.click_button(first_status, cancel, user=fake.admin), timeout=3)
        result = await fake.wait_for_message(fake.channel, lambda m: is_result(m) and m.reference_id == waiting.id,
                                             timeout=120)
        assert fake.member.mention in result.content
        assert any(m.reference_id == waiting.id and "`b.png` in the style of `Fleeting`" in m.content
                   for m in fake.bot_messages(fake.channel))
        # And now it is gone for new requests.
        await fake.post_message(fake.channel, fake.member, "!style fleeting", attachments=[("b.png", png())])
        msg = await fake.wait_for_message(fake.channel, is_error)
        assert "no painting called `fleeting`" in embed_text(msg)


async def add_then_remove(fake: FakeDiscord, name: str) -> tuple[InteractionRecord, str]:
    record = await fake.invoke_slash("style-admin", {"name": name}, user=fake.admin, group="gallery",
                                     subcommand="remove")
    return record, await answered(fake, record)


async def test_stylize_on_a_message_with_an_image_and_on_one_without(fake, tmp_path, pool):
    async with running_bot(fake, make_settings(tmp_path), pool):
        assert fake.find_command("Stylize", fake.channel, ctype=3) is not None
        await add(fake, "Mascot", png(150, 100, seed=9))
        photo = await fake.post_message(fake.channel, fake.admin, "my cat", attachments=[("cat.png", png(seed=10))])

        record = await fake.invoke_message_command("Stylize", photo, user=fake.member)
        await fake.wait_for_ack(record, timeout=3)
        picker = record.original
        assert picker is not None and picker.ephemeral
        ids = picker.custom_ids()
        painting_menu = next(c for c in ids if ":painting:" in c)
        preset_menu = next(c for c in ids if c.endswith(":preset"))
        go = next(c for c in ids if c.endswith(":go"))
        assert picker.button(go).get("disabled")  # nothing chosen yet
        values = [o["value"] for o in picker.button(painting_menu)["options"]]
        assert values == ["Starry Night", "The Scream", "The Shipwreck", "Woman with a Hat", "Mascot"]

        click = await fake.click_button(picker, painting_menu, values=["Mascot"])
        await fake.wait_for_ack(click, timeout=3)
        click = await fake.click_button(picker, preset_menu, values=["fast"])
        await fake.wait_for_ack(click, timeout=3)
        assert "**Mascot**" in picker.content and "**fast**" in picker.content
        click = await fake.click_button(picker, go)
        await fake.wait_for_ack(click, timeout=3)

        # The job runs as a reply to the photo, for the member who asked.
        result = await fake.wait_for_message(fake.channel, is_result, timeout=60)
        assert result.reference_id == photo.id and fake.member.mention in result.content
        assert "Preset: fast" in embed_text(result)
        assert status_with(fake, "`cat.png` in the style of `Mascot`") is not None

        # A painting removed while the picker is open: Go says so instead of starting.
        record = await fake.invoke_message_command("Stylize", photo, user=fake.member)
        await fake.wait_for_ack(record, timeout=3)
        picker = record.original
        menu = next(c for c in picker.custom_ids() if ":painting:" in c)
        await fake.wait_for_ack(await fake.click_button(picker, menu, values=["Mascot"]), timeout=3)
        await add_then_remove(fake, "Mascot")
        go = next(c for c in picker.custom_ids() if c.endswith(":go"))
        await fake.wait_for_ack(await fake.click_button(picker, go), timeout=3)
        assert "no painting called `Mascot`" in embed_text(picker) and not picker.custom_ids()

        # A message without an image: a clear, private answer.
        words = await fake.post_message(fake.channel, fake.admin, "just words")
        record = await fake.invoke_message_command("Stylize", words, user=fake.member)
        text = await answered(fake, record)
        assert "has no image" in text and record.original.ephemeral


async def test_help_shows_the_paintings_on_hand(fake, tmp_path, pool):
    async with running_bot(fake, make_settings(tmp_path), pool):
        record = await fake.invoke_slash("style-help", channel=fake.dm_channel)
        text = await answered(fake, record)
        assert "Paintings on hand" in text and "`/style content:<image> painting:<name>`" in text
        assert "`!style starry night balanced`" in text and "**Apps → Stylize**" in text
        assert "Starry Night, The Scream, The Shipwreck, Woman with a Hat" in text and "/style-admin gallery add" in text

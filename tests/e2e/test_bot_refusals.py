"""Every kind of bad input gets a specific message naming the file and the limit, and the bot keeps serving."""

from __future__ import annotations

from tests.e2e.bot_harness import E2E, embed_text, fake, is_error, is_result, make_settings, png, running_bot
from tests.fakediscord import FileSpec

pytestmark = E2E
__all__ = ["fake", "pool"]  # fixtures

from tests.e2e.bot_harness import pool  # noqa: E402


def cdn_hits(fake, filename: str) -> int:
    return sum(1 for r in fake.requests if r.route == "/cdn/attachments" and r.path.endswith("/" + filename))


def body_sent(fake, filename: str) -> int:
    """Body bytes the CDN handed to the bot for ``filename`` (its one download)."""
    (rec,) = [r for r in fake.requests if r.route == "/cdn/attachments" and r.path.endswith("/" + filename)]
    return rec.body_sent


async def refused(fake, content: str, attachments, *, author=None, timeout: float = 10.0) -> str:
    await fake.post_message(fake.channel, author or fake.member, content, attachments=attachments)
    msg = await fake.wait_for_message(fake.channel, is_error, timeout=timeout)
    return embed_text(msg)


async def test_bad_inputs_are_refused_with_specific_messages(fake, tmp_path, pool):
    settings = make_settings(
        tmp_path, max_file_mb=0.05, max_megapixels=0.01, max_styles=2, download_timeout=1.0,
        allowed_presets="fast,balanced",
    )
    good = ("good.png", png(seed=1))
    async with running_bot(fake, settings, pool):
        text = await refused(fake, "!style", [("alone.png", png())])
        assert "only one file (`alone.png`)" in text

        text = await refused(fake, "!style", [])
        assert "got no image" in text

        text = await refused(fake, "!style", [good, ("s1.png", png()), ("s2.png", png()), ("s3.png", png())])
        assert "Too many images: 4 attached, but at most 2 style images" in text

        text = await refused(fake, "!style", [good, FileSpec("notes.txt", b"just text")])
        assert "`notes.txt` (style image) is not an image (Discord says `text/plain`)" in text
        assert cdn_hits(fake, "notes.txt") == 0  # refused before downloading

        big = png(200, 200, seed=2)  # noise: about 120 KB, above the 0.05 MB limit
        text = await refused(fake, "!style", [("big.png", big), good])
        assert "`big.png` (content image) is" in text and "the limit here is 0.05 MB" in text
        assert cdn_hits(fake, "big.png") == 0

        text = await refused(fake, "!style", [good, ("wide.png", png(150, 100))])
        assert "`wide.png` (style image) is 150×100 px" in text and "limit here is 0.01 MP" in text
        assert cdn_hits(fake, "wide.png") == 0

        text = await refused(fake, "!style", [("broken.png", png()[:80]), good])
        assert "broken.png" in text and "content image" in text.lower()

        text = await refused(fake, "!style", [good, ("doc.png", b"%PDF-1.4 not really a picture" * 10)])
        assert "doc.png" in text and "PDF" in text

        text = await refused(fake, "!style turbo", [good, ("s.png", png())])
        assert "I don't understand `turbo`" in text

        text = await refused(fake, "!style quality", [good, ("s.png", png())])
        assert "The `quality` preset is not allowed here; choose from fast, balanced" in text

        # Downloads that fail, stall, get cut off or never end.
        for kind, params, name, expected in [
            ("404", {}, "gone.png", "Could not download `gone.png` (the server answered HTTP 404)"),
            ("slow", {"delay": 3.0}, "slow.png", "Downloading `slow.png` took longer than 1 s"),
            ("truncated", {"send_bytes": 100}, "cut.png", "download of `cut.png` was cut off"),
            ("huge", {"size": 5_000_000, "lie_length": -1}, "endless.png", "`endless.png` is larger than the 51.2 KB limit"),
            ("huge", {"size": 5_000_000, "body_delay": 5.0}, "declared.png",
             "`declared.png` is larger than the 51.2 KB limit"),
        ]:
            att = fake.make_attachment(fake.channel, FileSpec(name, png(seed=3)))
            fake.cdn_fault(att, kind, **params)
            text = await refused(fake, "!style", [good, att])
            assert expected in text, text
        # The byte cap stops reading early: a few buffers past 51.2 KB, not the 5 MB on offer...
        assert 51_200 < body_sent(fake, "endless.png") < 1_000_000, body_sent(fake, "endless.png")
        # ...and a Content-Length over the cap is refused at the headers, before one body byte is read.
        assert body_sent(fake, "declared.png") == 0

        # The slash command: checked before anything public, so the refusal is the (ephemeral) answer itself.
        record = await fake.invoke_slash("style", {"content": FileSpec("c.txt", b"hello"), "style": good})
        await fake.wait_for_ack(record, timeout=3)
        assert record.ack_type == 4 and record.original is not None and record.original.ephemeral
        assert "`c.txt` (content image) is not an image" in embed_text(record.original)

        # Nothing above broke the bot: a good request still works.
        await fake.post_message(fake.channel, fake.member, "!style", attachments=[good, ("s.png", png(seed=4))])
        await fake.wait_for_message(fake.channel, is_result, timeout=60)
        assert not any("Traceback" in m.content for m in fake.bot_messages())

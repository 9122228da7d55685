"""Animated pictures through the bot: every frame painted and sent back animated with the source's timing, progress
per frame, and the animation limits (refused with the numbers, or shortened and made smaller when asked)."""

from __future__ import annotations

import io
import random

from PIL import Image

from tests.e2e.bot_harness import E2E, embed_text, fake, is_error, is_result, make_settings, png, pool, running_bot
from tests.fakediscord import FileSpec

pytestmark = E2E
__all__ = ["fake", "pool"]  # fixtures

DURATIONS = [70, 120, 90, 200]


def gif(frames: int = 4, size: tuple[int, int] = (64, 48), seed: int = 0) -> bytes:
    """A small animated GIF whose frames differ (noise), each with its own duration."""
    rng = random.Random(seed)
    images = []
    for _ in range(frames):
        im = Image.new("RGB", size)
        im.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(size[0] * size[1])])
        images.append(im)
    buf = io.BytesIO()
    images[0].save(buf, "GIF", save_all=True, append_images=images[1:], duration=DURATIONS[:frames], loop=0)
    return buf.getvalue()


def timing(data: bytes) -> tuple[int, list[int]]:
    """(frames, durations) of an animated picture as a viewer reads it."""
    with Image.open(io.BytesIO(data)) as im:
        durations = []
        for index in range(im.n_frames):
            im.seek(index)
            im.load()
            durations.append(im.info["duration"])
        return im.n_frames, durations


def picture(result) -> bytes:  # type: ignore[no-untyped-def]
    return next(a.data for a in result.attachments if a.filename.startswith("styled."))


async def test_an_animated_gif_by_prefix_and_slash_comes_back_animated_with_its_timing(fake, tmp_path, pool):
    async with running_bot(fake, make_settings(tmp_path, progress_edit_interval=0.5), pool,
                           engine_overrides={"size": 48, "iterations": 6}):  # fmt: skip
        command = await fake.post_message(
            fake.channel, fake.member, "!style fast",
            attachments=[FileSpec("clip.gif", gif(), "image/gif"), FileSpec("art.png", png(seed=2), "image/png")],
        )
        result = await fake.wait_for_message(fake.channel, is_result, timeout=90)
        assert timing(picture(result)) == (4, DURATIONS)
        assert "48×36, 4 frames" in embed_text(result) and "the mean of 4 frames" in embed_text(result)
        # The status named the frame being painted.
        (status,) = [m for m in fake.bot_messages(fake.channel) if m.reference_id == command.id and m is not result]
        shown = [r.json.get("content") or "" for r in fake.requests
                 if r.method == "PATCH" and r.path.endswith(f"/messages/{status.id}")]
        assert any("Frame " in text and " of 4" in text for text in shown), shown

        record = await fake.invoke_slash("style", {"content": ("clip.gif", gif(seed=3)), "painting": "the scream",
                                                   "preset": "fast"})  # fmt: skip
        result = await fake.wait_for_message(fake.channel, is_result, timeout=90)
        assert result in record.followups and timing(picture(result)) == (4, DURATIONS)

        # A re-run button paints the whole animation again from the kept frames.
        button = next(c for c in result.custom_ids() if c.startswith("nst:rerun:weaker:"))
        click = await fake.click_button(result, button)
        await fake.wait_for_ack(click, timeout=3)
        rerun = await fake.wait_for_message(fake.channel, is_result, timeout=90, since=result)
        assert timing(picture(rerun)) == (4, DURATIONS) and "4 frames" in embed_text(rerun)


async def test_animation_limits_refuse_with_the_numbers_or_shorten_and_shrink_when_asked(fake, tmp_path, pool):
    settings = make_settings(tmp_path, max_frames=3, max_animation_megapixels=0.012)
    async with running_bot(fake, settings, pool, engine_overrides={"size": 96, "iterations": 2}):
        await fake.post_message(fake.channel, fake.member, "!style fast",
                                attachments=[("clip.gif", gif()), ("art.png", png(seed=2))])
        refusal = await fake.wait_for_message(fake.channel, is_error, timeout=30)
        assert "an animation of 4 frames; the limit is 3 frames" in embed_text(refusal)

        # Asked to fit: the first 3 frames, painted smaller than 96 px so 3 frames fit in 0.012 MP.
        await fake.post_message(fake.channel, fake.member, "!style fast fit",
                                attachments=[("clip.gif", gif(size=(128, 96))), ("art.gif", gif(seed=5))])
        result = await fake.wait_for_message(fake.channel, is_result, timeout=90)
        frames, durations = timing(picture(result))
        assert (frames, durations) == (3, DURATIONS[:3])
        with Image.open(io.BytesIO(picture(result))) as im:
            assert 3 * im.width * im.height <= 12_000 and im.width >= 64
        text = embed_text(result)
        assert "shortened to its first 3 of 4 frames" in text and "to fit the animation limit" in text
        assert "the style image is animated: its first frame was used" in text

        # Within the frame limit but over the pixel budget, not asked to fit: refused with the numbers, no job run.
        await fake.post_message(fake.channel, fake.member, "!style fast",
                                attachments=[("short.gif", gif(frames=3, size=(128, 96))), ("art.png", png(seed=2))])
        refusal = await fake.wait_for_message(fake.channel, is_error, timeout=30)
        assert "3 frames of 96×72 px = 0.0 MP" in embed_text(refusal) and "limit is 0.012 MP" in embed_text(refusal)

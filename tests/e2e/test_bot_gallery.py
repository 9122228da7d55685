"""/style-gallery on the fake Discord: moderators add and remove paintings, everyone lists them; hostile uploads."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

from tests.e2e.bot_harness import E2E, embed_text, fake, make_settings, png, pool, running_bot
from tests.fakediscord import FakeDiscord, FileSpec, InteractionRecord

pytestmark = E2E
__all__ = ["fake", "pool"]  # fixtures

NEEDS_MANAGE = "Manage Server"  # named by the bot's one MissingPermissions message


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height (a decompression bomb's shape, a few bytes long)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


async def answered(fake: FakeDiscord, record: InteractionRecord, timeout: float = 20) -> str:
    """The text of the bot's (filled, not "thinking…") answer to an interaction."""
    await fake.wait_for_ack(record, timeout=3)
    await fake.wait_for(lambda: record.original is not None and not record.original.loading, timeout=timeout,
                        what=f"an answer to {record!r}")
    assert record.original is not None
    footers = [(e.get("footer") or {}).get("text", "") for e in record.original.embeds]
    return "\n".join([embed_text(record.original), *footers])


async def gallery(fake: FakeDiscord, sub: str, options=None, *, user=None, channel=None) -> tuple[InteractionRecord,
                                                                                                  str]:
    # Members see `/style-gallery list`; adding and removing live in the admins' `/style-admin gallery`.
    name, group = ("style-gallery", None) if sub == "list" else ("style-admin", "gallery")
    record = await fake.invoke_slash(name, options or {}, user=user or fake.admin, channel=channel,
                                     subcommand=sub, group=group)
    return record, await answered(fake, record)


async def add(fake: FakeDiscord, name: str, data: bytes, *, user=None, filename="art.png"):
    return await gallery(fake, "add", {"name": name, "image": FileSpec(filename, data, "image/png")}, user=user)


async def test_add_list_autocomplete_remove(fake, tmp_path, pool):
    async with running_bot(fake, make_settings(tmp_path), pool):
        record, text = await add(fake, "Our Mascot", png(300, 200, seed=1))
        assert "Painting added" in text and "**Our Mascot**" in text and "1 of 25 paintings" in text
        assert record.original is not None and record.original.ephemeral
        assert [a.filename for a in record.original.attachments] == ["painting.jpg"]
        await add(fake, "Sunset", png(120, 90, seed=2), user=fake.owner)

        # Everyone (members too) sees the contact sheet: built-ins and the server's paintings.
        record, text = await gallery(fake, "list", user=fake.member)
        assert "**Starry Night** · Vincent van Gogh, 1889" in text
        assert "**Our Mascot** · added by" in text and "**Sunset**" in text and "2 of 25 paintings" in text
        sheet = record.original.attachments[0]
        assert sheet.filename == "gallery.jpg"
        with Image.open(io.BytesIO(sheet.data)) as im:
            assert im.format == "JPEG" and im.width > 800

        # Removing offers the server's paintings as you type.
        auto = await fake.invoke_autocomplete("style-admin", {"name": "su"}, "name", user=fake.admin,
                                              group="gallery", subcommand="remove")
        await fake.wait_for_ack(auto, timeout=3)
        assert [c["value"] for c in auto.choices()] == ["Sunset"]
        _, text = await gallery(fake, "remove", {"name": "sUNSET"})
        assert "**Sunset** is no longer in this server's gallery" in text and "1 of 25 paintings" in text
        _, text = await gallery(fake, "remove", {"name": "Sunset"})
        assert "has no painting called `Sunset`" in text
        _, text = await gallery(fake, "list")
        assert "Sunset" not in text and "Our Mascot" in text


async def test_members_cannot_add_or_remove_and_dms_have_only_builtins(fake, tmp_path, pool):
    async with running_bot(fake, make_settings(tmp_path), pool):
        record, text = await add(fake, "Mine", png(seed=3), user=fake.member)
        assert NEEDS_MANAGE in text and "Can't do that" in text and record.original.ephemeral
        await add(fake, "Theirs", png(seed=4))
        _, text = await gallery(fake, "remove", {"name": "Theirs"}, user=fake.member)
        assert NEEDS_MANAGE in text and "Can't do that" in text
        _, text = await gallery(fake, "list", user=fake.member)
        assert "**Theirs**" in text  # still there

        # Direct messages: no gallery to change, the built-ins to look at.
        _, text = await gallery(fake, "add", {"name": "X1", "image": ("a.png", png(seed=5))}, user=fake.member,
                                channel=fake.dm_channel)
        assert "Galleries belong to servers" in text
        record, text = await gallery(fake, "list", user=fake.member, channel=fake.dm_channel)
        assert "The Scream" in text and "Theirs" not in text and "only the built-in paintings" in text


async def test_duplicate_names_bad_names_and_the_cap_are_refused_clearly(fake, tmp_path, pool):
    async with running_bot(fake, make_settings(tmp_path, gallery_max_items=2), pool):
        await add(fake, "Blue Period", png(seed=6))
        _, text = await add(fake, "blue   PERIOD", png(seed=7))
        assert "already has a painting called **Blue Period** (names ignore case)" in text
        _, text = await add(fake, "The Scream", png(seed=7))
        assert "is a built-in painting already" in text
        _, text = await add(fake, "<@everyone>", png(seed=7))
        assert "may use letters, digits" in text
        _, text = await add(fake, "fast", png(seed=7))
        assert "reads as a `!style` option" in text
        await add(fake, "Rose Period", png(seed=8))
        _, text = await add(fake, "Third", png(seed=9))
        assert "gallery is full: 2 of 2 paintings" in text and "/style-admin gallery remove" in text


async def test_the_gallery_survives_a_restart(fake, tmp_path, pool):
    settings = make_settings(tmp_path)
    async with running_bot(fake, settings, pool):
        await add(fake, "Keeper", png(seed=10))
    async with running_bot(fake, settings, pool) as bot:
        _, text = await gallery(fake, "list", user=fake.member)
        assert "**Keeper**" in text and "1 of 25 paintings" in text
        painting = await bot.paintings.resolve(fake.guild.id, "keeper")
        assert painting.source == "gallery" and painting.image.size == (64, 48)


async def test_hostile_uploads_are_refused(fake, tmp_path, pool):
    async with running_bot(fake, make_settings(tmp_path, max_file_mb=1), pool) as bot:
        # A decompression bomb whose metadata hides its size: refused from its header, before decoding.
        bomb = fake.make_attachment(fake.channel, FileSpec("bomb.png", png_header(30000, 30000)), ephemeral=True)
        bomb.width = bomb.height = 10
        _, text = await gallery(fake, "add", {"name": "Bomb", "image": bomb})
        assert "900.0 MP" in text and "16 MP" in text and "bomb.png" in text

        # Cut short and not an image at all.
        _, text = await gallery(fake, "add", {"name": "Broken", "image": ("cut.png", png(200, 200, seed=1)[:300])})
        assert "damaged or truncated" in text and "cut.png" in text
        _, text = await gallery(fake, "add", {"name": "Paper", "image": FileSpec("doc.png", b"%PDF-1.7\n...")})
        assert "not a supported image (found: PDF document)" in text

        # Huge: above the limit by Discord's metadata (refused before downloading), and a CDN that lies.
        _, text = await gallery(fake, "add", {"name": "Big", "image": ("big.png", png(600, 600) + b"\0" * 1_100_000)})
        assert "`big.png` is 2.1 MB; the limit here is 1 MB" in text
        liar = fake.make_attachment(fake.channel, FileSpec("liar.png", png(seed=2)), ephemeral=True)
        fake.cdn_fault(liar, "huge", size=50_000_000, lie_length=-1)
        _, text = await gallery(fake, "add", {"name": "Liar", "image": liar})
        assert "`liar.png` is larger than the 1 MB limit" in text

        # Nothing was stored, and the bot still works.
        assert await bot.gallery.usage(fake.guild.id) == (0, 0)
        _, text = await add(fake, "Fine", png(seed=11))
        assert "Painting added" in text

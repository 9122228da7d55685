"""The style gallery: names, checks and normalisation of uploads, the SQLite store, built-ins, the contact sheet."""

from __future__ import annotations

import io
import random
import struct
import zlib
from importlib import resources

import pytest
from PIL import Image

from bot.gallery.builtin import BUILTINS, builtin_bytes, builtin_image, find_builtin
from bot.gallery.named import parse_painting_request
from bot.gallery.sheet import SheetSection, decode_thumbs, gallery_sheet_jpeg, render_sheet
from bot.gallery.store import (
    DECODED_CACHE,
    PAINTING_NAME_MAX,
    GalleryError,
    GalleryStore,
    PaintingCatalog,
    UnknownPainting,
    name_key,
    prepare_upload,
    validate_name,
)
from bot.requests.arguments import ArgumentError, StyleArgs
from bot.storage.db import Database
from bot.ui.painting_picker import StylizePicker
from nst_engine.errors import CorruptImageError, FileTooLargeError, TooManyPixelsError, UnsupportedFormatError
from nst_engine.images import ImageLimits

LIMITS = ImageLimits(max_bytes=8 * 1024 * 1024, max_pixels=16_000_000)


def picture(width: int = 300, height: int = 200, color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    im = Image.effect_noise((width, height), 60).convert("RGB")
    im = Image.blend(im, Image.new("RGB", (width, height), color), 0.5)
    for x in range(0, width, 10):  # some texture
        for y in range(height):
            im.putpixel((x, y), (20, 20, 200))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A PNG header claiming width x height pixels, in a few hundred bytes."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def prepared(color=(200, 40, 40), size=(300, 200)):
    return prepare_upload(picture(*size, color=color), limits=LIMITS, max_side=1024)


# -- names -------------------------------------------------------------------------------------------------


def test_names_are_cleaned_and_compared_ignoring_case():
    assert validate_name("  Our   Mascot ") == "Our Mascot"
    assert name_key("OUR mascot") == name_key("our  Mascot") == "our mascot"
    assert validate_name("Größe 2") == "Größe 2"  # any script
    assert validate_name("Ça va (v2)") == "Ça va (v2)"


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("a", "2 to 32 characters"),
        ("x" * (PAINTING_NAME_MAX + 1), "2 to 32 characters"),
        ("`rm`", "may use letters"),
        ("<@123>", "may use letters"),
        ("-dash", "must start with a letter"),
        ("bold**", "may use letters"),
        ("quality", "reads as a `!style` option"),
        ("2.5", "reads as a `!style` option"),
        ("seed=4", "may use letters"),
        ("fast 2", "reads as a `!style` option"),
        ("colors", "reads as a `!style` option"),
        ("starry NIGHT", "built-in painting"),
    ],
)
def test_bad_names_are_refused_saying_why(name, why):
    with pytest.raises(GalleryError, match=why.replace("(", r"\(").replace("*", r"\*")):
        validate_name(name)


# -- uploads -----------------------------------------------------------------------------------------------


def test_upload_is_normalised_to_the_stored_side_with_a_thumbnail():
    p = prepare_upload(picture(2000, 1000), limits=LIMITS, max_side=512)
    assert (p.width, p.height) == (512, 256)
    with Image.open(io.BytesIO(p.data)) as stored:
        assert stored.format == "JPEG" and stored.size == (512, 256)
    with Image.open(io.BytesIO(p.thumb)) as thumb:
        assert max(thumb.size) == 256
    small = prepare_upload(picture(300, 200), limits=LIMITS, max_side=512)
    assert (small.width, small.height) == (300, 200)  # never enlarged
    # Pure noise (the hardest case for JPEG's encoder buffer) is stored too.
    noise = Image.frombytes("RGB", (320, 240), random.Random(1).randbytes(320 * 240 * 3))
    buf = io.BytesIO()
    noise.save(buf, "PNG")
    assert prepare_upload(buf.getvalue(), limits=LIMITS, max_side=1024).width == 320


@pytest.mark.parametrize(
    ("data", "error", "text"),
    [
        (png_bomb(20000, 20000), TooManyPixelsError, "400.0 MP.*16 MP"),
        (picture()[:200], CorruptImageError, "damaged or truncated"),
        (b"%PDF-1.7 not a picture", UnsupportedFormatError, "PDF document"),
        (b"\0" * (9 * 1024 * 1024), FileTooLargeError, "the limit is 8 MB"),
    ],
)
def test_hostile_uploads_are_refused_by_the_image_checks(data, error, text):
    with pytest.raises(error, match=text):
        prepare_upload(data, limits=LIMITS, max_side=1024)


# -- store -------------------------------------------------------------------------------------------------


async def test_add_get_list_remove_and_names_unique_per_server_ignoring_case(db):
    store = GalleryStore(db, max_items=5, max_bytes=10 * 1024 * 1024)
    entry = await store.add(1, "Our Mascot", prepared(), added_by=42)
    assert (entry.name, entry.width, entry.height, entry.added_by) == ("Our Mascot", 300, 200, 42)
    assert (await store.get(1, "our MASCOT")) == entry
    with pytest.raises(GalleryError, match=r"already has a painting called \*\*Our Mascot\*\*"):
        await store.add(1, "OUR mascot", prepared(), added_by=43)
    await store.add(2, "our mascot", prepared(), added_by=7)  # another server may use the name
    await store.add(1, "Sunset", prepared((250, 150, 0)), added_by=42)
    assert [e.name for e in await store.entries(1)] == ["Our Mascot", "Sunset"]
    count, used = await store.usage(1)
    assert count == 2 and used == sum(e.nbytes for e in await store.entries(1)) > 0
    removed = await store.remove(1, "our mascot")
    assert removed is not None and removed.name == "Our Mascot"
    assert await store.remove(1, "our mascot") is None
    assert [e.name for e in await store.entries(1)] == ["Sunset"]
    assert [e.name for e in await store.entries(2)] == ["our mascot"]


async def test_count_cap_and_byte_cap_are_refused_clearly(db):
    store = GalleryStore(db, max_items=2, max_bytes=10 * 1024 * 1024)
    await store.add(1, "One", prepared(), added_by=1)
    await store.add(1, "Two", prepared(), added_by=1)
    with pytest.raises(GalleryError, match="gallery is full: 2 of 2 paintings"):
        await store.add(1, "Three", prepared(), added_by=1)
    one = prepared()
    tight = GalleryStore(db, max_items=25, max_bytes=len(one.data) + 10)
    await tight.add(3, "First", one, added_by=1)
    with pytest.raises(GalleryError, match=r"No room for this painting: it takes .* of its"):
        await tight.add(3, "Second", prepared(), added_by=1)
    assert (await tight.usage(3))[0] == 1


async def test_gallery_survives_reopening_the_database(tmp_path):
    path = tmp_path / "bot.sqlite3"
    first = Database(path)
    await first.open()
    await GalleryStore(first, max_items=5, max_bytes=10**7).add(9, "Kept", prepared(), added_by=1)
    await first.close()
    second = Database(path)
    await second.open()
    try:
        store = GalleryStore(second, max_items=5, max_bytes=10**7)
        entry = await store.get(9, "kept")
        assert entry is not None
        image = await store.image(entry)
        assert image is not None and image.size == (300, 200)
    finally:
        await second.close()


async def test_a_painting_decodes_once_to_the_same_pixels(db):
    store = GalleryStore(db, max_items=25, max_bytes=10**8)
    entry = await store.add(1, "Same", prepared(), added_by=1)
    first = await store.image(entry)
    again = await store.image(entry)
    assert first is again  # decoded once: the engine sees identical pixels every time
    # The cache is bounded: after enough other paintings the first is decoded anew, to the same pixels.
    for i in range(DECODED_CACHE):
        other = await store.add(1, f"Other {i}", prepared((i * 10, 0, 0)), added_by=1)
        await store.image(other)
    fresh = await store.image(entry)
    assert fresh is not first and fresh is not None and first is not None
    assert fresh.tobytes() == first.tobytes()
    await store.remove(1, "Same")
    assert await store.image(entry) is None


# -- catalog and built-ins ---------------------------------------------------------------------------------


async def test_catalog_resolves_builtins_everywhere_and_the_gallery_in_its_server(db):
    store = GalleryStore(db, max_items=25, max_bytes=10**8)
    catalog = PaintingCatalog(store)
    await store.add(1, "Mascot", prepared(), added_by=1)
    starry = await catalog.resolve(None, "starry night")  # a DM
    assert starry.source == "built-in" and starry.name == "Starry Night" and starry.image.size == (1024, 640)
    assert (await catalog.resolve(1, "STARRY  night")).image is starry.image  # decoded once per process
    mascot = await catalog.resolve(1, "mascot")
    assert mascot.source == "gallery" and mascot.key.startswith("gallery:")
    with pytest.raises(UnknownPainting, match=r"no painting called `mascot` in direct messages"):
        await catalog.resolve(None, "mascot")
    with pytest.raises(UnknownPainting, match=r"Did you mean \*\*Mascot\*\*"):
        await catalog.resolve(1, "mascott")
    assert await catalog.names(1) == [*(p.name for p in BUILTINS), "Mascot"]
    assert await catalog.suggest(1, "the") == ["The Scream", "The Shipwreck"]
    assert await catalog.suggest(1, "sc") == ["The Scream", "Mascot"]  # starts-with first, then contains
    assert await catalog.match_prefix(1, ["starry", "night", "fast", "2"]) == ("Starry Night", 2)
    assert await catalog.match_prefix(1, ["fast", "2"]) is None


def test_builtins_ship_in_the_package_with_credits():
    credits = resources.files("bot.gallery").joinpath("paintings", "CREDITS.md").read_text()
    total = 0
    for p in BUILTINS:
        data = builtin_bytes(p)
        total += len(data)
        image = builtin_image(p)
        assert max(image.size) <= 1024 and image.mode == "RGB"
        assert p.filename in credits and p.artist in credits
        assert find_builtin(p.name.upper()) is p
    assert total < 1024 * 1024  # the package stays small


# -- contact sheet -----------------------------------------------------------------------------------------


async def test_contact_sheet_shows_builtins_and_the_server_gallery(db):
    store = GalleryStore(db, max_items=25, max_bytes=10**8)
    for i in range(7):
        await store.add(1, f"Painting {i} with a long name!", prepared((30 * i, 100, 50)), added_by=1)
    thumbs = decode_thumbs(await store.thumbnails(1))
    assert len(thumbs) == 7 and all(max(t.size) <= 256 for _, t in thumbs)
    sheet = Image.open(io.BytesIO(gallery_sheet_jpeg(SheetSection("Test's gallery", thumbs))))
    builtins_only = Image.open(io.BytesIO(gallery_sheet_jpeg(None)))
    assert sheet.format == "JPEG" and sheet.height > builtins_only.height
    assert sheet.width == 2 * 24 + 5 * 200 + 4 * 14  # five columns
    assert builtins_only.width == 2 * 24 + 4 * 200 + 3 * 14  # as many columns as paintings
    empty = render_sheet([SheetSection("a", []), SheetSection("b", [], "nothing")])
    assert empty.size[1] < builtins_only.height


# -- `!style <painting> [options]` ------------------------------------------------------------------------


async def test_painting_names_and_options_in_a_prefix_command(db):
    store = GalleryStore(db, max_items=25, max_bytes=10**8)
    catalog = PaintingCatalog(store)
    await store.add(1, "Blue", prepared(), added_by=1)
    await store.add(1, "Blue Period", prepared(), added_by=1)

    async def parse(text: str, guild: int | None = 1, *, one_image: bool = True):
        return await parse_painting_request(text, catalog, guild, one_image=one_image)

    req = await parse("starry night quality 2 colors")
    assert req.paintings == ("Starry Night",) and req.args == StyleArgs("quality", 2.0, True, 0)
    assert (await parse("blue period fast")).paintings == ("Blue Period",)  # the longest name wins
    assert (await parse('"blue" 2')).paintings == ("Blue",)  # quotes pick the shorter one
    assert (await parse('"blue" 2')).args.strength == 2.0
    blend = await parse("the scream + Blue+starry night 0.5")
    assert blend.paintings == ("The Scream", "Blue", "Starry Night") and blend.args.strength == 0.5
    plain = await parse("fast 2")
    assert plain.paintings == () and plain.args.preset == "fast"
    assert (await parse("")).paintings == ()
    with pytest.raises(UnknownPainting, match=r"no painting called `stary nite`.*Did you mean \*\*Starry Night\*\*"):
        await parse("stary nite fast")
    with pytest.raises(UnknownPainting, match="no painting called `blue` in direct messages"):
        await parse("blue fast", None)
    with pytest.raises(UnknownPainting, match="Did you mean"):  # close to a name: surely meant as one
        await parse("stary nite", one_image=False)
    # With two images attached an unknown word is more likely a mistyped option: say what options there are.
    with pytest.raises(ArgumentError, match=r"I don't understand `turbo`.*Or name a painting first"):
        await parse("turbo", one_image=False)
    with pytest.raises(UnknownPainting, match="no painting called `turbo`"):
        await parse("turbo 2")
    with pytest.raises(UnknownPainting, match="no painting called `nope`"):
        await parse("the scream + nope")
    with pytest.raises(ArgumentError, match="Name a painting after `\\+`"):
        await parse("the scream +")
    with pytest.raises(ArgumentError, match="closing quote"):
        await parse('"the scream fast')
    with pytest.raises(ArgumentError, match="strength must be from"):
        await parse("the scream 9")


# -- the Stylize picker ------------------------------------------------------------------------------------


async def test_picker_spreads_paintings_over_menus_of_25():
    async def go(interaction, painting, preset):  # pragma: no cover - not clicked here
        raise AssertionError

    names = [f"Painting {i}" for i in range(54)]  # 4 built-ins + a full gallery of 50
    picker = StylizePicker(user_id=1, paintings=names, presets=[("fast", "fast"), ("balanced", "balanced")],
                           default_preset="balanced", on_go=go)
    assert [len(m.options) for m in picker.menus] == [25, 25, 4]
    assert [o.value for m in picker.menus for o in m.options] == names
    assert picker.preset_menu.row == 3 and picker.go.row == 4 and picker.go.disabled
    assert [o.default for o in picker.preset_menu.options] == [False, True]
    assert "(Painting 0 … Painting 24)" in (picker.menus[0].placeholder or "")
    other = StylizePicker(user_id=2, paintings=names[:3], presets=[("fast", "fast")], default_preset="fast", on_go=go)
    assert len(other.menus) == 1 and other.menus[0].placeholder == "Choose a painting"
    assert picker.go.custom_id != other.go.custom_id  # several pickers can be open at once
    with pytest.raises(ValueError, match="no paintings"):
        StylizePicker(user_id=1, paintings=[], presets=[("fast", "fast")], default_preset="fast", on_go=go)

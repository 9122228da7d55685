"""Tests of nst_engine.images: every hostile input is built here, in the test that uses it."""

from __future__ import annotations

import io
import random
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nst_engine.encoding import EncodedImage, encode_image
from nst_engine.errors import (
    CorruptImageError,
    EncodeError,
    FileTooLargeError,
    ImageError,
    ImageTooSmallError,
    TooManyPixelsError,
    UnsupportedFormatError,
)
from nst_engine.images import (
    ImageLimits,
    decode_image,
    human_bytes,
    probe_image,
    to_rgb,
)

# ------------------------------------------------------------------------------------------- helpers


def save(im: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def raw_png(width: int, height: int, bit_depth: int, color_type: int, rows: list[bytes] | None) -> bytes:
    """A PNG written by hand, so the header can say anything (huge sizes, 16-bit samples)."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    # Filter byte 0 ("none") before each row; no rows at all gives a tiny IDAT for a header-only bomb.
    idat = zlib.compress(b"".join(b"\x00" + row for row in rows) if rows else b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def two_color(size: tuple[int, int] = (64, 48)) -> Image.Image:
    """Left half red, right half blue: easy to follow through rotations."""
    im = Image.new("RGB", size, (255, 0, 0))
    im.paste((0, 0, 255), (size[0] // 2, 0, size[0], size[1]))
    return im


def near(actual: tuple[int, ...], expected: tuple[int, ...], tol: int) -> bool:
    return all(abs(a - e) <= tol for a, e in zip(actual, expected, strict=True))


# ----------------------------------------------------------------------------------- hostile inputs


def test_zero_bytes_is_refused_as_empty() -> None:
    with pytest.raises(CorruptImageError) as info:
        decode_image(b"", role="content image")
    assert str(info.value) == "content image is empty (0 bytes)"
    assert info.value.role == "content image"


def test_random_bytes_are_not_an_image() -> None:
    data = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    with pytest.raises(UnsupportedFormatError) as info:
        probe_image(data, role="style image")
    message = str(info.value)
    assert message.startswith("style image is not a supported image (found: unrecognised data)")
    assert "expected PNG, JPEG, WebP, GIF or BMP" in message
    assert info.value.role == "style image"


@pytest.mark.parametrize(
    ("data", "found"),
    [
        (b"Just some notes about my cat.\nShe is orange.\n" * 10, "text"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", "PDF document"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10"/>', "SVG drawing"),
        (b"PK\x03\x04" + bytes(60), "ZIP archive"),
        (b"\x00\x00\x00\x1cftypheic" + bytes(40), "HEIC image"),
        (b"BM is also how this sentence starts, but it is text.", "text"),
    ],
)
def test_non_images_name_what_was_found(data: bytes, found: str) -> None:
    with pytest.raises(UnsupportedFormatError, match=rf"style image is not a supported image \(found: {found}\)"):
        decode_image(data, role="style image")


def test_tiff_is_an_image_but_not_an_allowed_one() -> None:
    data = save(Image.new("RGB", (64, 64)), "TIFF")
    with pytest.raises(UnsupportedFormatError, match=r"found: TIFF image"):
        decode_image(data)


def test_format_subset_from_limits() -> None:
    data = save(two_color(), "JPEG")
    with pytest.raises(UnsupportedFormatError, match=r"found: JPEG image\); expected PNG$"):
        probe_image(data, limits=ImageLimits(formats=frozenset({"png"})))


def test_format_comes_from_content_not_file_name(tmp_path: Path) -> None:
    misnamed = tmp_path / "holiday.jpg"
    two_color().save(misnamed, "PNG")
    assert probe_image(misnamed.read_bytes()).format == "PNG"
    assert decode_image(misnamed.read_bytes()).getpixel((0, 0)) == (255, 0, 0)
    text = tmp_path / "picture.png"
    text.write_text("definitely not a picture\n")
    with pytest.raises(UnsupportedFormatError, match=r"found: text"):
        decode_image(text.read_bytes())


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file_is_corrupt(fmt: str) -> None:
    noise = Image.effect_noise((128, 128), 60).convert("RGB")
    data = save(noise, fmt)
    cut = data[: len(data) // 2]
    probe_image(cut)  # the header alone is intact...
    with pytest.raises(CorruptImageError) as info:
        decode_image(cut, role="content image")  # ...but the pixels are not; no silent grey padding
    assert str(info.value).startswith("content image is damaged or truncated")
    assert info.value.role == "content image"


def test_broken_header_is_corrupt() -> None:
    data = save(two_color(), "PNG")
    broken = data[:16] + b"\xff" * 8 + data[24:]  # IHDR size fields scrambled, CRC now wrong
    with pytest.raises(CorruptImageError, match=r"^image is damaged or truncated"):
        probe_image(broken)


def test_decompression_bomb_is_refused_from_the_header() -> None:
    # 20000x20000 px in a few hundred bytes: beyond twice Pillow's own bomb limit.
    bomb = raw_png(20000, 20000, 8, 0, None)
    assert len(bomb) < 200
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(TooManyPixelsError) as info:
        decode_image(bomb, role="style image")
    assert str(info.value).startswith("style image is 400.0 MP")
    assert "the limit is 40 MP" in str(info.value)
    assert info.value.role == "style image"
    assert Image.MAX_IMAGE_PIXELS == before  # no process-wide change


def test_pixel_limit_below_pillows_warning_and_no_warning_leaks() -> None:
    # 100 MP sits between Pillow's warning and error thresholds.
    bomb = raw_png(10000, 10000, 8, 0, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(TooManyPixelsError, match=r"100\.0 MP \(10000x10000 px\); the limit is 40 MP"):
            probe_image(bomb)
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]


def test_pixel_limit_message_with_custom_limit() -> None:
    data = raw_png(8000, 6025, 8, 0, None)
    with pytest.raises(TooManyPixelsError) as info:
        probe_image(data, role="style image", limits=ImageLimits(max_pixels=16_000_000))
    assert str(info.value).startswith("style image is 48.2 MP (8000x6025 px); the limit is 16 MP")


def test_highly_compressible_real_bomb_is_refused_before_decoding() -> None:
    # A real, valid 6000x6000 image that compresses to a few KB.
    data = save(Image.new("L", (6000, 6000)), "PNG")
    assert len(data) < 100_000
    with pytest.raises(TooManyPixelsError, match=r"36\.0 MP .*the limit is 20 MP"):
        decode_image(data, limits=ImageLimits(max_pixels=20_000_000))


def test_byte_limit_comes_first() -> None:
    # Nothing but a PNG signature and padding: the size check must refuse it before any parsing.
    data = b"\x89PNG\r\n\x1a\n" + bytes(int(31.5 * 1024 * 1024) - 8)
    with pytest.raises(FileTooLargeError) as info:
        probe_image(data, role="content image")
    assert str(info.value).startswith("content image is 31.5 MB; the limit is 25 MB")


def test_byte_limit_just_over_shows_exact_counts() -> None:
    limits = ImageLimits(max_bytes=2048)
    data = save(Image.effect_noise((64, 64), 50), "PNG")
    assert len(data) > 2048
    with pytest.raises(FileTooLargeError, match=r"the limit is 2 KB"):
        probe_image(data, limits=limits)
    with pytest.raises(FileTooLargeError, match=r"is 2,049 bytes; the limit is 2,048 bytes"):
        probe_image(data[:2049], limits=limits)


def test_too_small() -> None:
    data = save(Image.new("RGB", (20, 900)), "PNG")
    with pytest.raises(ImageTooSmallError) as info:
        decode_image(data, role="style image")
    assert str(info.value) == "style image is 20x900 px; each side must be at least 32 px"


def test_extreme_aspect_ratio() -> None:
    data = save(Image.new("RGB", (4500, 100)), "PNG")
    with pytest.raises(ImageTooSmallError, match=r"aspect ratio 45:1 is too extreme \(at most 8:1\)"):
        probe_image(data, role="content image")
    assert probe_image(save(Image.new("RGB", (800, 100)), "PNG")).width == 800  # exactly 8:1 is fine


def test_every_refusal_is_an_image_error_with_its_role() -> None:
    cases = [b"", b"hello", save(Image.new("RGB", (8, 8)), "PNG"), raw_png(30000, 30000, 8, 0, None)]
    for data in cases:
        with pytest.raises(ImageError) as info:
            decode_image(data, role="style image 2")
        assert info.value.role == "style image 2"
        assert str(info.value).startswith("style image 2 ")


# ------------------------------------------------------------------------------------------ frames


def test_animated_gif_uses_first_frame() -> None:
    frames = [Image.new("RGB", (40, 40), color) for color in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    data = save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    info = probe_image(data)
    assert (info.format, info.n_frames, info.animated) == ("GIF", 3, True)
    image = decode_image(data)
    assert image.mode == "RGB"
    assert image.getpixel((20, 20)) == (255, 0, 0)


@pytest.mark.parametrize("fmt", ["WEBP", "PNG"])
def test_animated_webp_and_apng_use_first_frame(fmt: str) -> None:
    frames = [Image.new("RGB", (40, 40), color) for color in ((0, 200, 0), (200, 0, 200))]
    params = {"lossless": True} if fmt == "WEBP" else {}
    data = save(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, **params)
    info = probe_image(data)
    assert info.animated and info.n_frames == 2
    assert near(decode_image(data).getpixel((20, 20)), (0, 200, 0), 2)


# ------------------------------------------------------------------------------------- orientation


def test_exif_orientation_6_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    data = save(two_color((64, 48)), "JPEG", quality=95, exif=exif.tobytes())
    info = probe_image(data)
    assert (info.width, info.height, info.orientation) == (48, 64, 6)
    image = decode_image(data)
    assert image.size == (48, 64)
    # Turned clockwise, the stored left (red) half is now on top and the right (blue) half below.
    assert near(image.getpixel((24, 8)), (255, 0, 0), 40)
    assert near(image.getpixel((24, 56)), (0, 0, 255), 40)
    assert not image.getexif()  # the orientation is spent: nothing to rotate a second time


def test_min_side_is_checked_after_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 8
    data = save(Image.new("RGB", (200, 30)), "JPEG", exif=exif.tobytes())
    with pytest.raises(ImageTooSmallError, match=r"is 30x200 px"):
        probe_image(data)


# ------------------------------------------------------------------------------------------- modes


def test_rgba_transparency_over_white() -> None:
    im = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    im.putpixel((1, 1), (255, 0, 0, 128))
    im.putpixel((2, 2), (10, 20, 30, 255))
    image = decode_image(save(im, "PNG"))
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == (255, 255, 255)  # black, but fully transparent
    assert near(image.getpixel((1, 1)), (255, 127, 127), 1)
    assert image.getpixel((2, 2)) == (10, 20, 30)


def test_la_and_p_with_transparency_over_white() -> None:
    la = Image.new("LA", (40, 40), (0, 0))
    la.putpixel((3, 3), (100, 255))
    image = decode_image(save(la, "PNG"))
    assert image.getpixel((0, 0)) == (255, 255, 255)
    assert image.getpixel((3, 3)) == (100, 100, 100)

    p = Image.new("P", (40, 40), 0)
    p.putpalette([0, 0, 0, 0, 128, 0] + [0] * 762)
    p.putpixel((5, 5), 1)
    for fmt in ("PNG", "GIF"):
        image = decode_image(save(p, fmt, transparency=0))
        assert image.getpixel((0, 0)) == (255, 255, 255), fmt
        assert image.getpixel((5, 5)) == (0, 128, 0), fmt


def test_pa_over_white() -> None:
    pa = Image.new("PA", (4, 4))
    pa.putpalette([200, 10, 10] * 256)
    pa.putpixel((0, 0), (0, 0))
    pa.putpixel((1, 0), (0, 255))
    out = to_rgb(pa)
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert out.getpixel((1, 0)) == (200, 10, 10)


def test_rgb_and_grey_with_trns_color_key() -> None:
    rgb = Image.new("RGB", (40, 40), (1, 2, 3))
    rgb.putpixel((4, 4), (50, 60, 70))
    image = decode_image(save(rgb, "PNG", transparency=(1, 2, 3)))
    assert image.getpixel((0, 0)) == (255, 255, 255)
    assert image.getpixel((4, 4)) == (50, 60, 70)
    grey = Image.new("L", (40, 40), 7)
    grey.putpixel((4, 4), 90)
    image = decode_image(save(grey, "PNG", transparency=7))
    assert image.getpixel((0, 0)) == (255, 255, 255)
    assert image.getpixel((4, 4)) == (90, 90, 90)


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "GIF"])
def test_l_and_1_modes(fmt: str) -> None:
    grey = Image.new("L", (40, 40), 77)
    assert decode_image(save(grey, fmt)).getpixel((10, 10)) == (77, 77, 77)
    bilevel = Image.new("1", (40, 40), 0)
    bilevel.putpixel((1, 1), 1)
    image = decode_image(save(bilevel, fmt))
    assert image.getpixel((0, 0)) == (0, 0, 0)
    assert image.getpixel((1, 1)) == (255, 255, 255)


def test_cmyk_jpeg() -> None:
    # Pillow writes CMYK JPEGs Adobe-style (inverted samples with an APP14 marker) and must undo that.
    im = Image.new("CMYK", (40, 40), (0, 0, 0, 0))
    im.paste((0, 255, 255, 0), (20, 0, 40, 40))
    data = save(im, "JPEG", quality=95)
    assert probe_image(data).mode == "CMYK"
    image = decode_image(data)
    assert image.mode == "RGB"
    assert near(image.getpixel((5, 20)), (255, 255, 255), 3)
    assert near(image.getpixel((35, 20)), (255, 0, 0), 3)


def test_16_bit_grey_png_is_scaled_not_clipped() -> None:
    samples = [0, 32768, 65535, 257 * 100] + [0] * 36
    rows = [b"".join(struct.pack(">H", v) for v in samples)] * 40
    data = raw_png(40, 40, 16, 0, rows)
    info = probe_image(data)
    assert info.mode.startswith("I")
    image = decode_image(data)
    assert image.getpixel((0, 0)) == (0, 0, 0)
    assert near(image.getpixel((1, 0)), (128, 128, 128), 1)
    assert image.getpixel((2, 0)) == (255, 255, 255)
    assert image.getpixel((3, 0)) == (100, 100, 100)


@pytest.mark.parametrize(("color_type", "channels"), [(2, 3), (6, 4)])
def test_16_bit_rgb_and_rgba_png(color_type: int, channels: int) -> None:
    pixel = [65535, 32768, 0, 65535][:channels]
    rows = [b"".join(struct.pack(">H", v) for v in pixel) * 40] * 40
    image = decode_image(raw_png(40, 40, 16, color_type, rows))
    assert near(image.getpixel((7, 7)), (255, 128, 0), 1)


def test_i_f_and_ycbcr_modes() -> None:
    i = Image.fromarray(np.array([[0, 32768, 65535, 70000, -5]], dtype=np.int32))
    assert i.mode == "I"
    assert [to_rgb(i).getpixel((x, 0))[0] for x in range(5)] == [0, 128, 255, 255, 0]
    f = Image.fromarray(np.array([[0.0, 0.5, 1.0, np.nan]], dtype=np.float32))
    assert f.mode == "F"
    assert [to_rgb(f).getpixel((x, 0))[0] for x in range(4)] == [0, 128, 255, 0]
    ycc = Image.new("RGB", (4, 4), (200, 30, 90)).convert("YCbCr")
    assert near(to_rgb(ycc).getpixel((0, 0)), (200, 30, 90), 3)


def test_decoded_image_is_plain_and_detached() -> None:
    im = Image.new("RGB", (40, 40), (9, 8, 7))
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"
    data = save(im, "PNG", exif=exif.tobytes(), icc_profile=b"")
    image = decode_image(data)
    assert type(image) is Image.Image  # not a file-backed ImageFile
    assert image.info == {}
    assert image.getpixel((0, 0)) == (9, 8, 7)


def test_webp_and_bmp_decode() -> None:
    for fmt, params in (("WEBP", {"lossless": True}), ("BMP", {})):
        data = save(two_color(), fmt, **params)
        assert probe_image(data).format == fmt
        image = decode_image(data)
        assert image.getpixel((0, 0)) == (255, 0, 0)
        assert image.getpixel((63, 47)) == (0, 0, 255)


# ---------------------------------------------------------------------------------------- encoding


def test_encode_auto_keeps_png_when_it_fits() -> None:
    im = two_color((256, 256))
    encoded = encode_image(im, max_bytes=100_000)
    assert isinstance(encoded, EncodedImage)
    assert (encoded.fmt, encoded.extension, encoded.mime, encoded.quality) == ("png", "png", "image/png", None)
    assert encoded.filename("out") == "out.png"
    assert Image.open(io.BytesIO(encoded.data)).getpixel((0, 0)) == (255, 0, 0)


def test_encode_noise_fits_the_budget_and_decodes_back() -> None:
    noise = Image.effect_noise((384, 384), 90).convert("RGB")
    budget = 60_000
    assert len(encode_image(noise).data) > budget  # PNG alone would not fit
    encoded = encode_image(noise, max_bytes=budget)
    assert encoded.fmt in ("webp", "jpeg")
    assert len(encoded.data) <= budget
    back = decode_image(encoded.data)
    assert back.size == (encoded.width, encoded.height)
    assert encoded.data == encode_image(noise, max_bytes=budget).data  # deterministic


def test_encode_downscales_when_quality_is_not_enough() -> None:
    noise = Image.effect_noise((512, 512), 120).convert("RGB")
    encoded = encode_image(noise, fmt="jpeg", max_bytes=8_000)
    assert len(encoded.data) <= 8_000
    assert encoded.fmt == "jpeg" and encoded.quality is not None
    assert encoded.width < 512 and encoded.width == encoded.height


def test_encode_impossible_budget() -> None:
    # 24 bytes hold no PNG, JPEG or WebP of any picture (their headers alone are longer), so this fails for every
    # picture (100 bytes hold a 16x16 px WebP of about one unseeded noise picture in ten).
    noise = Image.frombytes("RGB", (64, 64), random.Random(7).randbytes(64 * 64 * 3))
    with pytest.raises(EncodeError, match=r"could not encode the 64x64 px image in 24 bytes"):
        encode_image(noise, max_bytes=24)
    with pytest.raises(EncodeError):
        encode_image(noise, max_bytes=0)


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_encode_explicit_format_without_metadata(fmt: str) -> None:
    im = two_color((64, 64))
    exif = Image.Exif()
    exif[0x0112] = 6
    im.info["exif"] = exif.tobytes()
    im.info["icc_profile"] = b"not really a profile"
    encoded = encode_image(im, fmt=fmt)
    assert encoded.fmt == fmt
    reopened = Image.open(io.BytesIO(encoded.data))
    assert reopened.format == {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}[fmt]
    assert not reopened.getexif()
    assert "icc_profile" not in reopened.info
    assert "exif" in im.info  # the caller's image is left alone


def test_encode_rgba_flattens_over_white() -> None:
    encoded = encode_image(Image.new("RGBA", (40, 40), (0, 0, 0, 0)), fmt="png")
    assert Image.open(io.BytesIO(encoded.data)).convert("RGB").getpixel((0, 0)) == (255, 255, 255)


def test_human_bytes() -> None:
    assert human_bytes(0) == "0 bytes"
    assert human_bytes(1000) == "1000 bytes"
    assert human_bytes(2048) == "2 KB"
    assert human_bytes(int(31.5 * 1024 * 1024)) == "31.5 MB"


# -------------------------------------------------------------------------------------- real files


def test_real_sample_images(sample_images: Path) -> None:
    files = sorted(p for p in sample_images.glob("*/*") if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".webp"})
    assert files, f"no pictures in {sample_images}"
    for path in files:
        data = path.read_bytes()
        info = probe_image(data, role=path.name)
        image = decode_image(data, role=path.name)
        assert image.mode == "RGB", path.name
        assert image.size == (info.width, info.height), path.name
        assert np.asarray(image).std() > 5, path.name  # real content, not a blank canvas


def test_tiny_pixel_limits_are_not_shown_as_zero():
    from nst_engine.images import human_pixels

    assert human_pixels(48_200_000) == "48.2 MP"
    assert human_pixels(12_000) == "0.012 MP"
    data = save(Image.new("RGB", (200, 200)), "PNG")
    with pytest.raises(TooManyPixelsError, match=r"the limit is 0\.01 MP"):
        decode_image(data, role="style image", limits=ImageLimits(max_pixels=10_000))

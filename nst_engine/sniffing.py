"""What a file really is, from its first bytes: one of the image formats the engine reads, or a name for anything
else (a PDF, a video, a program), so a refusal can say what was sent instead of "unknown format"."""

from __future__ import annotations

import struct

_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"%PDF", 0, "PDF document"),
    (b"PK\x03\x04", 0, "ZIP archive"),
    (b"\x1f\x8b", 0, "gzip archive"),
    (b"Rar!", 0, "RAR archive"),
    (b"7z\xbc\xaf", 0, "7-Zip archive"),
    (b"II*\x00", 0, "TIFF image"),
    (b"MM\x00*", 0, "TIFF image"),
    (b"\x00\x00\x01\x00", 0, "ICO icon"),
    (b"8BPS", 0, "Photoshop document"),
    (b"\x1aE\xdf\xa3", 0, "WebM/Matroska video"),
    (b"OggS", 0, "Ogg media"),
    (b"ID3", 0, "MP3 audio"),
    (b"fLaC", 0, "FLAC audio"),
    (b"\x7fELF", 0, "program (ELF)"),
    (b"\xff\x0a", 0, "JPEG XL image"),
    (b"\x00\x00\x00\x0cJXL ", 0, "JPEG XL image"),
)
_DIB_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}
_FTYP = {
    b"heic": "HEIC image",
    b"heix": "HEIC image",
    b"mif1": "HEIF image",
    b"avif": "AVIF image",
    b"avis": "AVIF image",
    b"qt  ": "QuickTime video",
    b"isom": "MP4 video",
    b"mp42": "MP4 video",
}


def sniff(data: bytes) -> str | None:
    """Name the format of ``data`` by its content: a supported Pillow format name, or a description."""
    head = data[:32]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    # "BM" alone is too weak (text can start with it): also require a known DIB header size.
    if head[:2] == b"BM" and len(head) >= 18 and struct.unpack_from("<I", head, 14)[0] in _DIB_SIZES:
        return "BMP"
    if head[:4] == b"RIFF":
        return {b"WAVE": "WAV audio", b"AVI ": "AVI video"}.get(head[8:12], "RIFF file")
    if head[4:8] == b"ftyp":
        return _FTYP.get(head[8:12], "MP4/HEIF container")
    for magic, offset, name in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return name
    sample = data[:4096].lstrip(b"\xef\xbb\xbf")
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character may be cut at the end of the sample.
        try:
            text = sample[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return None
    stripped = text.lstrip().lower()
    if stripped.startswith(("<svg", "<?xml")) and "<svg" in stripped[:1000]:
        return "SVG drawing"
    if stripped.startswith(("<!doctype html", "<html")):
        return "HTML page"
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    if text and printable / len(text) > 0.95:
        return "text"
    return None


# ------------------------------------------------------------------------------------------- opening

# Pillow warns (DecompressionBombWarning) from inside Image.open for big images. Silencing that needs
# warnings.catch_warnings, which swaps process-wide state; the lock keeps our own calls from
# interleaving and leaving the filter list in a wrong state.

"""Decode, validate and encode the images the engine reads and writes.

Everything that comes from a user goes through :func:`decode_image` (or :func:`probe_image` for a cheap
look at the header): limits are checked in the order that costs least (bytes, format, pixels from the
header, sides, aspect) *before* any pixel is decoded, and every refusal is a typed
:class:`~nst_engine.errors.ImageError` whose message names the image's role and the limit.
"""

from __future__ import annotations

import io
import re
import struct
import threading
import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from PIL import Image, ImageCms, ImageFile

from nst_engine.errors import (
    CorruptImageError,
    EncodeError,
    FileTooLargeError,
    ImageTooSmallError,
    TooManyPixelsError,
    UnsupportedFormatError,
)
from nst_engine.options import MIN_SIDE

__all__ = [
    "SUPPORTED_FORMATS",
    "EncodeFormat",
    "EncodedImage",
    "ImageInfo",
    "ImageLimits",
    "decode_image",
    "encode_image",
    "human_bytes",
    "human_pixels",
    "probe_image",
    "to_rgb",
]

# Pillow format names we accept. MPO (multi-picture JPEG from phones) is opened by the JPEG plugin
# and reported as "JPEG".
SUPPORTED_FORMATS: frozenset[str] = frozenset({"PNG", "JPEG", "WEBP", "GIF", "BMP"})
_FORMAT_NAMES = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP", "GIF": "GIF", "BMP": "BMP"}
_ORDER = ("PNG", "JPEG", "WEBP", "GIF", "BMP")

_MB = 1024 * 1024


@dataclass(frozen=True)
class ImageLimits:
    """What an input image may be. Defaults suit a Discord attachment (25 MB)."""

    max_bytes: int = 25 * _MB
    max_pixels: int = 40_000_000
    min_side: int = MIN_SIDE  # the engine's own minimum
    max_aspect: float = 8.0  # long side / short side
    formats: frozenset[str] = field(default=SUPPORTED_FORMATS)

    def __post_init__(self) -> None:
        if self.max_bytes <= 0 or self.max_pixels <= 0 or self.min_side <= 0:
            raise ValueError("ImageLimits: max_bytes, max_pixels and min_side must be positive")
        if self.max_aspect < 1.0:
            raise ValueError("ImageLimits: max_aspect must be at least 1.0")
        formats = frozenset(f.upper() for f in self.formats)
        unknown = formats - SUPPORTED_FORMATS
        if unknown or not formats:
            raise ValueError(
                f"ImageLimits: formats must be a non-empty subset of {sorted(SUPPORTED_FORMATS)}"
            )
        object.__setattr__(self, "formats", formats)


DEFAULT_LIMITS = ImageLimits()


@dataclass(frozen=True)
class ImageInfo:
    """What the header says. ``width``/``height`` are as displayed, i.e. after EXIF orientation."""

    format: str  # "PNG", "JPEG", "WEBP", "GIF" or "BMP"
    width: int
    height: int
    mode: str  # Pillow mode of the stored data ("RGB", "P", "I;16", "CMYK", ...)
    n_frames: int
    animated: bool
    orientation: int  # EXIF orientation 1..8 (1 = as stored)
    n_bytes: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


# ---------------------------------------------------------------------------------------------- sizes


def _trim(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}".rstrip("0").rstrip(".") if decimals else f"{value:.0f}"


def human_bytes(n: int, *, exact: bool = False) -> str:
    """``512 bytes``, ``12.5 KB``, ``31.5 MB`` (binary units, as Discord counts them)."""
    if n < 1024:
        return f"{n} byte" if n == 1 else f"{n} bytes"
    value, unit = (n / _MB, "MB") if n >= _MB else (n / 1024, "KB")
    text = f"{value:.1f} {unit}" if exact else f"{_trim(value, 1)} {unit}"
    return text


def human_pixels(n: int) -> str:
    """``48.2 MP`` (one decimal); tiny counts keep two significant digits (``0.012 MP``) rather than read 0."""
    mp = n / 1e6
    return f"{mp:.1f} MP" if mp >= 0.1 else f"{mp:.2g} MP"


def _limit_pixels(n: int) -> str:
    mp = n / 1e6
    return f"{_trim(mp, 1)} MP" if mp >= 0.1 else f"{mp:.2g} MP"


def _ratio(r: float) -> str:
    return f"{_trim(r, 1)}:1"


# ------------------------------------------------------------------------------------------- sniffing

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


def _sniff(data: bytes) -> str | None:
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
_WARNINGS_LOCK = threading.Lock()
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")
_SWAPS = {5, 6, 7, 8}
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# What a broken file makes Pillow raise, depending on the plugin and where the damage is.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, MemoryError)


def _expected(limits: ImageLimits) -> str:
    names = [_FORMAT_NAMES[f] for f in _ORDER if f in limits.formats]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _unsupported(role: str, found: str, limits: ImageLimits) -> UnsupportedFormatError:
    return UnsupportedFormatError(
        f"{role} is not a supported image (found: {found}); expected {_expected(limits)}", role=role
    )


def _too_many_pixels(
    role: str, pixels: int, size: tuple[int, int] | None, limits: ImageLimits
) -> TooManyPixelsError:
    shown = human_pixels(pixels)
    if size is not None:
        shown += f" ({size[0]}x{size[1]} px)"
    if human_pixels(pixels) == human_pixels(limits.max_pixels):
        shown += f" = {pixels:,} pixels, limit {limits.max_pixels:,}"
    return TooManyPixelsError(
        f"{role} is {shown}; the limit is {_limit_pixels(limits.max_pixels)}",
        role=role,
    )


def _check_bytes(data: bytes, role: str, limits: ImageLimits) -> None:
    if not data:
        raise CorruptImageError(f"{role} is empty (0 bytes)", role=role)
    if len(data) > limits.max_bytes:
        size, limit = human_bytes(len(data), exact=True), human_bytes(limits.max_bytes)
        if size.split()[0].rstrip("0").rstrip(".") == limit.split()[0]:
            size, limit = f"{len(data):,} bytes", f"{limits.max_bytes:,} bytes"
        raise FileTooLargeError(f"{role} is {size}; the limit is {limit}", role=role)


def _orientation(im: Image.Image) -> int:
    """EXIF orientation of ``im``; 1 when absent or unreadable (damaged EXIF is not worth refusing for)."""
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _open(data: bytes, role: str, limits: ImageLimits) -> tuple[ImageFile.ImageFile, ImageInfo]:
    """Open ``data`` (header only) and run every check that needs no decoding. Caller closes the image."""
    _check_bytes(data, role, limits)
    sniffed = _sniff(data)
    if sniffed is None:
        raise _unsupported(role, "unrecognised data", limits)
    if sniffed not in SUPPORTED_FORMATS:
        raise _unsupported(role, sniffed, limits)
    if sniffed not in limits.formats:
        raise _unsupported(role, f"{_FORMAT_NAMES[sniffed]} image", limits)
    try:
        with _WARNINGS_LOCK, warnings.catch_warnings():
            # Our own pixel limit is checked right below; Pillow's warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # Only the sniffed plugin may parse the bytes: the content decides, never a file name.
            im = Image.open(io.BytesIO(data), formats=[sniffed])
    except Image.DecompressionBombError as exc:
        # Only reached when max_pixels is above twice Pillow's MAX_IMAGE_PIXELS.
        match = _BOMB_PIXELS.search(str(exc))
        pixels = int(match.group(1)) if match else limits.max_pixels + 1
        raise _too_many_pixels(role, pixels, None, limits) from exc
    except _DECODE_ERRORS as exc:
        raise CorruptImageError(
            f"{role} is damaged or truncated (its {_FORMAT_NAMES[sniffed]} header could not be read)",
            role=role,
        ) from exc
    try:
        info = _check_header(im, data, role, limits)
    except BaseException:
        im.close()
        raise
    return im, info


def _check_header(im: ImageFile.ImageFile, data: bytes, role: str, limits: ImageLimits) -> ImageInfo:
    width, height = im.size
    if width * height > limits.max_pixels:
        raise _too_many_pixels(role, width * height, (width, height), limits)
    fmt = "JPEG" if im.format == "MPO" else (im.format or "")
    orientation = _orientation(im)
    if orientation in _SWAPS:
        width, height = height, width
    if min(width, height) < limits.min_side:
        raise ImageTooSmallError(
            f"{role} is {width}x{height} px; each side must be at least {limits.min_side} px", role=role
        )
    aspect = max(width, height) / min(width, height)
    if aspect > limits.max_aspect:
        raise ImageTooSmallError(
            f"{role} is {width}x{height} px; its aspect ratio {_ratio(aspect)} is too extreme "
            f"(at most {_ratio(limits.max_aspect)}). Crop it closer to a square.",
            role=role,
        )
    try:
        # Header-only for PNG/WebP; for GIF Pillow walks the frame headers without decoding them.
        n_frames = int(getattr(im, "n_frames", 1))
    except _DECODE_ERRORS:
        n_frames = 1  # a damaged later frame does not matter: only the first is used
    return ImageInfo(
        format=fmt,
        width=width,
        height=height,
        mode=im.mode,
        n_frames=n_frames,
        # MPO's extra frames are stereo/preview pictures, not an animation.
        animated=n_frames > 1 and im.format != "MPO",
        orientation=orientation,
        n_bytes=len(data),
    )


def probe_image(data: bytes, *, role: str = "image", limits: ImageLimits | None = None) -> ImageInfo:
    """Validate ``data`` from its header alone and say what it is. Raises the typed ImageError subclasses."""
    im, info = _open(data, role, limits or DEFAULT_LIMITS)
    im.close()
    return info


# ------------------------------------------------------------------------------------------ decoding


def _over_white(im: Image.Image) -> Image.Image:
    rgba = im.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _from_array(values: np.ndarray) -> Image.Image:
    gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return Image.fromarray(gray).convert("RGB")


def _cmyk_to_rgb(im: Image.Image) -> Image.Image:
    icc = im.info.get("icc_profile")
    if icc:
        # An embedded CMYK profile gives far truer colours than Pillow's naive formula.
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(
                im, source, ImageCms.createProfile("sRGB"), outputMode="RGB"
            )
        except (ImageCms.PyCMSError, OSError, ValueError):
            converted = None
        if converted is not None:
            return converted
    return im.convert("RGB")


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB: transparency over white, high bit depths scaled (not clipped)."""
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return im.copy()
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        return _over_white(im)
    if mode.startswith("I;16") or mode == "I":
        # 16-bit grey: 65535 is white. Mode "I" from our formats also holds 16-bit samples.
        values = np.asarray(im).astype(np.float64)
        return _from_array(np.clip(values, 0, 65535) / 257.0)
    if mode == "F":
        values = np.nan_to_num(np.asarray(im).astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        # Floats in [0, 1] are the common convention; anything larger is taken as 0..255.
        scale = 255.0 if values.size and values.max() <= 1.0 else 1.0
        return _from_array(values * scale)
    if mode == "CMYK":
        return _cmyk_to_rgb(im)
    return im.convert("RGB")


def decode_image(data: bytes, *, role: str = "image", limits: ImageLimits | None = None) -> Image.Image:
    """Validate and fully decode ``data`` into a plain, loaded RGB image, EXIF orientation applied.

    Only the first frame of an animation is used. Raises the typed ImageError subclasses.
    """
    im, info = _open(data, role, limits or DEFAULT_LIMITS)
    with im:
        try:
            im.load()
            rgb = to_rgb(im)
        except _DECODE_ERRORS as exc:
            raise CorruptImageError(
                f"{role} is damaged or truncated; re-save or re-export it", role=role
            ) from exc
    if info.orientation in _TRANSPOSE:
        rgb = rgb.transpose(_TRANSPOSE[info.orientation])
    rgb.info.clear()  # no EXIF, ICC or comments travel on
    return rgb


# ------------------------------------------------------------------------------------------ encoding

EncodeFormat = Literal["auto", "png", "jpeg", "webp"]
_DEFAULT_QUALITY = 90  # lossy quality when there is no byte budget
_QUALITIES = (95, 90, 85, 80, 75, 70, 60, 50, 40)
_EXT = {"png": ("png", "image/png"), "jpeg": ("jpg", "image/jpeg"), "webp": ("webp", "image/webp")}
_MIN_ENCODE_SIDE = 16
_MAX_DOWNSCALES = 12


@dataclass(frozen=True)
class EncodedImage:
    data: bytes
    fmt: str  # "png", "jpeg" or "webp"
    extension: str  # without the dot: "png", "jpg", "webp"
    mime: str
    quality: int | None  # None for PNG
    width: int
    height: int

    def filename(self, stem: str = "stylized") -> str:
        return f"{stem}.{self.extension}"


def _save(im: Image.Image, fmt: str, quality: int | None) -> bytes:
    buf = io.BytesIO()
    if fmt == "png":
        im.save(buf, "PNG", compress_level=6)
    elif fmt == "jpeg":
        im.save(buf, "JPEG", quality=quality, optimize=True)
    else:
        im.save(buf, "WEBP", quality=quality, method=4)
    return buf.getvalue()


def _result(im: Image.Image, fmt: str, quality: int | None, data: bytes) -> EncodedImage:
    ext, mime = _EXT[fmt]
    return EncodedImage(data, fmt, ext, mime, quality, im.width, im.height)


def _best_quality(im: Image.Image, fmt: str, max_bytes: int) -> tuple[EncodedImage | None, int]:
    """Highest ladder quality that fits (binary search: size falls with quality); smallest size seen."""
    lo, hi = 0, len(_QUALITIES) - 1
    best: EncodedImage | None = None
    smallest = 0
    while lo <= hi:
        mid = (lo + hi) // 2
        data = _save(im, fmt, _QUALITIES[mid])
        smallest = len(data) if not smallest else min(smallest, len(data))
        if len(data) <= max_bytes:
            best = _result(im, fmt, _QUALITIES[mid], data)
            hi = mid - 1
        else:
            lo = mid + 1
    return best, smallest


def encode_image(
    image: Image.Image, *, fmt: EncodeFormat = "auto", max_bytes: int | None = None
) -> EncodedImage:
    """Encode ``image`` as PNG, JPEG or WebP, within ``max_bytes`` when given. Deterministic; no metadata.

    ``"auto"`` keeps PNG when it fits, else the best WebP, then JPEG quality that fits, and downscales in
    steps when even quality 40 is too big. An explicit format only lowers quality (JPEG/WebP) and downscales.
    Raises EncodeError when nothing fits.
    """
    if fmt not in ("auto", "png", "jpeg", "webp"):
        raise ValueError(f"unknown image format {fmt!r}; use auto, png, jpeg or webp")
    if max_bytes is not None and max_bytes <= 0:
        raise EncodeError(f"the byte budget must be positive, got {max_bytes}")
    if image.width < 1 or image.height < 1:
        raise EncodeError(f"cannot encode an empty image ({image.width}x{image.height} px)")
    im = to_rgb(image)
    im.info.clear()  # otherwise Pillow would copy an ICC profile or EXIF into the file
    if max_bytes is None:
        chosen = "png" if fmt == "auto" else fmt
        quality = None if chosen == "png" else _DEFAULT_QUALITY
        return _result(im, chosen, quality, _save(im, chosen, quality))

    chain = ["png"] if fmt == "png" else ["webp", "jpeg"] if fmt == "auto" else [fmt]
    if fmt == "auto":
        data = _save(im, "png", None)
        if len(data) <= max_bytes:
            return _result(im, "png", None, data)
    original = im.size
    smallest = (0, im.size)
    for _ in range(_MAX_DOWNSCALES + 1):
        sizes = []
        for f in chain:
            if f == "png":
                data = _save(im, "png", None)
                if len(data) <= max_bytes:
                    return _result(im, "png", None, data)
                size = len(data)
            else:
                found, size = _best_quality(im, f, max_bytes)
                if found is not None:
                    return found
            sizes.append(size)
        least = min(sizes)
        if not smallest[0] or least < smallest[0]:
            smallest = (least, im.size)
        # Bytes grow roughly with the pixel count, so aim straight at the budget (with a margin),
        # but never shrink by more than half or less than 10% in one step.
        factor = min(0.9, max(0.5, (max_bytes / least) ** 0.5 * 0.9))
        new_size = (round(im.width * factor), round(im.height * factor))
        if min(new_size) < _MIN_ENCODE_SIDE:
            break
        im = im.resize(new_size, Image.Resampling.LANCZOS)
    raise EncodeError(
        f"could not encode the {original[0]}x{original[1]} px image in {human_bytes(max_bytes)}: "
        f"the smallest attempt was {human_bytes(smallest[0])} at {smallest[1][0]}x{smallest[1][1]} px"
    )

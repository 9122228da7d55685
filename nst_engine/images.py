"""Decode and validate the images the engine reads (encoding a result is ``nst_engine.encoding``).

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

import numpy as np
from PIL import Image, ImageCms, ImageFile

from nst_engine.errors import (
    CorruptImageError,
    FileTooLargeError,
    ImageTooSmallError,
    TooManyPixelsError,
    UnsupportedFormatError,
)
from nst_engine.options import MIN_SIDE
from nst_engine.sniffing import sniff

__all__ = [
    "SUPPORTED_FORMATS",
    "ImageInfo",
    "ImageLimits",
    "decode_image",
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
    sniffed = sniff(data)
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

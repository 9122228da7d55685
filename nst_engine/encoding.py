"""Encoding a result picture: PNG, JPEG or WebP, within a byte budget (quality first, then size)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Literal

from PIL import Image

from nst_engine.errors import EncodeError
from nst_engine.images import human_bytes, to_rgb

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

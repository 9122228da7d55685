"""The built-in paintings: public-domain works shipped inside the package (``bot/gallery/paintings``), offered everywhere.

Each is decoded once per process and the same image object is handed to every job, so a built-in painting
always reaches the engine as identical pixels (which lets the engine reuse its style targets).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

from PIL import Image

from nst_engine.images import decode_image

FOLDER = "paintings"  # inside this package (package data in pyproject.toml)


@dataclass(frozen=True)
class BuiltinPainting:
    name: str
    filename: str
    artist: str
    year: int

    @property
    def credit(self) -> str:
        return f"{self.artist}, {self.name} ({self.year}), public domain"

    @property
    def key(self) -> str:
        """A stable identity for the engine-side cache and logs."""
        return f"builtin:{self.filename.rsplit('.', 1)[0]}"


BUILTINS: tuple[BuiltinPainting, ...] = (
    BuiltinPainting("Starry Night", "starry_night.jpg", "Vincent van Gogh", 1889),
    BuiltinPainting("The Scream", "the_scream.jpg", "Edvard Munch", 1893),
    BuiltinPainting("The Shipwreck", "shipwreck.jpg", "J. M. W. Turner", 1805),
    BuiltinPainting("Woman with a Hat", "woman_with_a_hat.jpg", "Henri Matisse", 1905),
)
_BY_KEY = {p.name.casefold(): p for p in BUILTINS}


def find_builtin(name: str) -> BuiltinPainting | None:
    """The built-in painting called ``name`` (case-insensitive, spaces collapsed), or None."""
    return _BY_KEY.get(" ".join(name.split()).casefold())


def builtin_bytes(painting: BuiltinPainting) -> bytes:
    return resources.files(__package__).joinpath(FOLDER, painting.filename).read_bytes()


@functools.cache
def builtin_image(painting: BuiltinPainting) -> Image.Image:
    """The decoded painting (RGB), decoded once per process; callers must not modify it."""
    return decode_image(builtin_bytes(painting), role=f"built-in painting {painting.name}")

"""A bounded, per-process cache of style targets: the Gram matrices of one style image at one resolution.

A style image's targets depend only on its pixels, the resolution it is resized to, the network's weights and the
precision of the pass, never on the content image or the strength; so a worker that gets the same painting again
(a server's gallery, a re-run with another strength or seed) can skip the style image's VGG passes at every scale.
Entries are evicted least recently used first once their tensors exceed ``max_bytes``.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import torch
from PIL import Image

DEFAULT_MAX_BYTES = 128 * 2**20  # ~12 MB per painting per size with the five style layers of a 5-scale job

Grams = dict[str, torch.Tensor]


def image_digest(image: Image.Image) -> str:
    """Digest of an image's RGB pixels and size (not its file bytes: the same picture re-encoded still matches)."""
    rgb = image.convert("RGB")
    digest = hashlib.blake2b(f"{rgb.width}x{rgb.height}".encode(), digest_size=20)
    digest.update(rgb.tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int
    entries: int
    bytes: int
    max_bytes: int


def _nbytes(grams: Grams) -> int:
    return sum(t.numel() * t.element_size() for t in grams.values())


class StyleTargetCache:
    """LRU map from a key (style digest, resolution, weights, precision, device) to that style's Gram targets."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, Grams] = OrderedDict()
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._lock = threading.Lock()

    def get_or_compute(self, key: Hashable, compute: Callable[[], Grams]) -> Grams:
        """The cached targets for ``key``, or ``compute()``'s, stored when they fit."""
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self._hits += 1
                return found
            self._misses += 1
        grams = compute()  # outside the lock: a VGG pass takes a while
        self._put(key, grams)
        return grams

    def _put(self, key: Hashable, grams: Grams) -> None:
        size = _nbytes(grams)
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= _nbytes(old)
            self._entries[key] = grams
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= _nbytes(evicted)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            self._hits = self._misses = 0

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self._hits, self._misses, len(self._entries), self._bytes, self.max_bytes)


# One per process: each pool worker keeps its own, next to its own copy of the network.
STYLE_TARGETS = StyleTargetCache()

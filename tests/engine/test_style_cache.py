"""The per-process cache of style targets (Gram matrices per layer and size), and the engine's use of it."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from nst_engine import stylize
from nst_engine.device import bf16_supported
from nst_engine.presets import STYLE_LAYERS
from nst_engine.style_cache import StyleTargetCache, image_digest


def _picture(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


CONTENT = _picture(64, 48, 1)
STYLE = _picture(56, 48, 2)


class StylePassCounter:
    """Counts the network's passes that compute style layers only (the style image's passes)."""

    def __init__(self, model) -> None:
        self.count = 0
        self._forward = model.forward
        model.forward = self  # instance attribute: nn.Module.__call__ finds it first

    def __call__(self, image, layers, dtype=None):
        if tuple(layers) == STYLE_LAYERS:
            self.count += 1
        return self._forward(image, layers, dtype)


@pytest.fixture
def counted(model):
    counter = StylePassCounter(model)
    yield counter
    del model.forward


def test_a_second_job_with_the_same_painting_skips_the_style_passes(model, counted):
    cache = StyleTargetCache()
    first = stylize(CONTENT, STYLE, model=model, preset="fast", size=192, iterations=2, style_cache=cache)
    scales = len(first.summary.scales)
    assert scales >= 2 and counted.count == scales  # one style pass per scale, each stored
    assert cache.stats().misses == scales and cache.stats().entries == scales

    counted.count = 0
    # Another strength and seed: the targets do not depend on them. The same pixels re-made as a new image object.
    again = stylize(CONTENT, STYLE.copy(), model=model, preset="fast", size=192, iterations=2, strength=2, seed=5,
                    style_cache=cache)  # fmt: skip
    assert counted.count == 0
    assert cache.stats().hits == scales
    assert again.summary.end.style != first.summary.end.style  # the strength did change the job

    counted.count = 0
    same = stylize(CONTENT, STYLE, model=model, preset="fast", size=192, iterations=2, style_cache=cache)
    assert np.array_equal(np.asarray(same.image), np.asarray(first.image)), "cached targets give the same picture"


@pytest.mark.parametrize(
    ("change", "expect_passes"),
    [
        ({"size": 80}, 1),
        ({"style_scale": 0.5}, 1),
        ({"style": _picture(56, 48, 3)}, 1),  # another painting of the same size
        ({"preserve_colors": True}, 1),  # luminance matched to this content: never cached
        ({"strength": 3.0}, 0),
    ],
)
def test_a_different_size_scale_or_painting_misses(model, counted, change, expect_passes):
    cache = StyleTargetCache()
    stylize(CONTENT, STYLE, model=model, size=96, iterations=1, style_cache=cache)  # one scale
    counted.count = 0
    kwargs = {"size": 96, "iterations": 1, **change}
    style = kwargs.pop("style", STYLE)
    stylize(CONTENT, style, model=model, style_cache=cache, **kwargs)
    assert counted.count == expect_passes


def test_other_precision_or_weights_miss(model, counted):
    cache = StyleTargetCache()
    stylize(CONTENT, STYLE, model=model, size=48, iterations=1, precision="fp32", style_cache=cache)
    if bf16_supported(model.device):
        counted.count = 0
        stylize(CONTENT, STYLE, model=model, size=48, iterations=1, precision="bf16", style_cache=cache)
        assert counted.count == 1
    edited = copy.deepcopy(model)
    with torch.no_grad():
        edited.features[0].weight.mul_(2)
    before = cache.stats().misses
    stylize(CONTENT, STYLE, model=edited, size=48, iterations=1, precision="fp32", style_cache=cache)
    assert cache.stats().misses == before + 1


def test_without_a_cache_every_job_computes_its_targets(model, counted):
    for _ in range(2):
        stylize(CONTENT, STYLE, model=model, size=48, iterations=1, style_cache=None)
    assert counted.count == 2


def _grams(nbytes: int) -> dict[str, torch.Tensor]:
    return {"relu1_1": torch.zeros(nbytes // 4, dtype=torch.float32)}


def test_cache_is_bounded_by_bytes_and_evicts_the_least_recently_used():
    cache = StyleTargetCache(max_bytes=3000)
    calls: list[str] = []

    def make(name: str, nbytes: int = 1000):
        def compute() -> dict[str, torch.Tensor]:
            calls.append(name)
            return _grams(nbytes)

        return compute

    for name in "abc":
        cache.get_or_compute(name, make(name))
    cache.get_or_compute("a", make("a"))  # a is now the most recently used
    cache.get_or_compute("d", make("d"))  # over 3000 bytes: b goes
    assert calls == ["a", "b", "c", "d"]
    assert cache.stats().bytes == 3000 and cache.stats().entries == 3
    cache.get_or_compute("b", make("b"))  # recomputed; evicts c
    cache.get_or_compute("a", make("a"))
    assert calls == ["a", "b", "c", "d", "b"]
    huge = cache.get_or_compute("huge", make("huge", 4000))  # larger than the whole cache: returned, not stored
    assert huge["relu1_1"].numel() == 1000 and cache.stats().entries == 3 and cache.stats().bytes <= 3000
    cache.clear()
    assert cache.stats() == type(cache.stats())(0, 0, 0, 0, 3000)


def test_real_jobs_stay_within_the_byte_bound(model):
    cache = StyleTargetCache(max_bytes=3 * 2**20)
    for size in (48, 64, 80, 96):
        stylize(CONTENT, STYLE, model=model, size=size, iterations=1, style_cache=cache)
    stats = cache.stats()
    assert 0 < stats.bytes <= 3 * 2**20 and stats.misses == 4 and stats.entries < 4


def test_digest_depends_on_pixels_not_on_the_image_object():
    assert image_digest(STYLE) == image_digest(STYLE.copy()) == image_digest(STYLE.convert("RGBA"))
    changed = STYLE.copy()
    changed.putpixel((0, 0), (0, 0, 0) if STYLE.getpixel((0, 0)) != (0, 0, 0) else (1, 1, 1))
    assert image_digest(changed) != image_digest(STYLE)
    assert image_digest(STYLE.resize((48, 56))) != image_digest(STYLE)

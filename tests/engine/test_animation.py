"""Animated pictures: reading every frame within the limits, writing animated WebP and GIF, and painting a clip
steadily (real weights) with progress per frame and cancellation."""

from __future__ import annotations

import io
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from nst_engine import Cancelled, load_vgg, stylize
from nst_engine.animation import Clip, TooManyFramesError, decode_clip, encode_clip
from nst_engine.engine import evaluate_losses
from nst_engine.errors import CorruptImageError, EncodeError, TooManyPixelsError
from nst_engine.images import ImageLimits
from nst_engine.temporal import next_frame_iterations, stylize_clip
from nst_engine.types import ProgressEvent
from tests.clips import frame_changes, pan_and_hold, steadiness


def _colour_clip(n: int, size: tuple[int, int] = (48, 40), durations: list[int] | None = None) -> Clip:
    frames = tuple(Image.new("RGB", size, (40 * i % 256, 255 - 30 * i % 256, 90)) for i in range(n))
    return Clip(frames, tuple(durations or [70 + 10 * i for i in range(n)]), loop=0)


def _save(clip: Clip, fmt: str) -> bytes:
    buf = io.BytesIO()
    clip.frames[0].save(buf, fmt, save_all=True, append_images=list(clip.frames[1:]), duration=list(clip.durations),
                        loop=0, **({"lossless": True} if fmt == "WEBP" else {}))  # fmt: skip
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_every_frame_of_a_gif_apng_or_webp_is_read_with_its_duration_and_loop(fmt: str) -> None:
    source = _colour_clip(5)
    clip = decode_clip(_save(source, fmt))
    assert len(clip) == 5 and clip.size == (48, 40) and clip.loop == 0
    assert clip.durations == source.durations
    for ours, theirs in zip(clip.frames, source.frames, strict=True):
        assert np.abs(np.asarray(ours, dtype=int) - np.asarray(theirs, dtype=int)).max() <= 8  # GIF's palette


def test_a_still_is_a_one_frame_clip() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (40, 40), "red").save(buf, "PNG")
    clip = decode_clip(buf.getvalue())
    assert len(clip) == 1 and clip.notes == ()


def test_too_many_frames_are_refused_with_the_numbers_or_cut_when_asked() -> None:
    data = _save(_colour_clip(6), "GIF")
    with pytest.raises(TooManyFramesError, match=r"content image is an animation of 6 frames; the limit is 4 frames"):
        decode_clip(data, max_frames=4)
    cut = decode_clip(data, max_frames=4, shorten=True)
    assert len(cut) == 4 and cut.notes == ("shortened to its first 4 of 6 frames",)


def test_the_pixel_limit_counts_every_frame_before_any_is_decoded() -> None:
    data = _save(_colour_clip(6, size=(100, 100)), "GIF")  # 6 x 10,000 px
    decode_clip(data, limits=ImageLimits(max_pixels=60_000))
    with pytest.raises(TooManyPixelsError, match=r"6 frames of 100x100 px, 0\.06 MP in all; the limit is 0\.05 MP"):
        decode_clip(data, limits=ImageLimits(max_pixels=50_000))


def test_a_clip_damaged_in_a_later_frame_names_the_frame() -> None:
    data = _save(_colour_clip(4, size=(64, 64)), "PNG")
    with pytest.raises(CorruptImageError, match=r"damaged or truncated at frame [2-4]"):
        decode_clip(data[: len(data) - 60])


@pytest.mark.parametrize("fmt", ["webp", "gif"])
def test_an_encoded_clip_keeps_frames_durations_and_loop(fmt: str) -> None:
    clip = _colour_clip(4)
    encoded = encode_clip(clip, fmt=fmt)  # type: ignore[arg-type]
    back = Image.open(io.BytesIO(encoded.data))
    assert encoded.fmt == fmt and back.format == fmt.upper() and back.n_frames == 4
    durations = []
    for index in range(back.n_frames):
        back.seek(index)
        back.load()  # WebP reads a frame's duration when it decodes the frame
        durations.append(back.info["duration"])
    assert tuple(durations) == clip.durations and back.info.get("loop") == 0


def test_encoding_within_a_budget_lowers_quality_then_size_and_says_when_nothing_fits() -> None:
    rng = np.random.default_rng(0)
    frames = tuple(Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)) for _ in range(4))
    clip = Clip(frames, (100,) * 4)
    unbounded = encode_clip(clip)
    fitted = encode_clip(clip, max_bytes=len(unbounded.data) // 3)
    assert len(fitted.data) <= len(unbounded.data) // 3
    assert Image.open(io.BytesIO(fitted.data)).n_frames == 4
    with pytest.raises(EncodeError, match="could not encode the 4-frame 96x96 px animation in 100 bytes"):
        encode_clip(clip, max_bytes=100)


@pytest.fixture(scope="module")
def real_model(real_weights_path: Path) -> Any:
    return load_vgg(real_weights_path, "cpu")


@pytest.fixture(scope="module")
def painting(sample_images: Path) -> Image.Image:
    return Image.open(sample_images / "style" / "starry_night.jpg").convert("RGB")


@pytest.fixture(scope="module")
def photo(sample_images: Path) -> Image.Image:
    return Image.open(sample_images / "content" / "chelsea.png").convert("RGB")


# fp32: the same figures on every CPU (bf16 rounds differently with and without AMX)
OPTIONS = {"preset": "fast", "size": 96, "precision": "fp32"}


@pytest.mark.realweights
def test_a_clip_is_painted_steadily_and_each_frame_as_well_as_a_still(real_model: Any, painting: Image.Image,
                                                                      photo: Image.Image) -> None:  # fmt: skip
    source = pan_and_hold(photo, width=96, height=72, pan=3, hold=1)
    events: list[ProgressEvent] = []
    result = stylize_clip(source, painting, model=real_model, progress=events.append, **OPTIONS)
    assert result.clip is not None and len(result.clip) == 4 and result.summary.frames == 4
    assert result.clip.durations == source.durations and result.clip.loop == 0
    assert steadiness(result.clip, source) <= 1.5
    assert frame_changes(result.clip)[-1] == 0.0  # the still stretch stays still
    # Progress: every frame in turn, the share of work only growing, the last event at the end.
    assert [e.frame for e in events] == sorted(e.frame for e in events) and {e.frame for e in events} == set(range(1, 5))
    assert all(e.frames == 4 for e in events) and events[-1].fraction == pytest.approx(1.0)
    assert all(a.fraction <= b.fraction + 1e-9 for a, b in itertools.pairwise(events))
    # A frame painted from the one before is as good as a still painted on that frame alone.
    frame = source.frames[2]  # the last frame of the pan
    still = stylize(frame, painting, model=real_model, **OPTIONS)
    ours, _ = evaluate_losses(result.clip.frames[2], frame, painting, model=real_model, **OPTIONS)
    alone, _ = evaluate_losses(still.image, frame, painting, model=real_model, **OPTIONS)
    assert ours.total <= 1.1 * alone.total


@pytest.mark.realweights
def test_a_still_but_noisy_clip_stays_still(real_model: Any, painting: Image.Image, photo: Image.Image) -> None:
    """Frames that differ only by sensor or compression noise must not be repainted (no flicker)."""
    base = np.asarray(photo.resize((64, 48), Image.Resampling.LANCZOS), dtype=np.int16)
    rng = np.random.default_rng(1)
    frames = tuple(Image.fromarray(np.clip(base + rng.integers(-3, 4, base.shape), 0, 255).astype(np.uint8))
                   for _ in range(3))  # fmt: skip
    source = Clip(frames, (100,) * 3)
    result = stylize_clip(source, painting, model=real_model, **{**OPTIONS, "size": 64})
    assert result.clip is not None
    assert steadiness(result.clip, source) <= 1.5


def test_each_frame_after_the_first_costs_at_most_a_third_of_the_first(model: Any) -> None:
    from nst_engine.options import check_options, plan_scales, resolve_options

    for preset in ("fast", "balanced", "quality"):
        scales = plan_scales(256, 192, check_options(resolve_options(preset=preset), 1))
        first = sum(s.iterations * s.pixels for s in scales)
        assert next_frame_iterations(scales) * scales[-1].pixels <= first / 3


def test_cancel_stops_a_clip_within_one_iteration(model: Any) -> None:
    source = _colour_clip(4, size=(64, 48))
    seen: list[ProgressEvent] = []

    def stop() -> bool:
        return bool(seen) and seen[-1].frame == 2

    with pytest.raises(Cancelled):
        stylize_clip(source, source.frames[0], model=model, progress=seen.append, should_stop=stop, preset="fast",
                     size=64, iterations=3, style_cache=None)  # fmt: skip
    assert seen[-1].frame == 2 and seen[-1].iteration == 1

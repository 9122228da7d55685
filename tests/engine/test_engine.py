"""The engine on tiny images with random weights: schedules, options, determinism, progress, cancellation."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from nst_engine import (
    PRESETS,
    Cancelled,
    ImageTooSmallError,
    OptionsError,
    ProgressEvent,
    StyleOptions,
    evaluate_losses,
    plan_scales,
    stylize,
)
from nst_engine.engine import check_options
from nst_engine.optimize import Run, optimize_lbfgs
from nst_engine.options import Scale


def _gradient(width: int, height: int) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([x, y, 255 - x], -1).astype(np.uint8), "RGB")


def _stripes(width: int, height: int) -> Image.Image:
    rng = np.random.default_rng(1)
    base = (np.indices((height, width)).sum(0) // 4 % 2 * 200).astype(np.uint8)
    noise = rng.integers(0, 55, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(base[..., None].repeat(3, -1) + noise, "RGB")


CONTENT = _gradient(64, 48)
STYLE = _stripes(48, 48)


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32)


def test_every_preset_has_a_coarse_to_fine_schedule_ending_at_its_size():
    for preset in PRESETS.values():
        scales = plan_scales(1200, 800, check_options(StyleOptions(preset=preset.name), 1))
        sides = [max(s.width, s.height) for s in scales]
        assert sides[-1] == preset.size
        assert sides == sorted(sides) and len(sides) == len(preset.iterations) >= 3
        assert sides[0] >= preset.min_size
        assert [s.iterations for s in scales] == list(preset.iterations)
        assert all(abs(s.width / s.height - 1.5) < 0.05 for s in scales), "aspect ratio must be kept"


def test_quality_costs_more_than_balanced_which_costs_more_than_fast():
    def cost(name: str) -> int:
        return sum(s.iterations * s.pixels for s in plan_scales(1000, 1000, check_options(StyleOptions(preset=name), 1)))

    assert cost("fast") < cost("balanced") < cost("quality")


def test_iterations_override_rescales_the_whole_schedule():
    scales = plan_scales(800, 600, check_options(StyleOptions(preset="balanced", iterations=5), 1))
    preset = PRESETS["balanced"].iterations[-len(scales) :]
    assert scales[-1].iterations == 5
    # The preset's shape, scaled by 5 / its final count: balanced (40, 35, 35, 35, 40) becomes (5, 4, 4, 4, 5).
    assert [s.iterations for s in scales] == [max(1, round(n * 5 / preset[-1])) for n in preset]
    assert len({s.iterations for s in scales}) > 1


def test_small_size_gives_a_single_scale():
    scales = plan_scales(64, 48, check_options(StyleOptions(size=48), 1))
    assert [(s.width, s.height) for s in scales] == [(48, 36)]


def test_too_small_or_too_elongated_output_is_refused_clearly():
    with pytest.raises(ImageTooSmallError, match="at least 32 px"):
        plan_scales(1000, 50, check_options(StyleOptions(size=256), 1))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"preset": "ultra"}, "unknown preset"),
        ({"strength": 0}, "strength"),
        ({"strength": float("nan")}, "strength"),
        ({"size": 8}, "size must be"),
        ({"iterations": 0}, "iterations"),
        ({"style_weights": (1.0, 2.0)}, "2 style weights given for 1"),
        ({"optimizer": "sgd"}, "optimizer"),
        ({"colour": True}, "unknown option"),
    ],
)
def test_bad_options_raise_options_error(model, overrides, message):
    with pytest.raises(OptionsError, match=message):
        stylize(CONTENT, STYLE, model=model, **overrides)


def test_style_transfer_lowers_the_objective_and_keeps_size_and_range(model):
    result = stylize(CONTENT, STYLE, model=model, size=48, iterations=15)
    s = result.summary
    assert result.image.size == (48, 36) and result.image.mode == "RGB"
    assert s.end.style < 0.8 * s.start.style
    assert s.end.total < s.start.total
    assert s.iterations == 15 and s.device == "cpu" and s.preset == "balanced"
    assert set(s.style_layers_end) == {"relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"}
    assert len(result.history) == 15
    assert np.abs(_pixels(result.image) - _pixels(CONTENT.resize((48, 36), Image.Resampling.BICUBIC))).mean() > 1


def test_same_seed_same_picture_and_noise_init_depends_on_seed(model):
    a = stylize(CONTENT, STYLE, model=model, size=44, iterations=6, init="noise", seed=3)
    b = stylize(CONTENT, STYLE, model=model, size=44, iterations=6, init="noise", seed=3)
    c = stylize(CONTENT, STYLE, model=model, size=44, iterations=6, init="noise", seed=4)
    assert np.array_equal(_pixels(a.image), _pixels(b.image))
    assert not np.array_equal(_pixels(a.image), _pixels(c.image))


def test_progress_reports_every_iteration_with_eta_and_previews(model):
    events: list[ProgressEvent] = []
    result = stylize(CONTENT, STYLE, model=model, preset="fast", size=192, iterations=2, preview_every=0.0,
                     progress=events.append)  # fmt: skip
    assert len(events) == result.summary.iterations == sum(n for _, _, n in result.summary.scales)
    assert len(result.summary.scales) >= 2, "192 px with fast (min 128) has two scales"
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert [e.step for e in events] == list(range(1, len(events) + 1))
    assert events[-1].eta is not None and events[-1].eta == pytest.approx(0.0, abs=1e-6)
    assert all(e.preview is not None and max(e.preview.size) <= 256 for e in events)
    assert set(events[0].losses) == {"content", "style", "tv", "total"}


def test_should_stop_cancels_within_one_iteration(model):
    seen: list[int] = []
    with pytest.raises(Cancelled):
        stylize(CONTENT, STYLE, model=model, size=48, iterations=50, progress=lambda e: seen.append(e.step),
                should_stop=lambda: len(seen) >= 3)  # fmt: skip
    assert seen == [1, 2, 3]


def test_blend_with_zero_weight_equals_the_single_style(model):
    other = _gradient(48, 48).rotate(90)
    single = stylize(CONTENT, STYLE, model=model, size=44, iterations=5)
    blended = stylize(CONTENT, [STYLE, other], model=model, size=44, iterations=5, style_weights=(2.0, 0.0))
    mixed = stylize(CONTENT, [STYLE, other], model=model, size=44, iterations=5, style_weights=(1.0, 1.0))
    assert np.array_equal(_pixels(single.image), _pixels(blended.image))
    assert not np.array_equal(_pixels(single.image), _pixels(mixed.image))


def test_preserve_colors_keeps_the_content_chroma(model):
    result = stylize(CONTENT, STYLE, model=model, size=48, iterations=10, preserve_colors=True, strength=5)
    out = _pixels(result.image)
    ref = _pixels(CONTENT.resize(result.image.size, Image.Resampling.BICUBIC))
    luma = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    chroma_out = out - (out @ luma)[..., None]
    chroma_ref = ref - (ref @ luma)[..., None]
    assert np.abs(chroma_out - chroma_ref).mean() < 4  # only clipping at the ends of the range changes chroma
    assert np.abs(out @ luma - ref @ luma).mean() > 1  # the luminance was stylised


def test_lbfgs_runs_the_full_schedule_and_lowers_the_loss(model):
    events: list[ProgressEvent] = []
    result = stylize(CONTENT, STYLE, model=model, size=48, iterations=12, optimizer="lbfgs", progress=events.append)
    assert len(events) == 12 and result.summary.optimizer == "lbfgs"
    assert result.summary.end.total < result.summary.start.total


def test_lbfgs_restarts_from_the_best_image_when_a_step_diverges(caplog):
    evaluations = 0

    def objective(x: torch.Tensor):
        nonlocal evaluations
        evaluations += 1
        loss = (x - 0.3).pow(2).sum()
        if evaluations == 4:  # as if the third step had overshot far past the minimum
            loss = loss * 1e6 + 1e6
        value = loss.detach()
        return loss, {"content": value, "style": value, "tv": value, "total": value}

    run = Run([Scale(8, 8, iterations=10)], StyleOptions(), None, None)
    with caplog.at_level("WARNING", logger="nst_engine"):
        out = optimize_lbfgs(torch.full((1, 3, 8, 8), 0.9), objective, run, 0)
    assert evaluations == 11 and len(run.history) == 10  # and one evaluation of the last image
    assert "L-BFGS diverged at scale 1, step 3" in caplog.text  # the step whose loss the 4th evaluation saw
    assert (out - 0.3).abs().max() < 1e-3  # the restarted run still reached the minimum


def _rescaled(model, factor: float):
    """The same network with every activation multiplied by ``factor`` (first conv and all biases scaled)."""
    scaled = copy.deepcopy(model)
    convs = [m for m in scaled.features if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        convs[0].weight.mul_(factor)
        for conv in convs:
            conv.bias.mul_(factor)
    return scaled


def test_losses_do_not_depend_on_the_activation_scale(model):
    big = _rescaled(model, 255.0)
    terms, layers = evaluate_losses(STYLE.resize((48, 48)), CONTENT, STYLE.rotate(90), model=model, precision="fp32")
    terms_big, layers_big = evaluate_losses(STYLE.resize((48, 48)), CONTENT, STYLE.rotate(90), model=big,
                                            precision="fp32")  # fmt: skip
    assert terms.total > 0
    assert terms_big.total == pytest.approx(terms.total, rel=1e-4)
    for name in layers:
        assert layers_big[name] == pytest.approx(layers[name], rel=1e-3)


def test_elongated_small_style_image_is_kept_large_enough_for_vgg(model):
    banner = _stripes(400, 50)  # 8:1, the most the image checks allow
    result = stylize(CONTENT, banner, model=model, size=48, iterations=2, style_scale=0.1)
    assert result.image.size == (48, 36)


def test_inputs_smaller_than_the_network_needs_are_refused(model):
    with pytest.raises(ImageTooSmallError, match=r"style image 2 is 20x40 px; each side must be at least 32 px") as info:
        stylize(CONTENT, [STYLE, _stripes(20, 40)], model=model, size=48, iterations=1)
    assert info.value.role == "style image 2"
    with pytest.raises(ImageTooSmallError, match="content image is 64x16 px"):
        stylize(_gradient(64, 16), STYLE, model=model, size=48, iterations=1)

"""The levers on the picture's look (``Preset`` fields): each does what its docstring says, on tensors small enough
to check by hand or with random VGG weights."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from nst_engine import PRESETS, OptionsError, StyleOptions, stylize
from nst_engine.color import match_colors
from nst_engine.engine import _Objective, _style_grams, _upsample
from nst_engine.losses import TV_EPS, tv_loss
from nst_engine.options import check_options
from nst_engine.pixels import resize


def _edge_and_grain(side: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """A picture with one full-contrast edge, and one with a faint +-0.05 checkerboard grain everywhere."""
    edge = torch.zeros(1, 3, side, side)
    edge[..., side // 2 :] = 1.0
    checker = torch.from_numpy(np.indices((side, side)).sum(0) % 2).float()
    grain = (0.5 + 0.05 * (2 * checker - 1)).expand(1, 3, side, side).contiguous()
    return edge, grain


def test_smooth_tv_charges_grain_far_more_than_the_squared_form_relative_to_an_edge():
    edge, grain = _edge_and_grain()
    squared = float(tv_loss(grain, "squared") / tv_loss(edge, "squared"))
    smooth = float(tv_loss(grain, "smooth") / tv_loss(edge, "smooth"))
    assert squared < 2  # to the squared form a faint grain costs about as much as one hard edge
    assert smooth > 5 * squared


def test_smooth_tv_is_its_rounding_on_a_flat_picture_and_has_a_finite_gradient_there():
    flat = torch.full((1, 3, 16, 16), 0.4, requires_grad=True)
    loss = tv_loss(flat, "smooth")
    loss.backward()
    assert float(loss.detach()) == pytest.approx(TV_EPS, rel=1e-4)
    assert flat.grad is not None and torch.isfinite(flat.grad).all()
    with pytest.raises(ValueError, match="unknown total-variation form"):
        tv_loss(flat, "cubic")


def test_match_colors_gives_the_painting_the_photos_mean_and_covariance():
    generator = torch.Generator().manual_seed(3)
    style = 0.3 + 0.2 * torch.rand(1, 3, 40, 40, generator=generator) * torch.tensor([1.0, 0.2, 0.6]).view(1, 3, 1, 1)
    content = 0.4 + 0.1 * torch.rand(1, 3, 30, 30, generator=generator)
    content[:, 2] = 0.5 * content[:, 0] + 0.2 + 0.02 * torch.rand(1, 30, 30, generator=generator)  # correlated
    matched = match_colors(style, content)

    def stats(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = image.reshape(3, -1).double()
        return pixels.mean(1), torch.cov(pixels, correction=0)

    (m_out, c_out), (m_ref, c_ref) = stats(matched), stats(content)
    assert torch.allclose(m_out, m_ref, atol=1e-3)
    assert torch.allclose(c_out, c_ref, rtol=0.03, atol=2e-6)
    # The strokes stay: the matched painting is a per-pixel linear map of the original (same spatial pattern).
    assert abs(float(torch.corrcoef(torch.stack([matched[0, 0].flatten(), style[0, 0].flatten()]))[0, 1])) > 0.5


def test_detail_upsampling_restores_the_photos_detail_where_the_picture_is_still_the_photo():
    photo = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 0.8 + 0.1
    coarse = resize(photo, 32, 32)
    start = _upsample(coarse, photo, coarse, "detail")
    assert torch.allclose(start, photo, atol=1e-5)  # the unpainted photo starts the next scale as itself
    plain = _upsample(coarse, photo, coarse, "bicubic")
    assert (plain - photo).abs().mean() > 0.05  # where plain upsampling starts it blurred
    assert not torch.allclose(_upsample(coarse, photo, coarse, "bilinear"), plain)
    with pytest.raises(OptionsError, match="unknown upsampling"):
        _upsample(coarse, photo, coarse, "nearest")


def test_tv_weight_follows_the_scale_and_strength_moves_style_and_detail_weights_apart(model):
    preset = dataclasses.replace(PRESETS["balanced"], tv_scale_power=2.0, detail_weight=0.5, strength_power=2.0)
    PRESETS["test-levers"] = preset
    try:
        content = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(2))
        grams = [_style_grams(model, content.flip(-1), False)]

        def objective(strength: float, ratio: float) -> _Objective:
            settings = check_options(StyleOptions(preset="test-levers", strength=strength), 1)
            return _Objective(model, content, grams, settings, False, ratio)

        half, full, strong = objective(1.0, 0.5), objective(1.0, 1.0), objective(2.0, 1.0)
        assert half.tv_weight == pytest.approx(full.tv_weight / 4)
        assert strong.style_weight == pytest.approx(4 * full.style_weight)
        assert strong.detail_weight == pytest.approx(full.detail_weight / 4)
        assert "relu3_1" in full.content_layers
        _, terms = full(content)
        assert float(terms["content"]) == pytest.approx(0.0, abs=1e-6)  # the photo matches both content layers
    finally:
        del PRESETS["test-levers"]


def test_every_lever_runs_end_to_end_and_changes_the_picture(model):
    ramp = (np.indices((48, 64)).sum(0) % 256).astype(np.uint8)
    content = Image.fromarray(ramp).convert("RGB")  # grey
    style = Image.fromarray(np.stack([ramp.T, 255 - ramp.T, ramp.T // 2], -1), "RGB")  # coloured: matching moves it
    base = dataclasses.replace(PRESETS["balanced"], min_size=32)  # two scales at 64 px: upsampling runs

    def paint(preset) -> np.ndarray:
        PRESETS["test-lever"] = preset
        try:
            result = stylize(content, style, model=model, preset="test-lever", size=64, iterations=3)
        finally:
            del PRESETS["test-lever"]
        assert len(result.summary.scales) == 2 and np.isfinite(result.summary.end.total)
        return np.asarray(result.image, dtype=np.float32)

    reference = paint(base)
    # Each lever set away from balanced's own value.
    levers = {"tv_form": "squared", "tv_scale_power": 0.0, "detail_weight": 0.0, "strength_power": 1.0,
              "upsample": "bicubic", "color": "match", "lbfgs_average": 0.8}  # fmt: skip
    for field, value in levers.items():
        picture = paint(dataclasses.replace(base, **{field: value}))  # type: ignore[arg-type]
        if field == "strength_power":  # at strength 1 the power changes nothing
            assert np.array_equal(picture, reference), field
        elif field != "lbfgs_average":  # the mean of three iterates may lose to the best one, which is kept then
            assert not np.array_equal(picture, reference), field

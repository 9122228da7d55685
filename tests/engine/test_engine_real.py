"""The engine with the real VGG19 weights (../shared/weights) on small pictures: style really is transferred."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from nst_engine import evaluate_losses, load_vgg, stylize

pytestmark = pytest.mark.realweights


@pytest.fixture(scope="module")
def real_model(real_weights_path):
    return load_vgg(real_weights_path, "cpu")


@pytest.fixture(scope="module")
def torchvision_scale_model(real_model):
    """The same network at torchvision's activation scale: first conv and every bias divided by 255."""
    model = copy.deepcopy(real_model)
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        convs[0].weight.div_(255)
        for conv in convs:
            conv.bias.div_(255)
    return model


@pytest.fixture(scope="module")
def pictures(sample_images):
    content = Image.open(sample_images / "content" / "chelsea.png").convert("RGB")
    style = Image.open(sample_images / "style" / "starry_night.jpg").convert("RGB")
    return content, style


def _arr(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32)


def test_activations_really_are_255x_larger_than_torchvision_scale(real_model, torchvision_scale_model, pictures):
    x = torch.from_numpy(_arr(pictures[0].resize((64, 64))) / 255).permute(2, 0, 1)[None]
    with torch.no_grad():
        big = real_model(x, ("relu4_1",))["relu4_1"]
        small = torchvision_scale_model(x, ("relu4_1",))["relu4_1"]
    assert torch.allclose(big / 255, small, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize(("precision", "tolerance"), [("fp32", 0.5), ("bf16", 3.0)])
def test_same_picture_at_caffe_and_torchvision_scale(real_model, torchvision_scale_model, pictures, precision,
                                                     tolerance):  # fmt: skip
    content, style = pictures
    kwargs = {"preset": "fast", "size": 96, "iterations": 6, "precision": precision}
    a = stylize(content, style, model=real_model, **kwargs)
    b = stylize(content, style, model=torchvision_scale_model, **kwargs)
    diff = np.abs(_arr(a.image) - _arr(b.image))
    assert diff.mean() < tolerance, f"mean pixel difference {diff.mean():.3f} (0-255 scale)"
    assert b.summary.end.total == pytest.approx(a.summary.end.total, rel=0.02)


def test_style_is_transferred_and_content_kept(real_model, pictures):
    content, style = pictures
    result = stylize(content, style, model=real_model, preset="fast", size=160, iterations=40)
    s = result.summary
    assert s.end.style < 0.2 * s.start.style, "style loss must fall by at least 80%"
    out = _arr(result.image)
    ref = _arr(content.resize(result.image.size, Image.Resampling.BICUBIC))
    luma = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    # Content kept: the picture's structure (luminance) still correlates with the photo's...
    corr = np.corrcoef((out @ luma).ravel(), (ref @ luma).ravel())[0, 1]
    assert corr > 0.5, f"luminance correlation with the content is only {corr:.2f}"
    # ...while its colours moved towards the painting's (Starry Night: blue and yellow, unlike the grey cat).
    style_mean = _arr(style).reshape(-1, 3).mean(0)
    before = np.linalg.norm(ref.reshape(-1, 3).mean(0) - style_mean)
    after = np.linalg.norm(out.reshape(-1, 3).mean(0) - style_mean)
    assert after < 0.6 * before, f"colour distance to the style went from {before:.1f} to {after:.1f}"
    assert np.abs(out - ref).mean() > 20, "the output must differ visibly from the content image"


def test_bf16_costs_no_quality_against_fp32(real_model, pictures):
    content, style = pictures
    # One scale of 40 L-BFGS iterations: past the first 20 or so, where any perturbation (bf16 rounding as much as
    # another thread count) sends the run along a different path and the objective differs by up to 10% either way.
    kwargs = {"preset": "fast", "size": 128, "iterations": 40}
    fp32 = stylize(content, style, model=real_model, precision="fp32", **kwargs)
    bf16 = stylize(content, style, model=real_model, precision="bf16", **kwargs)
    assert bf16.summary.precision == "bf16"
    judge = {"model": real_model, "precision": "fp32", "preset": "fast"}
    loss_fp32, _ = evaluate_losses(fp32.image, content, style, **judge)
    loss_bf16, _ = evaluate_losses(bf16.image, content, style, **judge)
    assert loss_bf16.total <= 1.02 * loss_fp32.total, (loss_bf16, loss_fp32)


def test_the_strength_dial_moves_both_losses_one_way_and_its_low_end_keeps_the_photo(real_model, pictures):
    content, style = pictures
    kwargs = {"preset": "fast", "size": 128, "iterations": 20, "precision": "fp32"}
    judged, likeness = [], []
    for strength in (0.25, 1.0, 4.0):
        image = stylize(content, style, model=real_model, strength=strength, **kwargs).image
        terms, _ = evaluate_losses(image, content, style, model=real_model, precision="fp32")
        judged.append(terms)
        out = _arr(image) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        ref = _arr(content.resize(image.size, Image.Resampling.BICUBIC)) @ np.array([0.299, 0.587, 0.114],
                                                                                    dtype=np.float32)  # fmt: skip
        likeness.append(np.corrcoef(out.ravel(), ref.ravel())[0, 1])
    contents, styles = [t.content for t in judged], [t.style for t in judged]
    assert contents[0] < contents[1] < contents[2], contents  # the photo gives way as strength rises...
    assert styles[0] > styles[1] > styles[2], styles  # ...to the painting
    assert styles[0] > 2 * styles[2] and contents[2] > 2 * contents[0], (contents, styles)  # and far, end to end
    assert likeness[0] > 0.9 > likeness[2], likeness  # 0.25 is recognisably the photo; 4 is not just the photo

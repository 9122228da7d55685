"""What a picture is judged by, beside looking at it: its grain, its losses under one yardstick, and its faces.

- ``grain``: high-frequency energy, the mean absolute Laplacian of the picture's luma over the painting's own, the
  painting resized to the picture's long side (1.0: as busy as the painting at that scale).
- ``yardstick``: content and style losses of a picture under one fixed objective (``evaluate_losses``: relu4_2
  content, equal-weight Gram losses at relu1_1..relu5_1, float32, style weight 20) whatever preset or strength made
  it, so runs compare.
- ``face``: structural similarity (SSIM, luma, 11 px Gaussian window) between the picture and the photo over the
  astronaut's face, 1.0 being the photo itself.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from PIL import Image

from nst_engine import PRESETS, evaluate_losses
from nst_engine.color import luminance
from nst_engine.pixels import resize, to_tensor
from nst_engine.vgg import VGGFeatures

# The astronaut's face in astronaut.png (512 x 512): left, top, right, bottom as shares of the side.
FACES = {"astronaut": (175 / 512, 70 / 512, 275 / 512, 175 / 512)}

_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)


def _luma(image: Image.Image) -> torch.Tensor:
    return luminance(to_tensor(image, torch.device("cpu")))


def busyness(image: Image.Image) -> float:
    """Mean absolute Laplacian of the luma ([0, 1] units), borders left out."""
    return float(F.conv2d(_luma(image), _LAPLACIAN).abs().mean())


def grain(picture: Image.Image, painting: Image.Image) -> float:
    """The picture's busyness over the painting's own at the picture's long side."""
    side = max(picture.size)
    scale = side / max(painting.size)
    at_scale = to_tensor(painting, torch.device("cpu"))
    at_scale = resize(at_scale, max(1, round(painting.width * scale)), max(1, round(painting.height * scale)))
    painting_busy = float(F.conv2d(luminance(at_scale), _LAPLACIAN).abs().mean())
    return busyness(picture) / painting_busy


def yardstick(picture: Image.Image, photo: Image.Image, painting: Image.Image, model: VGGFeatures
              ) -> tuple[float, float]:  # fmt: skip
    """(content, style) of ``picture`` under the yardstick (``evaluate_losses``: content x1, style x20, float32)."""
    terms, _ = evaluate_losses(picture, photo, painting, model=model, precision="fp32")
    return terms.content, terms.style


def _ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean SSIM of two (1, 1, H, W) luma maps in [0, 1] (Wang et al. 2004: 11 px Gaussian window, sigma 1.5)."""
    grid = torch.arange(11, dtype=torch.float32) - 5
    g = torch.exp(-(grid**2) / (2 * 1.5**2))
    g = g / g.sum()
    window = (g[:, None] * g[None, :]).view(1, 1, 11, 11)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, window)

    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    ssim = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim.mean())


def face(picture: Image.Image, photo: Image.Image, name: str) -> float | None:
    """SSIM over the face of photo ``name`` (None when that photo has no face listed)."""
    box = FACES.get(name)
    if box is None:
        return None
    width, height = picture.size
    pixels = (round(box[0] * width), round(box[1] * height), round(box[2] * width), round(box[3] * height))
    photo_at = photo.resize(picture.size, Image.Resampling.LANCZOS)
    return _ssim(_luma(picture.crop(pixels)), _luma(photo_at.crop(pixels)))


def variant(base: str, name: str, **changes: object) -> str:
    """Register ``base`` with ``changes`` as preset ``name`` (this process only); returns the name."""
    PRESETS[name] = dataclasses.replace(PRESETS[base], name=name, **changes)  # type: ignore[arg-type]
    return name

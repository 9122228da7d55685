"""Pictures as tensors and back, and the one resize the engine uses between scales."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def to_tensor(image: Image.Image, device: torch.device) -> torch.Tensor:
    """An RGB picture as a (1, 3, H, W) float tensor in [0, 1] on ``device``."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).to(device)


def to_image(tensor: torch.Tensor) -> Image.Image:
    """A (1, 3, H, W) tensor in [0, 1] as an RGB picture."""
    array = tensor.detach().squeeze(0).clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(np.ascontiguousarray(array), "RGB")


def resize(tensor: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Antialiased bicubic resize (downscaling without aliasing, smooth upscaling), clamped to [0, 1]."""
    if tensor.shape[-2:] == (height, width):
        return tensor
    antialias = width < tensor.shape[-1] or height < tensor.shape[-2]
    out = F.interpolate(tensor, size=(height, width), mode="bicubic", align_corners=False, antialias=antialias)
    return out.clamp(0, 1)

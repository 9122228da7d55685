"""Loading VGG19 weights: torchvision's IMAGENET1K_V1 (default), a local state_dict, or random (tests only)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch
from torch import nn

from nst_engine.errors import WeightsError
from nst_engine.settings import EngineSettings
from nst_engine.vgg import LAYER_INDEX, VGGFeatures, build_features

log = logging.getLogger("nst_engine.weights")

_CONV_KEY = re.compile(r"^(?:features\.)?(\d+)\.(weight|bias)$")
_DEEPEST = LAYER_INDEX["relu5_1"]  # all the default losses need; conv5_2 and beyond are optional


def weights_spec(spec: str | Path | None) -> str:
    """The effective weights spec: the argument, else the NST_WEIGHTS setting, else ``imagenet``."""
    value = str(spec) if spec is not None else EngineSettings().nst_weights
    return value.strip() or "imagenet"


def load_features(spec: str | Path | None = None) -> VGGFeatures:
    """Build the feature extractor (on the CPU, float32) from a weights spec."""
    spec = weights_spec(spec)
    if spec == "random":
        log.warning("using RANDOM VGG19 weights: for tests only, the pictures will not look stylised")
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(0)  # the same "random" network in every process, so tests can compare runs
        features = build_features(_DEEPEST + 1)
        torch.random.set_rng_state(generator_state)
        return VGGFeatures(features, source="random")
    if spec == "imagenet":
        return VGGFeatures(_trunk_from_state(_imagenet_state(), "torchvision IMAGENET1K_V1"), source="imagenet")
    path = Path(spec).expanduser()
    if not path.is_file():
        raise WeightsError(
            f"weights file {str(path)!r} does not exist; NST_WEIGHTS must be 'imagenet', 'random' or a path to a "
            "state_dict of torchvision's vgg19().features"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file; all mean the same to the user
        raise WeightsError(f"could not read weights file {str(path)!r}: {exc}") from exc
    if isinstance(state, nn.Module):
        state = state.state_dict()
    if not isinstance(state, dict):
        raise WeightsError(f"weights file {str(path)!r} holds a {type(state).__name__}, not a state_dict")
    return VGGFeatures(_trunk_from_state(state, str(path)), source=str(path))


def _imagenet_state() -> dict[str, torch.Tensor]:
    """torchvision's VGG19 IMAGENET1K_V1, downloaded once into the torch hub cache."""
    from torchvision.models import VGG19_Weights

    try:
        return VGG19_Weights.IMAGENET1K_V1.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:  # URLError, socket errors, hash mismatch...
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        raise WeightsError(
            f"could not download torchvision's VGG19 IMAGENET1K_V1 weights ({exc.__class__.__name__}: {exc}). "
            f"Put vgg19-dcbb9e9d.pth into {cache} or set NST_WEIGHTS to a local state_dict of vgg19().features "
            "(e.g. ../shared/weights/vgg19_features_fp16.pth)"
        ) from exc


def _trunk_from_state(state: dict[str, torch.Tensor], origin: str) -> nn.Sequential:
    """Load conv weights into a trunk as deep as the file allows (at least through relu5_1); float16 is widened."""
    convs: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        match = _CONV_KEY.match(key)
        if match and isinstance(value, torch.Tensor):
            convs.setdefault(int(match.group(1)), {})[match.group(2)] = value
    if not convs:
        raise WeightsError(f"{origin} has no VGG19 feature weights (expected keys like '0.weight' or 'features.0.weight')")
    deepest_conv = max(convs)
    depth = deepest_conv + 2  # keep the ReLU after the deepest conv
    if depth <= _DEEPEST:
        raise WeightsError(f"{origin} stops at layer {deepest_conv}; style transfer needs VGG19 through conv5_1 (28)")
    trunk = build_features(depth)
    for idx, module in enumerate(trunk):
        if not isinstance(module, nn.Conv2d):
            continue
        params = convs.get(idx)
        if params is None or "weight" not in params or "bias" not in params:
            raise WeightsError(f"{origin} lacks weights for VGG19 layer {idx}")
        if params["weight"].shape != module.weight.shape:
            raise WeightsError(
                f"{origin}: layer {idx} has shape {tuple(params['weight'].shape)}, "
                f"expected {tuple(module.weight.shape)} (is this VGG19?)"
            )
        with torch.no_grad():
            module.weight.copy_(params["weight"].float())
            assert module.bias is not None  # VGG's convolutions all have a bias
            module.bias.copy_(params["bias"].float())
    return trunk

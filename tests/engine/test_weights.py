"""Loading VGG19 weights: state_dict files, torchvision's cached IMAGENET1K_V1, offline errors, random."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from nst_engine import WeightsError, load_vgg
from nst_engine.device import resolve_device
from nst_engine.errors import OptionsError
from nst_engine.vgg import build_features


def _features_state(depth: int | None = None, prefix: str = "", dtype=torch.float32) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    state = build_features(37).state_dict()
    if depth is not None:
        state = {k: v for k, v in state.items() if int(k.split(".")[0]) < depth}
    return {prefix + k: v.to(dtype) for k, v in state.items()}


def test_float16_state_dict_through_conv5_1_loads_and_is_widened(tmp_path: Path):
    path = tmp_path / "vgg.pth"
    state = _features_state(depth=29, dtype=torch.float16)
    torch.save(state, path)
    model = load_vgg(path, "cpu")
    assert model.source == str(path)
    assert "relu5_1" in model.available_layers() and "relu5_2" not in model.available_layers()
    assert model.features[0].weight.dtype == torch.float32
    assert torch.equal(model.features[28].bias, state["28.bias"].float())
    assert not any(p.requires_grad for p in model.parameters())


def test_full_model_state_dict_with_features_prefix(tmp_path: Path):
    path = tmp_path / "full.pth"
    torch.save({**_features_state(prefix="features."), "classifier.0.weight": torch.zeros(2, 2)}, path)
    model = load_vgg(path, "cpu")
    assert "relu5_4" in model.available_layers()


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"fc.weight": torch.zeros(1)}, "no VGG19 feature weights"),
        (_features_state(depth=20), "needs VGG19 through conv5_1"),
        ({**_features_state(depth=29), "2.weight": torch.zeros(64, 3, 3, 3)}, "has shape"),
        ({k: v for k, v in _features_state(depth=29).items() if k != "5.bias"}, "lacks weights for VGG19 layer 5"),
    ],
)
def test_unusable_state_dicts_are_refused_clearly(tmp_path: Path, state, message):
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=message):
        load_vgg(path, "cpu")


def test_missing_and_unreadable_files(tmp_path: Path):
    with pytest.raises(WeightsError, match="does not exist"):
        load_vgg(tmp_path / "nope.pth", "cpu")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="could not read weights file"):
        load_vgg(junk, "cpu")


def test_imagenet_weights_come_from_the_torch_hub_cache(tmp_path: Path, monkeypatch):
    """The default path: torchvision finds IMAGENET1K_V1 in its cache and does not download it again."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    filename = torchvision.models.VGG19_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[1]
    cached = _features_state(prefix="features.")
    for key in cached:
        cached[key] = torch.randn_like(cached[key])  # unlike any built-in initialisation
    torch.save(cached, checkpoints / filename)
    monkeypatch.delenv("NST_WEIGHTS", raising=False)
    model = load_vgg(None, "cpu")
    assert model.source == "imagenet"
    # the network really holds the cached file's weights (a source label alone proves nothing)
    assert torch.equal(model.features[0].weight, cached["features.0.weight"])
    assert torch.equal(model.features[28].bias, cached["features.28.bias"])


def test_offline_imagenet_download_explains_how_to_use_a_local_file(tmp_path: Path, monkeypatch):
    """A failed download (here: a closed port on loopback) becomes one actionable WeightsError."""
    import torchvision.models._api as api

    real_loader = api.load_state_dict_from_url
    monkeypatch.setattr(api, "load_state_dict_from_url",
                        lambda url, *a, **kw: real_loader("http://127.0.0.1:9/vgg19-dcbb9e9d.pth", *a, **kw))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsError, match="set NST_WEIGHTS to a local state_dict") as info:
        load_vgg("imagenet", "cpu")
    assert "hub" in str(info.value) and "could not download" in str(info.value)


def test_env_var_picks_weights_and_device(monkeypatch):
    monkeypatch.setenv("NST_WEIGHTS", "random")
    monkeypatch.setenv("NST_DEVICE", "cpu")
    model = load_vgg()
    assert model.source == "random" and model.device.type == "cpu"
    assert torch.equal(model.features[0].weight, load_vgg("random", "cpu").features[0].weight)


def test_random_weights_are_the_same_in_every_load():
    a, b = load_vgg("random", "cpu"), load_vgg("random", "cpu")
    assert torch.equal(a.features[0].weight, b.features[0].weight)


@pytest.mark.parametrize(("spec", "message"), [("meta", "unsupported device"), ("tpu", "unknown device"), ("cuda:banana", "unknown device")])
def test_bad_device_names(spec, message):
    with pytest.raises(OptionsError, match=message):
        resolve_device(spec)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(OptionsError, match="CUDA is not available"):
        resolve_device("cuda")

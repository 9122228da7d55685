"""The style-transfer engine: ``load_vgg`` and ``stylize``.

Gatys et al. (arXiv 1508.06576): optimise the pixels of an image so that its VGG19 features match the content image
at relu4_2 and its Gram matrices match the style image(s) at relu1_1..relu5_1, plus a total-variation term. This
implementation works coarse to fine (each scale starts from the upsampled result of the previous one, with the
photo's detail of the new scale laid over it), holds small structures with a faint relu3_1 content term that grows
as the strength falls, cleans grain with a smoothed total variation (``presets.Preset`` says what each lever does),
runs the VGG passes in bfloat16 (a bfloat16 copy of the weights) with channels-last layout where that is fast, sums
every loss in float32, and keeps each style image's Gram targets per size in a bounded per-process cache
(``style_cache``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from nst_engine import color
from nst_engine.device import bf16_supported, resolve_device, retain_freed_memory
from nst_engine.errors import ImageTooSmallError, OptionsError
from nst_engine.losses import blend_grams, content_loss, gram_matrix, style_loss, tv_loss
from nst_engine.optimize import Run, optimize_adam, optimize_lbfgs
from nst_engine.options import MIN_SIDE, ResolvedOptions, check_options, plan_scales, resolve_options
from nst_engine.options import fit as _fit
from nst_engine.pixels import resize, to_image, to_tensor
from nst_engine.presets import CONTENT_LAYER, DETAIL_LAYER, JUDGE, STYLE_LAYERS, Preset
from nst_engine.style_cache import STYLE_TARGETS, Grams, StyleTargetCache, image_digest
from nst_engine.types import (
    LossSummary,
    LossTerms,
    ProgressCallback,
    StopCallback,
    StyleOptions,
    StyleResult,
)
from nst_engine.vgg import VGGFeatures
from nst_engine.weights import load_features, weights_spec

log = logging.getLogger("nst_engine")

def load_vgg(weights: str | Path | None = None, device: str | torch.device | None = None) -> VGGFeatures:
    """Load the VGG19 feature extractor onto ``device``. Slow (seconds): load once and pass it to ``stylize``.

    ``weights``: ``imagenet`` (default, or env NST_WEIGHTS; torchvision's download, cached), a path to a state_dict
    of ``vgg19().features`` (float16 or float32), or ``random`` (tests only). ``device``: auto | cpu | cuda | cuda:N
    (default env NST_DEVICE, else auto). On the CPU this also keeps freed memory in the process
    (``retain_freed_memory``), so a VGG pass stops page-faulting its activations in afresh (docs/performance.md).
    """
    target = resolve_device(device)
    if target.type == "cpu":
        retain_freed_memory()
    model = load_features(weights)
    return model.to(target, memory_format=torch.channels_last)  # type: ignore[call-overload]  # stubs lack memory_format


_default_models: dict[tuple[str, str], VGGFeatures] = {}
_default_lock = threading.Lock()


def _cached_model(weights: str | Path | None, device: str | torch.device | None) -> VGGFeatures:
    key = (weights_spec(weights), str(resolve_device(device)))
    with _default_lock:
        if key not in _default_models:
            _default_models[key] = load_vgg(key[0], key[1])
        return _default_models[key]


def _style_size(width: int, height: int, output_side: int, style_scale: float) -> tuple[int, int]:
    """Working size of a (width, height) style image: its long side ``style_scale`` times the output's, aspect ratio
    kept, never so small that its short side drops under MIN_SIDE (VGG's deepest layer would see nothing)."""
    long_side = max(round(output_side * style_scale), math.ceil(MIN_SIDE * max(width, height) / min(width, height)))
    return _fit(width, height, long_side)


def _style_at(style: torch.Tensor, output_side: int, style_scale: float) -> torch.Tensor:
    """The style image resized to its working size (``_style_size``)."""
    height, width = style.shape[-2:]
    return resize(style, *_style_size(width, height, output_side, style_scale))


def _cl(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.contiguous(memory_format=torch.channels_last)


class _Objective:
    """The weighted Gatys objective at one scale, with targets computed once."""

    def __init__(
        self,
        model: VGGFeatures,
        content: torch.Tensor,
        style_grams: list[Grams],
        settings: ResolvedOptions,
        use_bf16: bool,
        scale_ratio: float = 1.0,
    ) -> None:
        """``scale_ratio``: this scale's long side over the final one (the TV weight follows it)."""
        self.model = model
        self.use_bf16 = use_bf16
        preset = settings.preset
        self.content_weight = preset.content_weight
        push = settings.options.strength**preset.strength_power
        self.style_weight = preset.style_weight * push
        self.detail_weight = preset.detail_weight / push
        self.tv_weight = settings.tv_weight * scale_ratio**preset.tv_scale_power
        self.tv_form = preset.tv_form
        layer_weights = preset.style_layer_weights
        self.layer_weights = {name: w / sum(layer_weights) for name, w in zip(STYLE_LAYERS, layer_weights, strict=True)}
        self.content_layers = (CONTENT_LAYER, DETAIL_LAYER) if self.detail_weight > 0 else (CONTENT_LAYER,)
        self.layers = tuple(dict.fromkeys((*STYLE_LAYERS, *self.content_layers)))
        with torch.no_grad():
            feats = self._features(content, self.content_layers)
            self.content_targets = {name: feats[name].float() for name in self.content_layers}
        self.gram_targets = {
            name: blend_grams([g[name] for g in style_grams], list(settings.style_weights)) for name in STYLE_LAYERS
        }

    def _features(self, image: torch.Tensor, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
        # A bfloat16 copy of the weights rather than autocast, which casts every weight again on every forward.
        return self.model(_cl(image), layers, torch.bfloat16 if self.use_bf16 else None)

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss (float32 scalar) and the detached weighted terms, including each style layer's raw loss."""
        feats = self._features(image, self.layers)
        # Gram matrices come back as float32, and every loss is summed in float32.
        wc = self.content_weight * content_loss(feats[CONTENT_LAYER], self.content_targets[CONTENT_LAYER])
        if self.detail_weight > 0:  # reported within the content term: both hold the photo
            wc = wc + self.detail_weight * content_loss(feats[DETAIL_LAYER], self.content_targets[DETAIL_LAYER])
        per_layer = {name: style_loss(gram_matrix(feats[name]), self.gram_targets[name]) for name in STYLE_LAYERS}
        s = sum(self.layer_weights[name] * loss for name, loss in per_layer.items())
        tv = tv_loss(image, self.tv_form)
        ws, wtv = self.style_weight * s, self.tv_weight * tv
        total = wc + ws + wtv
        terms = {"content": wc, "style": ws, "tv": wtv, "total": total}
        terms.update({f"style/{name}": loss for name, loss in per_layer.items()})
        return total, {k: v.detach() for k, v in terms.items()}


def _style_grams(model: VGGFeatures, style: torch.Tensor, use_bf16: bool) -> Grams:
    """The Gram matrices of one style image (already at its working size) at every style layer."""
    with torch.no_grad():
        feats = model(_cl(style), STYLE_LAYERS, torch.bfloat16 if use_bf16 else None)
        return {name: gram_matrix(feats[name]) for name in STYLE_LAYERS}


class _StyleTargets:
    """Gram targets of a job's style images at any size, through ``cache`` when there is one."""

    def __init__(
        self, model: VGGFeatures, styles: list[Image.Image], use_bf16: bool, cache: StyleTargetCache | None
    ) -> None:
        self.model, self.use_bf16, self.cache = model, use_bf16, cache
        self.digests = [image_digest(s) for s in styles] if cache is not None else []
        self.weights = model.weights_key() if cache is not None else None

    def grams(self, index: int, style: torch.Tensor, output_side: int, style_scale: float) -> Grams:
        """Targets of style image ``index`` (``style``, at full size) for an output whose long side is
        ``output_side``. A cache hit costs no resize and no VGG pass."""
        height, width = style.shape[-2:]
        size = _style_size(width, height, output_side, style_scale)

        def compute() -> Grams:
            return _style_grams(self.model, resize(style, *size), self.use_bf16)

        if self.cache is None:
            return compute()
        key = (self.digests[index], size, self.use_bf16, self.weights, STYLE_LAYERS)
        return self.cache.get_or_compute(key, compute)

    @staticmethod
    def follow_content(options: StyleOptions, preset: Preset) -> bool:
        """Whether the targets depend on the content (its luminance or colours), so are computed per job or frame."""
        return options.preserve_colors or preset.color == "match"

    def for_content(self, styles: list[torch.Tensor], content: torch.Tensor | None, side: int, options: StyleOptions,
                    preset: Preset) -> list[Grams]:  # fmt: skip
        """Targets of every style image for a picture of long side ``side`` whose photo there is ``content``:
        luminance matched to it for ``preserve_colors``, colours matched to it for ``Preset.color`` "match" (both for
        this job only), else the paintings' own (cached; ``content`` may then be None)."""
        if not self.follow_content(options, preset):
            return [self.grams(i, s, side, options.style_scale) for i, s in enumerate(styles)]
        assert content is not None
        match = color.match_luminance if options.preserve_colors else color.match_colors
        at_size = [match(_style_at(s, side, options.style_scale), content) for s in styles]
        return [_style_grams(self.model, s, self.use_bf16) for s in at_size]


def _upsample(image: torch.Tensor, content: torch.Tensor, previous_content: torch.Tensor | None, mode: str
              ) -> torch.Tensor:  # fmt: skip
    """The last scale's picture at ``content``'s size, the start of the next scale (``Preset.upsample``)."""
    height, width = content.shape[-2:]
    if mode == "bilinear":
        antialias = width < image.shape[-1]
        return F.interpolate(image, size=(height, width), mode="bilinear", align_corners=False,
                             antialias=antialias).clamp(0, 1)  # fmt: skip
    larger = resize(image, width, height)
    if mode == "detail" and previous_content is not None:
        # The photo's own detail at this scale, which the last scale could not hold, laid over the painted picture.
        return (larger + content - resize(previous_content, width, height)).clamp(0, 1)
    if mode not in ("bicubic", "detail"):
        raise OptionsError(f"unknown upsampling {mode!r}")
    return larger


def _terms(values: dict[str, float]) -> LossTerms:
    return LossTerms(content=values["content"], style=values["style"], tv=values["tv"], total=values["total"])


def _layers(values: dict[str, float]) -> dict[str, float]:
    return {k.split("/", 1)[1]: v for k, v in values.items() if k.startswith("style/")}


def _check_input_sizes(content: Image.Image, styles: list[Image.Image]) -> None:
    """Pictures smaller than VGG's deepest layer can see hold no content or texture to transfer."""
    named = [("content image", content)]
    named += [("style image" if len(styles) == 1 else f"style image {i}", s) for i, s in enumerate(styles, 1)]
    for role, image in named:
        if min(image.size) < MIN_SIDE:
            raise ImageTooSmallError(
                f"{role} is {image.width}x{image.height} px; each side must be at least {MIN_SIDE} px", role=role
            )


def _use_bf16(precision: str, device: torch.device) -> bool:
    if precision == "fp32":
        return False
    supported = bf16_supported(device)
    if precision == "bf16" and not supported:
        raise OptionsError(f"bfloat16 was asked for, but {device} has no fast bfloat16 support; use precision fp32")
    return supported


def evaluate_losses(
    image: Image.Image,
    content: Image.Image,
    styles: Image.Image | Sequence[Image.Image],
    *,
    model: VGGFeatures,
    options: StyleOptions | None = None,
    **overrides: object,
) -> tuple[LossTerms, dict[str, float]]:
    """The plain Gatys objective (``presets.JUDGE``: relu4_2 content, equal-weight Gram losses, squared TV) of ``image``
    against content and styles at the image's own size, in float32 unless the options ask otherwise: one yardstick for
    pictures made by different runs, presets, strengths or programs. Of the options only the style images' scale and
    weights, the colour choice and the precision count."""
    style_list = [styles] if isinstance(styles, Image.Image) else list(styles)
    opts = resolve_options(options, **overrides)
    settings = dataclasses.replace(check_options(opts, len(style_list)), preset=JUDGE, tv_weight=JUDGE.tv_weight,
                                   options=dataclasses.replace(opts, strength=1.0))  # fmt: skip
    dev = model.device
    use_bf16 = opts.precision == "bf16" and _use_bf16("bf16", dev)
    width, height = image.size
    content_t = resize(to_tensor(content, dev), width, height)
    styles_t = [_style_at(to_tensor(s, dev), max(width, height), opts.style_scale) for s in style_list]
    target = to_tensor(image, dev)
    if opts.preserve_colors:
        styles_t = [color.match_luminance(s, content_t) for s in styles_t]
        content_t, target = color.grey_rgb(content_t), color.grey_rgb(target)
    grams = [_style_grams(model, s, use_bf16) for s in styles_t]
    with torch.no_grad():
        _, terms = _Objective(model, content_t, grams, settings, use_bf16)(_cl(target))
    values = {k: float(v) for k, v in terms.items()}
    return _terms(values), _layers(values)


def stylize(
    content: Image.Image,
    styles: Image.Image | Sequence[Image.Image],
    *,
    options: StyleOptions | None = None,
    model: VGGFeatures | None = None,
    weights: str | Path | None = None,
    device: str | torch.device | None = None,
    progress: ProgressCallback | None = None,
    should_stop: StopCallback | None = None,
    style_cache: StyleTargetCache | None = STYLE_TARGETS,
    **overrides: object,
) -> StyleResult:
    """Render ``content`` in the style of ``styles`` (one image or several, blended by ``style_weights``).

    ``options`` (a StyleOptions) and keyword overrides of its fields pick the preset, size, strength, seed and the
    rest. ``model`` is a loaded ``load_vgg`` result to reuse; without it one is loaded (and cached) from ``weights``
    on ``device``. ``progress`` receives a ProgressEvent after every iteration; ``should_stop`` is polled before each
    iteration and makes the call raise Cancelled. ``style_cache`` keeps the style images' Gram targets per size
    for later jobs with the same painting (the process-wide cache by default; None computes them afresh).
    """
    style_list = [styles] if isinstance(styles, Image.Image) else list(styles)
    opts = resolve_options(options, **overrides)
    settings = check_options(opts, len(style_list))
    _check_input_sizes(content, style_list)
    if model is None:
        model = _cached_model(weights, device)
    dev = model.device
    use_bf16 = _use_bf16(opts.precision, dev)
    scales = plan_scales(content.width, content.height, settings)
    run = Run(scales, opts, progress, should_stop)
    run.check_stop()

    content_full = to_tensor(content, dev)
    style_full = [to_tensor(s, dev) for s in style_list]
    targets = _StyleTargets(model, style_list, use_bf16, style_cache)
    generator = torch.Generator(device="cpu").manual_seed(opts.seed)
    image: torch.Tensor | None = None
    preset = settings.preset
    final_side = max(scales[-1].width, scales[-1].height)
    previous_content: torch.Tensor | None = None
    for index, scale in enumerate(scales):
        content_s = resize(content_full, scale.width, scale.height)
        side = max(scale.width, scale.height)
        grams = targets.for_content(style_full, content_s, side, opts, preset)
        if opts.preserve_colors:
            content_s = color.grey_rgb(content_s)
        objective = _Objective(model, content_s, grams, settings, use_bf16, scale_ratio=side / final_side)
        if image is None:
            if opts.init == "noise":
                image = torch.rand(content_s.shape, generator=generator).to(dev)
            else:
                image = content_s.clone()
        else:
            image = _upsample(image, content_s, previous_content, preset.upsample)
        previous_content = content_s
        image = _cl(image)
        if settings.optimizer == "lbfgs":
            image = optimize_lbfgs(image, objective, run, index, preset.lbfgs_average)
        else:
            image = optimize_adam(image, objective, run, index, preset)
    assert image is not None

    with torch.no_grad():
        _, end_terms = objective(image)
    end = {k: float(v) for k, v in end_terms.items()}
    if opts.preserve_colors:
        image = color.recolor(image, resize(content_full, scales[-1].width, scales[-1].height))
    seconds = time.perf_counter() - run.started
    first = run.first or end
    summary = LossSummary(
        start=_terms(first),
        end=_terms(end),
        style_layers_start=_layers(first),
        style_layers_end=_layers(end),
        iterations=run.total_steps,
        seconds=seconds,
        device=str(dev),
        precision="bf16" if use_bf16 else "fp32",
        preset=settings.preset.name,
        width=scales[-1].width,
        height=scales[-1].height,
        scales=tuple((s.width, s.height, s.iterations) for s in scales),
        optimizer=settings.optimizer,
    )
    log.debug("stylised %dx%d in %.2fs on %s (%s)", summary.width, summary.height, seconds, dev, summary.precision)
    return StyleResult(image=to_image(image), summary=summary, history=run.downsampled_history())

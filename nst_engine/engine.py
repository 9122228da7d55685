"""The style-transfer engine: ``load_vgg`` and ``stylize``.

Gatys et al. (arXiv 1508.06576): optimise the pixels of an image so that its VGG19 features match the content image
at relu4_2 and its Gram matrices match the style image(s) at relu1_1..relu5_1, plus a total-variation term. This
implementation works coarse to fine (each scale starts from the upsampled result of the previous one), runs the VGG
passes in bfloat16 (a bfloat16 copy of the weights) with channels-last layout where that is fast, sums every loss in
float32, and keeps each style image's Gram targets per size in a bounded per-process cache (``style_cache``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from nst_engine import color
from nst_engine.device import bf16_supported, resolve_device, retain_freed_memory
from nst_engine.errors import Cancelled, ImageTooSmallError, OptionsError
from nst_engine.losses import blend_grams, content_loss, gram_matrix, style_loss, tv_loss
from nst_engine.options import MIN_SIDE, ResolvedOptions, check_options, plan_scales, resolve_options
from nst_engine.options import Scale as _Scale
from nst_engine.options import fit as _fit
from nst_engine.presets import CONTENT_LAYER, STYLE_LAYERS, Preset
from nst_engine.style_cache import STYLE_TARGETS, Grams, StyleTargetCache, image_digest
from nst_engine.types import (
    HistoryPoint,
    LossSummary,
    LossTerms,
    ProgressCallback,
    ProgressEvent,
    StopCallback,
    StyleOptions,
    StyleResult,
)
from nst_engine.vgg import VGGFeatures
from nst_engine.weights import load_features, weights_spec

log = logging.getLogger("nst_engine")

HISTORY_POINTS = 200  # the loss history is downsampled to about this many points
PREVIEW_SIDE = 256


def load_vgg(weights: str | Path | None = None, device: str | torch.device | None = None) -> VGGFeatures:
    """Load the VGG19 feature extractor onto ``device``. Slow (seconds): load once and pass it to ``stylize``.

    ``weights``: ``imagenet`` (default, or env NST_WEIGHTS; torchvision's download, cached), a path to a state_dict
    of ``vgg19().features`` (float16 or float32), or ``random`` (tests only). ``device``: auto | cpu | cuda | cuda:N
    (default env NST_DEVICE, else auto). On the CPU this also keeps freed memory in the process
    (``retain_freed_memory``), so a VGG pass stops page-faulting its activations in afresh (README: Speed).
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


def _to_tensor(image: Image.Image, device: torch.device) -> torch.Tensor:
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).to(device)


def _to_image(tensor: torch.Tensor) -> Image.Image:
    array = tensor.detach().squeeze(0).clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(np.ascontiguousarray(array), "RGB")


def _resize(tensor: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Antialiased bicubic resize (downscaling without aliasing, smooth upscaling), clamped to [0, 1]."""
    if tensor.shape[-2:] == (height, width):
        return tensor
    antialias = width < tensor.shape[-1] or height < tensor.shape[-2]
    out = F.interpolate(tensor, size=(height, width), mode="bicubic", align_corners=False, antialias=antialias)
    return out.clamp(0, 1)


def _style_size(width: int, height: int, output_side: int, style_scale: float) -> tuple[int, int]:
    """Working size of a (width, height) style image: its long side ``style_scale`` times the output's, aspect ratio
    kept, never so small that its short side drops under MIN_SIDE (VGG's deepest layer would see nothing)."""
    long_side = max(round(output_side * style_scale), math.ceil(MIN_SIDE * max(width, height) / min(width, height)))
    return _fit(width, height, long_side)


def _style_at(style: torch.Tensor, output_side: int, style_scale: float) -> torch.Tensor:
    """The style image resized to its working size (``_style_size``)."""
    height, width = style.shape[-2:]
    return _resize(style, *_style_size(width, height, output_side, style_scale))


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
    ) -> None:
        self.model = model
        self.use_bf16 = use_bf16
        preset = settings.preset
        self.content_weight = preset.content_weight
        self.style_weight = preset.style_weight * settings.options.strength
        self.tv_weight = settings.tv_weight
        layer_weights = preset.style_layer_weights
        self.layer_weights = {name: w / sum(layer_weights) for name, w in zip(STYLE_LAYERS, layer_weights, strict=True)}
        self.layers = (*STYLE_LAYERS, CONTENT_LAYER)
        with torch.no_grad():
            self.content_target = self._features(content, (CONTENT_LAYER,))[CONTENT_LAYER].float()
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
        c = content_loss(feats[CONTENT_LAYER], self.content_target)
        per_layer = {name: style_loss(gram_matrix(feats[name]), self.gram_targets[name]) for name in STYLE_LAYERS}
        s = sum(self.layer_weights[name] * loss for name, loss in per_layer.items())
        tv = tv_loss(image)
        wc, ws, wtv = self.content_weight * c, self.style_weight * s, self.tv_weight * tv
        total = wc + ws + wtv
        terms = {"content": wc, "style": ws, "tv": wtv, "total": total}
        terms.update({f"style/{name}": loss for name, loss in per_layer.items()})
        return total, {k: v.detach() for k, v in terms.items()}  # type: ignore[union-attr]  # sum() of tensors


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
            return _style_grams(self.model, _resize(style, *size), self.use_bf16)

        if self.cache is None:
            return compute()
        key = (self.digests[index], size, self.use_bf16, self.weights, STYLE_LAYERS)
        return self.cache.get_or_compute(key, compute)


def _terms(values: dict[str, float]) -> LossTerms:
    return LossTerms(content=values["content"], style=values["style"], tv=values["tv"], total=values["total"])


def _layers(values: dict[str, float]) -> dict[str, float]:
    return {k.split("/", 1)[1]: v for k, v in values.items() if k.startswith("style/")}


class _Run:
    """State of one ``stylize`` call: progress reporting, cancellation and history."""

    def __init__(
        self,
        scales: list[_Scale],
        options: StyleOptions,
        progress: ProgressCallback | None,
        should_stop: StopCallback | None,
    ) -> None:
        self.scales = scales
        self.options = options
        self.progress = progress
        self.should_stop = should_stop
        self.total_steps = sum(s.iterations for s in scales)
        self.total_work = sum(s.iterations * s.pixels for s in scales)
        self.work = 0.0
        self.step = 0
        self.started = time.perf_counter()
        self.last_preview = -math.inf
        self.seconds_per_work: float | None = None  # measured cost of one iteration at one pixel
        self.history: list[HistoryPoint] = []
        self.first: dict[str, float] | None = None

    def check_stop(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise Cancelled("the job was cancelled")

    def after_step(
        self,
        index: int,
        iteration: int,
        terms: dict[str, torch.Tensor],
        seconds: float,
        current: Callable[[], torch.Tensor],
    ) -> None:
        scale = self.scales[index]
        self.step += 1
        self.work += scale.pixels
        rate = seconds / scale.pixels
        # Skip the first iteration of a scale (warm-up, target computation) when estimating speed.
        if iteration > 1:
            prev = self.seconds_per_work
            self.seconds_per_work = rate if prev is None else 0.8 * prev + 0.2 * rate
        values = {k: float(v) for k, v in terms.items()}
        if self.first is None:
            self.first = values
        self.history.append(HistoryPoint(self.step, index + 1, values["content"], values["style"], values["tv"],
                                         values["total"]))  # fmt: skip
        if self.progress is None:
            return
        elapsed = time.perf_counter() - self.started
        eta = None
        if self.seconds_per_work is not None:
            eta = (self.total_work - self.work) * self.seconds_per_work
        preview = None
        every = self.options.preview_every
        if every is not None and (elapsed - self.last_preview >= every or self.step == self.total_steps):
            self.last_preview = elapsed
            preview = _to_image(current())
            preview.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), Image.Resampling.LANCZOS)
        self.progress(
            ProgressEvent(
                scale=index + 1,
                scales=len(self.scales),
                width=scale.width,
                height=scale.height,
                iteration=iteration,
                iterations=scale.iterations,
                step=self.step,
                total_steps=self.total_steps,
                losses={k: values[k] for k in ("content", "style", "tv", "total")},
                elapsed=elapsed,
                eta=eta,
                preview=preview,
                work_done=self.work / self.total_work,
            )
        )

    def downsampled_history(self) -> list[HistoryPoint]:
        stride = max(1, math.ceil(len(self.history) / HISTORY_POINTS))
        points = self.history[::stride]
        if self.history and points[-1] is not self.history[-1]:
            points.append(self.history[-1])
        return points


def _optimize_adam(
    x0: torch.Tensor, objective: _Objective, run: _Run, index: int, preset: Preset
) -> torch.Tensor:
    """Adam on the pixels with iterate averaging; returns the averaged image (less noisy than the last iterate)."""
    x = x0.detach().clone().requires_grad_(True)
    lr = preset.lr if index == 0 or preset.refine_lr is None else preset.refine_lr
    optimizer = torch.optim.Adam([x], lr=lr)
    average = x.detach().clone()
    decay = preset.average_decay
    for iteration in range(1, run.scales[index].iterations + 1):
        run.check_stop()
        tick = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss, terms = objective(x)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            x.clamp_(0, 1)
            # Debiased EMA: early on the average is dominated by recent iterates rather than the start image.
            weight = decay * (1 - decay ** (iteration - 1)) / (1 - decay**iteration) if decay > 0 else 0.0
            average.mul_(weight).add_(x.detach(), alpha=1 - weight)
        run.after_step(index, iteration, terms, time.perf_counter() - tick, lambda: average)
    return average


LBFGS_HISTORY = 50  # curvature pairs kept by L-BFGS
FIRST_STEP = 0.01  # the largest pixel change ([0, 1] range) of L-BFGS's first step on a fresh history
DIVERGED = 2.0  # an L-BFGS step whose loss exceeds this many times the best so far has diverged: restart


def _optimize_lbfgs(
    x0: torch.Tensor, objective: Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]], run: _Run,
    index: int,
) -> torch.Tensor:  # fmt: skip
    """L-BFGS without a line search (one evaluation per iteration), its tolerances disabled so it always runs the full
    schedule.

    torch's L-BFGS starts with the step -g/|g|_1, which on a few hundred thousand pixels moves them by about 1e-6; the
    first curvature pair then measures the bfloat16 rounding of the gradients rather than curvature, and the next step
    can overshoot by far. So the first step of a fresh history is sized to move the pixels by at most FIRST_STEP. As a
    guard, a step whose loss is not finite or over DIVERGED times the best seen goes back to the best image and starts
    the history afresh; and the scale ends with its last image only when that is no worse than the best one seen (one
    forward pass more: the last step is not evaluated otherwise).
    """
    # L-BFGS flattens gradients with .view(), which needs the default contiguous layout.
    x = x0.detach().contiguous().clone().requires_grad_(True)

    def fresh() -> torch.optim.LBFGS:
        return torch.optim.LBFGS([x], lr=1.0, max_iter=1, max_eval=1, history_size=LBFGS_HISTORY,
                                 tolerance_grad=-1.0, tolerance_change=-1.0)  # fmt: skip

    optimizer, first = fresh(), True
    latest: dict[str, torch.Tensor] = {}
    best_loss, best = math.inf, x.detach().clone()
    value = math.inf  # the loss of the latest evaluation
    evaluated: torch.Tensor | None = None  # a loss at x whose gradient is in x.grad: the next closure call's answer

    def closure() -> torch.Tensor:
        nonlocal best_loss, value, evaluated
        if evaluated is not None:
            loss, evaluated = evaluated, None
            return loss
        optimizer.zero_grad(set_to_none=True)
        loss, terms = objective(x)
        value = float(loss.detach())
        if value < best_loss:
            best_loss = value
            best.copy_(x.detach())
        loss.backward()
        latest.update(terms)
        return loss

    def first_step() -> None:
        nonlocal evaluated
        loss = closure()
        assert x.grad is not None
        total, largest = float(x.grad.abs().sum()), float(x.grad.abs().max())
        if math.isfinite(total) and largest > 0:  # the step is -g * min(1, 1/|g|_1) * lr
            optimizer.param_groups[0]["lr"] = FIRST_STEP / (largest * min(1.0, 1.0 / total))
        evaluated = loss
        optimizer.step(closure)
        optimizer.param_groups[0]["lr"] = 1.0

    for iteration in range(1, run.scales[index].iterations + 1):
        run.check_stop()
        tick = time.perf_counter()
        if first:
            first_step()
            first = False
        else:
            optimizer.step(closure)
        with torch.no_grad():
            if not math.isfinite(value) or value > DIVERGED * best_loss:
                # ``value`` is the loss where this iteration started: the step before it diverged.
                log.warning("L-BFGS diverged at scale %d, step %d (loss %.4g, best %.4g): restarting from the best "
                            "image", index + 1, iteration - 1, value, best_loss)  # fmt: skip
                x.copy_(best)
                optimizer, first = fresh(), True
            x.clamp_(0, 1)
        run.after_step(index, iteration, latest, time.perf_counter() - tick, lambda: x)
    with torch.no_grad():
        x.clamp_(0, 1)
        if float(objective(x)[0]) > best_loss:
            x.copy_(best)
    return x.detach()


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
    """The objective of ``image`` against content and styles at the image's own size, in float32 unless the
    options ask otherwise: a common yardstick for pictures made by different runs or programs."""
    style_list = [styles] if isinstance(styles, Image.Image) else list(styles)
    opts = resolve_options(options, **overrides)
    settings = check_options(opts, len(style_list))
    dev = model.device
    use_bf16 = opts.precision == "bf16" and _use_bf16("bf16", dev)
    width, height = image.size
    content_t = _resize(_to_tensor(content, dev), width, height)
    styles_t = [_style_at(_to_tensor(s, dev), max(width, height), opts.style_scale) for s in style_list]
    target = _to_tensor(image, dev)
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
    run = _Run(scales, opts, progress, should_stop)
    run.check_stop()

    content_full = _to_tensor(content, dev)
    style_full = [_to_tensor(s, dev) for s in style_list]
    targets = _StyleTargets(model, style_list, use_bf16, style_cache)
    generator = torch.Generator(device="cpu").manual_seed(opts.seed)
    image: torch.Tensor | None = None
    for index, scale in enumerate(scales):
        content_s = _resize(content_full, scale.width, scale.height)
        side = max(scale.width, scale.height)
        if opts.preserve_colors:  # the styles' luminance is matched to this content: targets for this job only
            styles_s = [color.match_luminance(_style_at(s, side, opts.style_scale), content_s) for s in style_full]
            grams = [_style_grams(model, s, use_bf16) for s in styles_s]
            content_s = color.grey_rgb(content_s)
        else:
            grams = [targets.grams(i, s, side, opts.style_scale) for i, s in enumerate(style_full)]
        objective = _Objective(model, content_s, grams, settings, use_bf16)
        if image is None:
            if opts.init == "noise":
                image = torch.rand(content_s.shape, generator=generator).to(dev)
            else:
                image = content_s.clone()
        else:
            image = _resize(image, scale.width, scale.height)
        image = _cl(image)
        if settings.optimizer == "lbfgs":
            image = _optimize_lbfgs(image, objective, run, index)
        else:
            image = _optimize_adam(image, objective, run, index, settings.preset)
    assert image is not None

    with torch.no_grad():
        _, end_terms = objective(image)
    end = {k: float(v) for k, v in end_terms.items()}
    if opts.preserve_colors:
        image = color.recolor(image, _resize(content_full, scales[-1].width, scales[-1].height))
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
    return StyleResult(image=_to_image(image), summary=summary, history=run.downsampled_history())

"""Painting an animation steadily: ``stylize_clip``.

The first frame is painted as a still (the preset's whole coarse-to-fine schedule). Each next frame starts from the
painted frame before it plus the source's own change between the two frames, and is refined at the final size only,
for a few iterations (``next_frame_iterations``: at most ``NEXT_FRAME_SHARE`` of the first frame's work). A steadiness
term holds each pixel to the previous painted frame in proportion to how still the source is there, so a still
stretch stays still instead of being repainted (flicker) while moving parts are free to follow the source. The style
targets are computed once per job, at the final size.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from nst_engine import color
from nst_engine.animation import Clip
from nst_engine.engine import (
    _cached_model,
    _check_input_sizes,
    _cl,
    _layers,
    _Objective,
    _StyleTargets,
    _terms,
    _use_bf16,
    stylize,
)
from nst_engine.optimize import Objective, Run, optimize_adam, optimize_lbfgs
from nst_engine.options import Scale, check_options, plan_scales, resolve_options
from nst_engine.pixels import resize, to_image, to_tensor
from nst_engine.style_cache import STYLE_TARGETS, Grams, StyleTargetCache
from nst_engine.types import ProgressCallback, ProgressEvent, StopCallback, StyleOptions, StyleResult
from nst_engine.vgg import VGGFeatures

NEXT_FRAME_SHARE = 0.28  # a next frame's iterations: this share of the first frame's (under animation.NEXT_FRAME_COST)
STEADINESS_WEIGHT = 2000.0  # pulls a still pixel to its previous painted value; measured on the sample clip
STILLNESS = 0.02  # source change ([0, 1] units, mean over RGB) at which the pull falls to 1/e of its full weight
UNCHANGED = 0.5 / 255  # a source frame no pixel of which moves by this much repeats the painted frame before it


def next_frame_iterations(scales: list[Scale]) -> int:
    """Iterations at the final size for each frame after the first: ``NEXT_FRAME_SHARE`` of the first's work."""
    work = sum(s.iterations * s.pixels for s in scales)
    return max(1, math.floor(NEXT_FRAME_SHARE * work / scales[-1].pixels))


class _Steady:
    """The frame's objective plus the steadiness term: weight * mean(stillness * (x - previous painted frame)^2)."""

    def __init__(self, objective: _Objective, anchor: torch.Tensor, stillness: torch.Tensor) -> None:
        self.objective, self.anchor, self.stillness = objective, anchor, stillness

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        total, terms = self.objective(image)
        steady = STEADINESS_WEIGHT * (self.stillness * (image - self.anchor)).pow(2).mean()
        total = total + steady
        terms["total"] = total.detach()
        return total, terms


class _ClipProgress:
    """Turns each frame's progress events into the whole clip's: frame number, steps, share of work, time left."""

    def __init__(self, progress: ProgressCallback | None, frames: int, first: list[Scale], next_steps: int) -> None:
        self.progress, self.frames = progress, frames
        self.first_work = sum(s.iterations * s.pixels for s in first)
        self.next_work = next_steps * first[-1].pixels
        self.first_steps, self.next_steps = sum(s.iterations for s in first), next_steps
        self.total_work = self.first_work + (frames - 1) * self.next_work
        self.total_steps = self.first_steps + (frames - 1) * next_steps
        self.started = time.perf_counter()

    def for_frame(self, frame: int) -> ProgressCallback | None:
        if self.progress is None:
            return None
        later = frame - 2  # frames painted after the first and before this one
        work_before = 0 if frame == 1 else self.first_work + later * self.next_work
        steps_before = 0 if frame == 1 else self.first_steps + later * self.next_steps
        share = self.first_work if frame == 1 else self.next_work
        report = self.progress

        def emit(event: ProgressEvent) -> None:
            elapsed = time.perf_counter() - self.started
            done = (work_before + event.fraction * share) / self.total_work
            eta = elapsed * (1 - done) / done if done > 0 and frame > 1 else None
            if frame == 1 and event.eta is not None and event.fraction > 0:
                rate = elapsed / (event.fraction * share)  # seconds per unit of work, so far
                eta = event.eta + (self.total_work - self.first_work) * rate
            report(dataclasses.replace(event, frame=frame, frames=self.frames, step=steps_before + event.step,
                                       total_steps=self.total_steps, elapsed=elapsed, eta=eta, work_done=done))  # fmt: skip

        return emit

    def skipped(self, frame: int, last: ProgressEvent | None) -> None:
        """A frame repeated from the one before still counts as done."""
        emit = self.for_frame(frame)
        if emit is not None and last is not None:
            emit(dataclasses.replace(last, step=self.next_steps, iteration=last.iterations, work_done=1.0,
                                     preview=None))  # fmt: skip


def stylize_clip(
    clip: Clip,
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
    """Paint every frame of ``clip`` in the style of ``styles``; the arguments are ``stylize``'s.

    Returns a StyleResult whose ``clip`` is the painted animation (the source's durations and loop), ``image`` its
    first frame, and ``summary`` the whole run's (``end``: the mean over the frames; ``frames``: how many).
    ``progress`` events carry ``frame``/``frames``; ``should_stop`` is polled before every iteration of every frame.
    """
    style_list = [styles] if isinstance(styles, Image.Image) else list(styles)
    opts = resolve_options(options, **overrides)
    settings = check_options(opts, len(style_list))
    _check_input_sizes(clip.frames[0], style_list)
    if model is None:
        model = _cached_model(weights, device)
    scales = plan_scales(clip.size[0], clip.size[1], settings)
    steps = next_frame_iterations(scales)
    tracker = _ClipProgress(progress, len(clip), scales, steps)
    last: list[ProgressEvent] = []

    def remember(emit: ProgressCallback | None) -> ProgressCallback | None:
        if emit is None:
            return None

        def both(event: ProgressEvent) -> None:
            last[:] = [event]
            emit(event)

        return both

    first = stylize(clip.frames[0], style_list, options=opts, model=model, progress=remember(tracker.for_frame(1)),
                    should_stop=should_stop, style_cache=style_cache)  # fmt: skip
    painter = _FramePainter(model, style_list, opts, scales[-1], style_cache)
    previous = to_tensor(first.image, model.device)
    previous_source = painter.source(clip.frames[0])
    frames, ends = [first.image], [first.summary.end]
    layers = [first.summary.style_layers_end]
    repeated = 0
    for number, frame in enumerate(clip.frames[1:], start=2):
        source = painter.source(frame)
        if float((source - previous_source).abs().max()) < UNCHANGED:
            repeated += 1
            tracker.skipped(number, last[0] if last else None)
            frames.append(frames[-1])
            ends.append(ends[-1])
            layers.append(layers[-1])
            continue
        run = Run([Scale(scales[-1].width, scales[-1].height, steps)], opts, remember(tracker.for_frame(number)),
                  should_stop)  # fmt: skip
        previous, values = painter.paint(source, previous_source, previous, run)
        previous_source = source
        frames.append(to_image(previous))
        ends.append(_terms(values))
        layers.append(_layers(values))

    def mean(name: str) -> float:
        return sum(getattr(e, name) for e in ends) / len(ends)

    painted = len(clip) - 1 - repeated
    notes = (*first.summary.notes, *clip.notes, f"{len(clip)} frames: the first painted in "
             f"{first.summary.iterations} iterations, each next one in {steps} from the frame before"
             + (f" ({repeated} unchanged frames repeated)" if repeated else ""))  # fmt: skip
    summary = dataclasses.replace(
        first.summary,
        end=type(first.summary.end)(content=mean("content"), style=mean("style"), tv=mean("tv"), total=mean("total")),
        style_layers_end={k: sum(layer[k] for layer in layers) / len(layers) for k in layers[0]},
        iterations=first.summary.iterations + painted * steps,
        seconds=time.perf_counter() - tracker.started,
        notes=notes,
        frames=len(clip),
    )
    return StyleResult(image=frames[0], summary=summary, history=first.history, clip=clip.with_frames(frames))


class _FramePainter:
    """What every frame after the first shares: the model, the final size and the style targets at that size."""

    def __init__(
        self,
        model: VGGFeatures,
        styles: list[Image.Image],
        options: StyleOptions,
        final: Scale,
        cache: StyleTargetCache | None,
    ) -> None:
        self.model, self.options, self.final = model, options, final
        self.settings = check_options(options, len(styles))
        self.use_bf16 = _use_bf16(options.precision, model.device)
        self.styles = [to_tensor(s, model.device) for s in styles]
        self.side = max(final.width, final.height)
        self.targets = _StyleTargets(model, styles, self.use_bf16, cache)
        self.grams: list[Grams] | None = None
        if not self.targets.follow_content(options, self.settings.preset):  # else computed per frame
            self.grams = self.targets.for_content(self.styles, None, self.side, options, self.settings.preset)

    def source(self, frame: Image.Image) -> torch.Tensor:
        return resize(to_tensor(frame, self.model.device), self.final.width, self.final.height)

    def paint(
        self, source: torch.Tensor, previous_source: torch.Tensor, previous: torch.Tensor, run: Run
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The painted frame for ``source`` (as displayed) and its end losses, starting from ``previous``."""
        content, before, anchor, grams = source, previous_source, previous, self.grams
        if grams is None:
            grams = self.targets.for_content(self.styles, source, self.side, self.options, self.settings.preset)
        if self.options.preserve_colors:
            content, before, anchor = color.grey_rgb(source), color.grey_rgb(previous_source), color.grey_rgb(previous)
        objective = _Objective(self.model, content, grams, self.settings, self.use_bf16)
        stillness = torch.exp(-(content - before).abs().mean(1, keepdim=True) / STILLNESS)
        start = _cl((anchor + (content - before)).clamp(0, 1))
        steady: Objective = _Steady(objective, anchor, stillness)
        if self.settings.optimizer == "lbfgs":
            image = optimize_lbfgs(start, steady, run, 0)
        else:  # later frames start from a good image, as later scales do
            preset = self.settings.preset
            image = optimize_adam(start, steady, run, 0, dataclasses.replace(preset, lr=preset.refine_lr or preset.lr))
        with torch.no_grad():
            _, terms = objective(_cl(image))
        values = {k: float(v) for k, v in terms.items()}
        if self.options.preserve_colors:
            image = color.recolor(image, source)
        return image, values

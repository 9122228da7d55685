"""The optimisation of one scale's pixels (L-BFGS, or Adam with iterate averaging), and ``Run``: one ``stylize``
call's progress events, cancellation and loss history, which both optimizers report each step to."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import torch
from PIL import Image

from nst_engine.errors import Cancelled
from nst_engine.options import Scale
from nst_engine.pixels import to_image
from nst_engine.presets import Preset
from nst_engine.types import HistoryPoint, ProgressCallback, ProgressEvent, StopCallback, StyleOptions

log = logging.getLogger("nst_engine")

HISTORY_POINTS = 200  # the loss history is downsampled to about this many points
PREVIEW_SIDE = 256

Objective = Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]]  # pixels -> (loss, its terms)


class Run:
    """State of one ``stylize`` call: progress reporting, cancellation and history."""

    def __init__(
        self,
        scales: list[Scale],
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
            preview = to_image(current())
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


def optimize_adam(
    x0: torch.Tensor, objective: Objective, run: Run, index: int, preset: Preset
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


def optimize_lbfgs(
    x0: torch.Tensor, objective: Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]], run: Run,
    index: int, average: float = 0.0,
) -> torch.Tensor:  # fmt: skip
    """L-BFGS without a line search (one evaluation per iteration), its tolerances disabled so it always runs the full
    schedule.

    torch's L-BFGS starts with the step -g/|g|_1, which on a few hundred thousand pixels moves them by about 1e-6; the
    first curvature pair then measures the bfloat16 rounding of the gradients rather than curvature, and the next step
    can overshoot by far. So the first step of a fresh history is sized to move the pixels by at most FIRST_STEP. As a
    guard, a step whose loss is not finite or over DIVERGED times the best seen goes back to the best image and starts
    the history afresh; and the scale ends with its last image only when that is no worse than the best one seen (one
    forward pass more: the last step is not evaluated otherwise). With ``average`` > 0 the scale ends with a debiased
    EMA of the iterates (decay ``average``) instead, when that is no worse than the best one seen.
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

    mean = x.detach().clone() if average > 0 else None
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
            if mean is not None:
                weight = average * (1 - average ** (iteration - 1)) / (1 - average**iteration)
                mean.mul_(weight).add_(x.detach(), alpha=1 - weight)
        run.after_step(index, iteration, latest, time.perf_counter() - tick, lambda: x)
    with torch.no_grad():
        x.clamp_(0, 1)
        if mean is not None:
            x.copy_(mean)
        if float(objective(x)[0]) > best_loss:
            x.copy_(best)
    return x.detach()

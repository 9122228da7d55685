"""The request policy: what a request may be (inputs, metadata checks) and the engine options it runs with.

Pure functions over plain data, so every rule here is unit-tested without Discord or the engine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import discord
from PIL import Image

from bot import quoting
from bot.requests.arguments import StyleArgs
from bot.storage.limits import Limits
from nst_engine.animation import Clip, TooManyFramesError
from nst_engine.errors import FileTooLargeError, ImageError, ImageTooSmallError, TooManyPixelsError
from nst_engine.images import human_bytes
from nst_engine.options import fit, output_size
from nst_engine.presets import DEFAULT_PRESET, PRESETS
from nst_engine.types import StyleOptions

IMAGE_CONTENT_TYPES = ("image/",)


class Refusal(Exception):
    """A request we will not run; the message is shown to the user as is, ``reason`` goes to logs and metrics."""

    def __init__(self, message: str, *, reason: str = "refused") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class InputFile:
    """An attachment's metadata, as Discord reports it (checked before downloading)."""

    filename: str
    url: str
    size: int
    content_type: str | None = None
    width: int | None = None
    height: int | None = None

    @classmethod
    def from_attachment(cls, a: discord.Attachment) -> InputFile:
        # The name is only ever shown: made inert and short here, once, so every message that quotes it fits.
        return cls(quoting.name(a.filename), a.url, a.size, a.content_type, a.width, a.height)


@dataclass(frozen=True)
class ImageInput:
    """A picture that is already decoded (RGB, within limits), with the name the user knows it by.

    The seam for inputs that are not attachments: a re-run's cached images, or a gallery painting,
    which its cog resolves by name and passes in place of an attachment.
    """

    name: str
    image: Image.Image
    clip: Clip | None = None  # every frame, when the picture is an animation (``image`` is its first)


# One input of a request: an attachment still to download and check, or a decoded picture.
Source = InputFile | ImageInput


@dataclass
class Inputs:
    """The decoded images of a request (kept for the re-run buttons)."""

    content: Image.Image
    styles: list[Image.Image]
    names: list[str]
    clip: Clip | None = None  # the content's every frame, when it is an animation (``content`` is its first)
    notes: list[str] = field(default_factory=list)  # what reading the inputs changed, for the result's summary

    def nbytes(self) -> int:
        frames = list(self.clip.frames[1:]) if self.clip is not None else []
        return sum(im.width * im.height * 3 for im in [self.content, *frames, *self.styles])

    def sources(self) -> list[Source]:
        styles = [ImageInput(name, im) for name, im in zip(self.names[1:], self.styles, strict=True)]
        return [ImageInput(self.names[0], self.content, self.clip), *styles]


def role_name(index: int, n_styles: int) -> str:
    if index == 0:
        return "content image"
    return "style image" if n_styles == 1 else f"style image {index}"


def sentence(text: str) -> str:
    """``text`` as a sentence: capitalised, ending with a full stop."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


# What the user can do about a refused picture; the engine's message says only what is wrong.
IMAGE_ADVICE: tuple[tuple[type[ImageError], str], ...] = (
    (TooManyPixelsError, "Send a smaller image."),
    (FileTooLargeError, "Send a smaller file."),
    (ImageTooSmallError, "Send a larger image."),
    (TooManyFramesError, "Send a shorter animation, or ask for `fit` to paint only its first frames."),
)


def image_refusal(exc: ImageError, *, filename: str | None = None) -> str:
    """The user's message for a picture the engine refused: what is wrong, which file, and what to do."""
    text = sentence(str(exc)).removesuffix(".")
    if filename:
        text += f" (file `{filename}`)"
    advice = next((tip for kind, tip in IMAGE_ADVICE if isinstance(exc, kind)), "")
    return f"{text}. {advice}".rstrip()


def check_metadata(sources: Sequence[Source], limits: Limits, *, max_styles: int) -> None:
    """Refuse (before downloading) what the count and Discord's metadata already show to be wrong."""
    if len(sources) < 2:
        got = "no image" if not sources else f"only one file (`{source_name(sources[0])}`)"
        raise Refusal(
            f"I need two images, the content first and the style second, but got {got}. "
            "Attach both to one message (or use `/style content: style:`).",
            reason="too-few-images",
        )
    if len(sources) - 1 > max_styles:
        raise Refusal(
            f"Too many images: {len(sources)} attached, but at most {max_styles} style images can be blended "
            f"(so {max_styles + 1} images in all, the first being the content).",
            reason="too-many-images",
        )
    n_styles = len(sources) - 1
    for i, f in enumerate(sources):
        if not isinstance(f, InputFile):
            continue  # already decoded and checked
        role = role_name(i, n_styles)
        ctype = (f.content_type or "").split(";")[0].strip().lower()
        if ctype and not ctype.startswith(IMAGE_CONTENT_TYPES):
            raise Refusal(
                f"`{f.filename}` ({role}) is not an image (Discord says `{ctype}`); send PNG, JPEG, WebP, "
                "GIF or BMP.",
                reason="not-an-image",
            )
        if f.size > limits.max_bytes:
            raise Refusal(
                f"`{f.filename}` ({role}) is {human_bytes(f.size)}; the limit here is "
                f"{limits.max_file_mb:g} MB. Send a smaller file.",
                reason="file-too-large",
            )
        if f.width and f.height and f.width * f.height > limits.max_pixels:
            raise Refusal(
                f"`{f.filename}` ({role}) is {f.width}×{f.height} px ({f.width * f.height / 1e6:.1f} MP); the "
                f"limit here is {limits.max_megapixels:g} MP. Send a smaller image.",
                reason="too-many-pixels",
            )


def source_name(source: Source) -> str:
    """The name the user knows an input by (a filename, or a painting's name)."""
    return source.filename if isinstance(source, InputFile) else source.name


def choose_preset(requested: str | None, limits: Limits) -> str:
    if requested is None:
        return DEFAULT_PRESET if DEFAULT_PRESET in limits.allowed_presets else limits.allowed_presets[0]
    if requested not in limits.allowed_presets:
        raise Refusal(
            f"The `{requested}` preset is not allowed here; choose from {', '.join(limits.allowed_presets)}.",
            reason="preset-not-allowed",
        )
    return requested


def build_options(
    args: StyleArgs, limits: Limits, *, overrides: Mapping[str, Any] | None = None,
    preview_every: float | None = None,
) -> StyleOptions:
    """StyleOptions for a request: the preset's size capped by the output limit, plus test/dev overrides."""
    preset = choose_preset(args.preset, limits)
    extra = dict(overrides or {})
    size = min(int(extra.pop("size", PRESETS[preset].size)), limits.max_output_side)
    return StyleOptions(
        preset=preset,
        size=size,
        strength=args.strength,
        preserve_colors=args.preserve_colors,
        seed=args.seed,
        preview_every=preview_every,
        **extra,
    )


def plan_request(
    sources: Sequence[Source], args: StyleArgs, limits: Limits, *, max_styles: int,
    overrides: Mapping[str, Any] | None = None, preview_every: float | None = None,
) -> StyleOptions:
    """The whole policy in one call: refuse (Refusal) what may not run here, else the options it runs with."""
    options = build_options(args, limits, overrides=overrides, preview_every=preview_every)
    check_metadata(sources, limits, max_styles=max_styles)
    return options


MIN_ANIMATION_SIDE = 64  # an animation is not made smaller than this to fit the limit


def fit_animation(inputs: Inputs, options: StyleOptions, limits: Limits, *, fit_it: bool) -> StyleOptions:
    """The options the inputs run with: an animation's frames x output pixels must stay within the animation limit;
    over it the request is refused with the numbers, or with ``fit_it`` painted smaller (said in ``inputs.notes``)."""
    clip = inputs.clip
    if clip is None:
        return options
    size = output_size(options)
    width, height = fit(*clip.size, size)
    work = len(clip) * width * height
    budget = limits.max_animation_megapixels * 1e6
    if work <= budget:
        return options
    smaller = int(size * (budget / work) ** 0.5)
    while smaller >= MIN_ANIMATION_SIDE and len(clip) * math.prod(fit(*clip.size, smaller)) > budget:
        smaller -= 1  # the sides are rounded: step down until the frames really fit
    if fit_it and smaller >= MIN_ANIMATION_SIDE:
        new_w, new_h = fit(*clip.size, smaller)
        inputs.notes.append(f"painted at {new_w}×{new_h} to fit the animation limit")
        return replace(options, size=smaller)
    shown = f"{len(clip)} frames of {width}×{height} px = {work / 1e6:.1f} MP"
    advice = "Send a shorter or smaller animation" + (
        "." if fit_it else ", or ask for `fit` to paint it smaller.")
    raise Refusal(
        f"This animation is too big to paint here: {shown}; the limit is {limits.max_animation_megapixels:g} MP "
        f"(frames × output size). {advice}",
        reason="animation-too-big",
    )


def job_title(options: StyleOptions, names: Sequence[str]) -> str:
    """The first line of a job's status: what is being painted, and how."""
    blend = f" + {len(names) - 2} more" if len(names) > 2 else ""
    return (
        f"**Style transfer** · `{names[0]}` in the style of `{names[1]}`{blend} · "
        f"preset {options.preset}, strength {options.strength:g}"
        + (", colours preserved" if options.preserve_colors else "")
    )

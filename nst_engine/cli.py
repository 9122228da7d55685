"""``nst``: the command-line front end of the engine (a thin layer: parse, load, stylise, report)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from PIL import Image

from nst_engine import __version__
from nst_engine.animation import MAX_FRAMES, Clip, decode_clip, encode_clip
from nst_engine.errors import ImageError, NSTError, OptionsError, WeightsError
from nst_engine.images import ImageLimits
from nst_engine.presets import DEFAULT_PRESET, PRESETS
from nst_engine.types import LossSummary, ProgressEvent, StyleOptions, StyleResult

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_BAD_INPUT, EXIT_WEIGHTS, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
_EXIT_CODES = ((ImageError, EXIT_BAD_INPUT), (WeightsError, EXIT_WEIGHTS), (OptionsError, EXIT_USAGE))
OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
CLIP_FORMATS = {".gif": "GIF", ".webp": "WEBP", ".png": "PNG"}  # an animation: GIF, animated WebP, APNG
# The CLI runs on the user's own machine: generous limits, but the same decoding and checks as the bot.
_LIMITS = ImageLimits(max_bytes=200 * 2**20, max_pixels=200_000_000)


def build_parser() -> argparse.ArgumentParser:
    presets = "; ".join(f"{p.name}: {p.description}" for p in PRESETS.values())
    parser = argparse.ArgumentParser(
        prog="nst",
        description="Neural style transfer (Gatys et al.): paint CONTENT in the style of STYLE.",
        epilog=f"Presets — {presets}. Weights: NST_WEIGHTS or --weights (default: torchvision's IMAGENET1K_V1).",
    )
    parser.add_argument("--version", action="version", version=f"nst {__version__}")
    parser.add_argument("content", type=Path, help="content image (photo, or an animated GIF, APNG or WebP)")
    parser.add_argument("styles", type=Path, nargs="+", metavar="style", help="style image(s); several are blended")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="output file (.png, .jpg or .webp; for an animation .gif, .webp or .png)")  # fmt: skip
    parser.add_argument("--max-frames", type=int, default=MAX_FRAMES,
                        help=f"an animation with more frames is cut to its first MAX_FRAMES (default {MAX_FRAMES})")  # fmt: skip
    parser.add_argument("--preset", choices=sorted(PRESETS), default=DEFAULT_PRESET, help="speed/quality preset")
    parser.add_argument("--size", type=int, help="output long side in pixels (default: the preset's)")
    parser.add_argument("--strength", type=float, default=1.0, help="style strength: 0.25 subtle, 1 default, 4 strong")
    parser.add_argument("--style-weights", type=float, nargs="+", help="blend weights, one per style image")
    parser.add_argument("--style-scale", type=float, default=1.0, help="style image size relative to the output")
    parser.add_argument("--preserve-colors", action="store_true", help="keep the content image's colours")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same picture on the CPU)")
    parser.add_argument("--init", choices=("content", "noise"), default="content", help="start image")
    parser.add_argument("--optimizer", choices=("adam", "lbfgs"), help="default: the preset's (lbfgs)")
    parser.add_argument("--iterations", type=int, help="iterations at the final scale (earlier scales follow)")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto", help="VGG pass precision")
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: NST_DEVICE or auto)")
    parser.add_argument("--weights", help="imagenet, random, or a path to a vgg19().features state_dict")
    parser.add_argument("--loss-plot", type=Path, metavar="PNG", help="also write the loss curves as a PNG chart")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the engine does")
    return parser


def _read(path: Path, role: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot read {role} {str(path)!r}: {exc.strerror or exc}", role=role) from exc


def _read_image(path: Path, role: str):
    from nst_engine.images import decode_image

    return decode_image(_read(path, role), role=role, limits=_LIMITS)


def _read_content(path: Path, max_frames: int) -> Image.Image | Clip:
    """The content image, or every frame of it when it is an animation (cut to ``max_frames``, with a note)."""
    from nst_engine.images import decode_image, probe_image

    role, limits = "content image", _LIMITS
    data = _read(path, role)
    if probe_image(data, role=role, limits=limits).animated:
        return decode_clip(data, role=role, limits=limits, max_frames=max_frames, shorten=True)
    return decode_image(data, role=role, limits=limits)


def format_summary(summary: LossSummary) -> str:
    """A plain-text table of the loss summary."""
    rows = [("content", summary.start.content, summary.end.content), ("style", summary.start.style, summary.end.style),
            ("tv", summary.start.tv, summary.end.tv), ("total", summary.start.total, summary.end.total)]  # fmt: skip
    lines = [f"{'loss':<10}{'start':>12}{'end':>12}"]
    lines += [f"{name:<10}{start:>12.4g}{end:>12.4g}" for name, start, end in rows]
    lines.append("style per layer: " + ", ".join(f"{k} {v:.3g}" for k, v in summary.style_layers_end.items()))
    scales = " → ".join(f"{w}x{h}×{n}" for w, h, n in summary.scales)
    lines.append(
        f"{summary.preset} · {summary.width}x{summary.height} · {summary.iterations} iterations ({scales}) · "
        f"{summary.optimizer} · {summary.seconds:.1f} s on {summary.device} ({summary.precision})"
    )
    if summary.frames > 1:
        lines.append(f"{summary.frames} frames; the end losses are their mean")
    lines.extend(f"note: {note}" for note in summary.notes)
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> StyleResult:
    from tqdm import tqdm

    from nst_engine.engine import load_vgg, stylize
    from nst_engine.temporal import stylize_clip

    suffix = args.output.suffix.lower()
    if suffix not in OUTPUT_FORMATS and suffix not in CLIP_FORMATS:
        raise OptionsError(f"output must end in .png, .jpg, .webp or .gif, not {args.output.name!r}")
    if args.max_frames < 1:
        raise OptionsError(f"--max-frames must be at least 1, got {args.max_frames}")
    content = _read_content(args.content, args.max_frames)
    if isinstance(content, Clip) and suffix not in CLIP_FORMATS:
        raise OptionsError(f"{args.content.name} is an animation: write it to a .gif, .webp or .png, not {suffix}")
    if not isinstance(content, Clip) and suffix not in OUTPUT_FORMATS:
        raise OptionsError(f"{args.content.name} is a still picture: write it to a .png, .jpg or .webp, not {suffix}")
    multi = len(args.styles) > 1
    styles = [_read_image(p, f"style image {i}" if multi else "style image") for i, p in enumerate(args.styles, 1)]
    model = load_vgg(args.weights, args.device)
    bar = None
    if not args.quiet:
        bar = tqdm(total=100, desc="stylising", dynamic_ncols=True, file=sys.stderr,
                   bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]")  # fmt: skip

    def progress(event: ProgressEvent) -> None:
        if bar is None:
            return
        bar.n = event.fraction * 100
        frame = f"frame {event.frame}/{event.frames} " if event.frames > 1 else ""
        bar.set_postfix_str(
            f"{frame}scale {event.scale}/{event.scales} {event.width}x{event.height} loss {event.losses['total']:.3g}",
            refresh=False,
        )
        bar.refresh()

    try:
        options = StyleOptions(
            preset=args.preset, size=args.size, strength=args.strength,
            style_weights=tuple(args.style_weights) if args.style_weights else None, style_scale=args.style_scale,
            preserve_colors=args.preserve_colors, seed=args.seed, init=args.init, optimizer=args.optimizer,
            iterations=args.iterations, precision=args.precision,
        )  # fmt: skip
        if isinstance(content, Clip):
            return stylize_clip(content, styles, model=model, progress=progress, options=options)
        return stylize(content, styles, model=model, progress=progress, options=options)
    finally:
        if bar is not None:
            bar.close()


def _write(result: StyleResult, path: Path) -> None:
    suffix = path.suffix.lower()
    if result.clip is None:
        result.image.save(path, OUTPUT_FORMATS[suffix], quality=95)
    elif suffix == ".png":  # APNG, each frame for as long as the source's
        clip = result.clip
        extra = {} if clip.loop is None else {"loop": clip.loop}
        clip.frames[0].save(path, "PNG", save_all=True, append_images=list(clip.frames[1:]),
                            duration=list(clip.durations), **extra)  # fmt: skip
    else:
        path.write_bytes(encode_clip(result.clip, fmt="gif" if suffix == ".gif" else "webp").data)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        result = _run(args)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        _write(result, args.output)
        if args.loss_plot is not None:
            args.loss_plot.parent.mkdir(parents=True, exist_ok=True)
            args.loss_plot.write_bytes(result.loss_chart_png())
    except NSTError as exc:
        print(f"nst: {exc}", file=sys.stderr)
        return next((code for kind, code in _EXIT_CODES if isinstance(exc, kind)), EXIT_ERROR)
    except KeyboardInterrupt:
        print("nst: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:
        print(f"nst: cannot write {str(args.output)!r}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR
    if not args.quiet:
        print(format_summary(result.summary))
        print(f"wrote {args.output}" + (f" and {args.loss_plot}" if args.loss_plot else ""))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

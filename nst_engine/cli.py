"""``nst``: the command-line front end of the engine (a thin layer: parse, load, stylise, report)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from nst_engine.errors import ImageError, NSTError, OptionsError, WeightsError
from nst_engine.presets import DEFAULT_PRESET, PRESETS
from nst_engine.types import LossSummary, ProgressEvent, StyleResult

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_BAD_INPUT, EXIT_WEIGHTS, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
_EXIT_CODES = ((ImageError, EXIT_BAD_INPUT), (WeightsError, EXIT_WEIGHTS), (OptionsError, EXIT_USAGE))
OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


def build_parser() -> argparse.ArgumentParser:
    presets = "; ".join(f"{p.name}: {p.description}" for p in PRESETS.values())
    parser = argparse.ArgumentParser(
        prog="nst",
        description="Neural style transfer (Gatys et al.): paint CONTENT in the style of STYLE.",
        epilog=f"Presets — {presets}. Weights: NST_WEIGHTS or --weights (default: torchvision's IMAGENET1K_V1).",
    )
    parser.add_argument("content", type=Path, help="content image (photo)")
    parser.add_argument("styles", type=Path, nargs="+", metavar="style", help="style image(s); several are blended")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output file (.png, .jpg or .webp)")
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


def _read_image(path: Path, role: str):
    from nst_engine.images import ImageLimits, decode_image

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot read {role} {str(path)!r}: {exc.strerror or exc}", role=role) from exc
    # The CLI runs on the user's own machine: generous limits, but the same decoding and checks as the bot.
    return decode_image(data, role=role, limits=ImageLimits(max_bytes=200 * 2**20, max_pixels=200_000_000))


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
    lines.extend(f"note: {note}" for note in summary.notes)
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> StyleResult:
    from tqdm import tqdm

    from nst_engine.engine import load_vgg, stylize

    suffix = args.output.suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise OptionsError(f"output must end in .png, .jpg or .webp, not {args.output.name!r}")
    content = _read_image(args.content, "content image")
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
        bar.set_postfix_str(
            f"scale {event.scale}/{event.scales} {event.width}x{event.height} loss {event.losses['total']:.3g}",
            refresh=False,
        )
        bar.refresh()

    try:
        return stylize(
            content, styles, model=model, progress=progress, preset=args.preset, size=args.size,
            strength=args.strength, style_weights=tuple(args.style_weights) if args.style_weights else None,
            style_scale=args.style_scale, preserve_colors=args.preserve_colors, seed=args.seed, init=args.init,
            optimizer=args.optimizer, iterations=args.iterations, precision=args.precision,
        )  # fmt: skip
    finally:
        if bar is not None:
            bar.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        result = _run(args)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        result.image.save(args.output, OUTPUT_FORMATS[args.output.suffix.lower()], quality=95)
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

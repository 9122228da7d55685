"""The contact sheet: one image showing every painting on hand with its name, drawn with Pillow."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from bot.gallery.builtin import BUILTINS, builtin_image

CELL = 200  # thumbnail box, px
LABEL = 30  # height of the name under each thumbnail
GAP = 14
MARGIN = 24
HEADING = 40
COLUMNS = 5
BACKGROUND = (43, 45, 49)  # Discord's dark theme, so the sheet sits well in a message
TEXT = (242, 243, 245)
MUTED = (181, 186, 193)


@dataclass(frozen=True)
class SheetSection:
    title: str
    items: Sequence[tuple[str, Image.Image]]  # (name, picture); pictures are scaled down to fit
    empty_text: str = ""


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Pillow's bundled font: the same on every machine, no system fonts needed.
    return ImageFont.load_default(size=size)


def _fit_text(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
              width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text.rstrip() + "…"


def render_sheet(sections: Sequence[SheetSection], *, columns: int = COLUMNS) -> Image.Image:
    """Sections of named thumbnails in a grid, each under its heading."""
    cols = max(1, min(columns, max((len(s.items) for s in sections), default=1)))
    width = 2 * MARGIN + cols * CELL + (cols - 1) * GAP
    heights = []
    for section in sections:
        rows = max(1, -(-len(section.items) // cols)) if section.items else 0
        body = rows * (CELL + LABEL) + max(0, rows - 1) * GAP if rows else LABEL
        heights.append(HEADING + body)
    height = 2 * MARGIN + sum(heights) + GAP * max(0, len(sections) - 1)
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    title_font, name_font = _font(24), _font(17)
    y = MARGIN
    for section, section_height in zip(sections, heights, strict=True):
        draw.text((MARGIN, y + 4), section.title, fill=TEXT, font=title_font)
        top = y + HEADING
        if not section.items:
            draw.text((MARGIN, top), section.empty_text, fill=MUTED, font=name_font)
        for i, (name, picture) in enumerate(section.items):
            row, col = divmod(i, cols)
            x0 = MARGIN + col * (CELL + GAP)
            y0 = top + row * (CELL + LABEL + GAP)
            thumb = picture.copy()
            thumb.thumbnail((CELL, CELL), Image.Resampling.LANCZOS)
            # Bottom-aligned, so each name sits right under its picture.
            sheet.paste(thumb, (x0 + (CELL - thumb.width) // 2, y0 + CELL - thumb.height))
            label = _fit_text(draw, name, name_font, CELL)
            draw.text((x0 + CELL / 2, y0 + CELL + 7), label, fill=TEXT, font=name_font, anchor="ma")
        y += section_height + GAP
    return sheet


def builtin_section() -> SheetSection:
    return SheetSection("Built-in paintings", [(p.name, builtin_image(p)) for p in BUILTINS])


def gallery_sheet_jpeg(server: SheetSection | None) -> bytes:
    """The sheet for ``/style-gallery list``: the built-ins, then the server's gallery (when in a server)."""
    sections = [builtin_section()]
    if server is not None:
        sections.append(server)
    buf = io.BytesIO()
    render_sheet(sections).save(buf, "JPEG", quality=88)
    return buf.getvalue()


def decode_thumbs(thumbs: Sequence[tuple[str, bytes]]) -> list[tuple[str, Image.Image]]:
    """The stored thumbnails (our own JPEGs) as images."""
    out = []
    for name, data in thumbs:
        with Image.open(io.BytesIO(data), formats=["JPEG"]) as im:
            out.append((name, im.convert("RGB")))
    return out


def main(argv: list[str] | None = None) -> int:
    """Draw the sheet ``/style-gallery list`` shows, for the docs: ``python -m bot.gallery.sheet OUT.jpg
    --server "Art Club" --painting "Our Mascot=cat.png" ...`` (server paintings go through the same checks and
    normalisation as ``/style-admin gallery add``)."""
    import argparse
    from pathlib import Path

    from bot.gallery.store import prepare_upload, validate_name
    from nst_engine.images import ImageLimits

    parser = argparse.ArgumentParser(prog="python -m bot.gallery.sheet", description=main.__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--server", default="Art Club", help="the server's name, for the heading")
    parser.add_argument("--painting", action="append", default=[], metavar="NAME=PATH",
                        help="a server painting (repeat)")
    args = parser.parse_args(argv)
    items: list[tuple[str, Image.Image]] = []
    for spec in args.painting:
        name, sep, path = spec.partition("=")
        if not sep:
            parser.error(f"--painting wants NAME=PATH, not {spec!r}")
        prepared = prepare_upload(Path(path).read_bytes(), limits=ImageLimits(), max_side=1024)
        items += decode_thumbs([(validate_name(name), prepared.thumb)])
    server = SheetSection(f"{args.server}'s gallery", items) if args.painting else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(gallery_sheet_jpeg(server))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

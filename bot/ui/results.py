"""The result: the picture (and the loss chart when it fits) posted within the upload limit, and the preview."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import discord

from bot.requests.failures import DeliveryFailed
from bot.ui import render
from nst_engine.animation import encode_clip
from nst_engine.encoding import encode_image
from nst_engine.errors import EncodeError
from nst_engine.images import human_bytes
from nst_engine.types import ProgressEvent, StyleResult

if TYPE_CHECKING:
    from bot.ui.reporters import Reporter

log = logging.getLogger(__name__)

FileFactory = Callable[[], list[discord.File]]  # fresh File objects for each try (a File is read once)


def as_file(data: bytes, name: str) -> discord.File:
    return discord.File(io.BytesIO(data), filename=name)


def preview_file(event: ProgressEvent) -> discord.File | None:
    """The progress event's preview picture as a JPEG attachment (None when the event has none)."""
    if event.preview is None:
        return None
    buf = io.BytesIO()
    event.preview.save(buf, format="JPEG", quality=70)
    return as_file(buf.getvalue(), "preview.jpg")


async def deliver_result(
    reporter: Reporter, result: StyleResult, *, job_id: str, view: discord.ui.View | None, attempts: int = 4,
    note: str = "",
) -> tuple[discord.Message | None, int]:
    """Post the picture (and the loss chart when it fits) within the upload limit; returns the message and the bytes
    uploaded (picture and chart). An animation goes as animated WebP or GIF, whichever fits better.

    Discord's real limit can be lower than the one it announces: on 413 the chart is dropped and the picture is
    re-encoded at half the size, up to ``attempts`` times. Raises DeliveryFailed when nothing fits. ``note`` goes
    into the summary line (the person's defaults the job used).
    """
    limit = reporter.upload_limit
    chart = await asyncio.to_thread(result.loss_chart_png)
    margin = min(64 * 1024, limit // 10)  # room for the JSON part of the upload
    # The chart is a bonus: leave it out when it would take a big share of a small upload limit.
    with_chart = len(chart) * 4 < limit
    budget = limit - margin - (len(chart) if with_chart else 0)
    shrunk = ""
    for _attempt in range(attempts):
        try:
            if result.clip is not None:
                encoded = await asyncio.to_thread(encode_clip, result.clip, max_bytes=max(1, budget))
            else:
                encoded = await asyncio.to_thread(encode_image, result.image, max_bytes=max(1, budget))
        except EncodeError as exc:
            raise DeliveryFailed(
                f"The result could not be made small enough for this server's upload limit "
                f"({human_bytes(limit)}): {exc}."
            ) from exc
        name = f"styled.{encoded.extension}"
        embed = render.result_embed(result.summary, user=reporter.user, filename=name, chart=with_chart,
                                    note=" · ".join(n for n in (note, shrunk) if n))
        data, chart_now = encoded.data, with_chart

        def files(data: bytes = data, name: str = name, chart_now: bool = chart_now) -> list[discord.File]:
            out = [as_file(data, name)]
            if chart_now:
                out.append(as_file(chart, "losses.png"))
            return out

        try:
            sent = await reporter.send(
                content=f"{reporter.user.mention} here is your picture.", embeds=[embed], files=files, view=view,
            )
        except discord.HTTPException as exc:
            if exc.status != 413:
                raise
            log.info("job %s upload refused (413) at %d bytes; re-encoding smaller", job_id, len(data))
            with_chart = False
            budget = len(data) // 2
            shrunk = "re-encoded smaller to fit this server's upload limit"
            continue
        return sent, len(data) + (len(chart) if chart_now else 0)
    raise DeliveryFailed(
        "Discord refused the result even after shrinking it: this server's upload limit is too small. "
        "Try the `fast` preset or a smaller output size."
    )


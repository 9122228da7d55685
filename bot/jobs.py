"""One style request from acceptance to delivery: validate, download, queue fairly, run, report, deliver."""

from __future__ import annotations

import asyncio
import io
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
from PIL import Image

from bot import render
from bot.delivery import Reporter
from bot.downloads import DownloadError, download
from bot.limits import Limits
from bot.parsing import StyleArgs
from bot.queue import FairQueue, QueueRefused, Ticket
from nst_engine.engine import MIN_SIDE
from nst_engine.errors import (
    Cancelled,
    EncodeError,
    ImageError,
    JobFailedError,
    JobTimeoutError,
    OptionsError,
    OutOfMemoryError,
    PoolClosedError,
    QueueFullError,
    WorkerCrashedError,
)
from nst_engine.images import ImageLimits, decode_image, encode_image, human_bytes
from nst_engine.pool.protocol import JobHandle, StyleBackend, StyleRequest
from nst_engine.presets import DEFAULT_PRESET, PRESETS
from nst_engine.types import ProgressEvent, StyleOptions, StyleResult

if TYPE_CHECKING:
    from bot.app import StyleBot

log = logging.getLogger("bot.jobs")

IMAGE_CONTENT_TYPES = ("image/",)


class Refusal(Exception):
    """A request we will not run; the message is shown to the user as is."""


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
        return cls(a.filename, a.url, a.size, a.content_type, a.width, a.height)


@dataclass
class Inputs:
    """Decoded images, kept for the re-run buttons."""

    content: Image.Image
    styles: list[Image.Image]
    names: list[str]

    def nbytes(self) -> int:
        return sum(im.width * im.height * 3 for im in [self.content, *self.styles])


@dataclass
class ActiveJob:
    job_id: str
    user_id: int
    guild_id: int | None
    ticket: Ticket | None = None
    handle: JobHandle | None = None
    download: asyncio.Task[Inputs] | None = None  # cancelled by the Cancel button: a slow CDN must not delay it
    cancelled_by: str | None = None


@dataclass
class RerunEntry:
    inputs: Inputs
    args: StyleArgs
    guild_id: int | None
    expires: float = field(default=0.0)


class RerunCache:
    """The inputs of recent results, bounded by count, bytes and age."""

    def __init__(self, *, max_entries: int, ttl: float, max_bytes: int = 512 * 1024 * 1024) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, RerunEntry] = OrderedDict()

    def put(self, job_id: str, entry: RerunEntry) -> None:
        if self.max_entries <= 0:
            return
        entry.expires = time.monotonic() + self.ttl
        self._items[job_id] = entry
        self._items.move_to_end(job_id)
        while len(self._items) > self.max_entries or (
            len(self._items) > 1 and sum(e.inputs.nbytes() for e in self._items.values()) > self.max_bytes
        ):
            self._items.popitem(last=False)

    def get(self, job_id: str) -> RerunEntry | None:
        entry = self._items.get(job_id)
        if entry is None:
            return None
        if entry.expires < time.monotonic():
            del self._items[job_id]
            return None
        return entry

    def __len__(self) -> int:
        return len(self._items)


def role_name(index: int, n_styles: int) -> str:
    if index == 0:
        return "content image"
    return "style image" if n_styles == 1 else f"style image {index}"


def check_metadata(files: Sequence[InputFile], limits: Limits, *, max_styles: int) -> None:
    """Refuse (before downloading) what Discord's metadata already shows to be wrong."""
    if len(files) < 2:
        got = "no image" if not files else f"only one file (`{files[0].filename}`)"
        raise Refusal(
            f"I need two images, the content first and the style second, but got {got}. "
            "Attach both to one message (or use `/style content: style:`)."
        )
    if len(files) - 1 > max_styles:
        raise Refusal(
            f"Too many images: {len(files)} attached, but at most {max_styles} style images can be blended "
            f"(so {max_styles + 1} images in all, the first being the content)."
        )
    n_styles = len(files) - 1
    for i, f in enumerate(files):
        role = role_name(i, n_styles)
        ctype = (f.content_type or "").split(";")[0].strip().lower()
        if ctype and not ctype.startswith(IMAGE_CONTENT_TYPES):
            raise Refusal(
                f"`{f.filename}` ({role}) is not an image (Discord says `{ctype}`); send PNG, JPEG, WebP, "
                "GIF or BMP."
            )
        if f.size > limits.max_bytes:
            raise Refusal(
                f"`{f.filename}` ({role}) is {human_bytes(f.size)}; the limit here is "
                f"{limits.max_file_mb:g} MB. Send a smaller file."
            )
        if f.width and f.height and f.width * f.height > limits.max_pixels:
            raise Refusal(
                f"`{f.filename}` ({role}) is {f.width}×{f.height} px ({f.width * f.height / 1e6:.1f} MP); the "
                f"limit here is {limits.max_megapixels:g} MP. Send a smaller image."
            )


def choose_preset(requested: str | None, limits: Limits) -> str:
    if requested is None:
        return DEFAULT_PRESET if DEFAULT_PRESET in limits.allowed_presets else limits.allowed_presets[0]
    if requested not in limits.allowed_presets:
        raise Refusal(
            f"The `{requested}` preset is not allowed here; choose from {', '.join(limits.allowed_presets)}."
        )
    return requested


def build_options(
    args: StyleArgs, limits: Limits, *, overrides: dict[str, Any] | None = None, preview_every: float | None = None
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


def describe_failure(exc: BaseException, *, timeout: float) -> str:
    """A user-facing sentence for an engine or pool error."""
    if isinstance(exc, WorkerCrashedError):
        return (
            "The worker process running your job crashed (it may have run out of memory). Other jobs are not "
            "affected; please send it again, perhaps with smaller images or the `fast` preset."
        )
    if isinstance(exc, JobTimeoutError):
        return (
            f"Your job ran longer than the {timeout / 60:g}-minute limit and was stopped. "
            "Try the `fast` preset or smaller images."
        )
    if isinstance(exc, OutOfMemoryError):
        return "The device ran out of memory for this job, even at a smaller size. Try smaller images."
    if isinstance(exc, QueueFullError):
        return "The bot is too busy right now (the worker queue is full). Please try again in a few minutes."
    if isinstance(exc, PoolClosedError):
        return "The bot is restarting; please send your request again in a minute."
    if isinstance(exc, OptionsError):
        return f"Those options don't work: {exc}."
    if isinstance(exc, ImageError):
        return _sentence(str(exc))
    if isinstance(exc, JobFailedError):
        return f"The style transfer failed: {exc}"
    return "Something went wrong on my side. It has been logged; please try again."


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _file(data: bytes, name: str) -> discord.File:
    return discord.File(io.BytesIO(data), filename=name)


class JobService:
    """Runs requests for the bot. One instance per bot; all state is in memory except the job journal."""

    def __init__(self, bot: StyleBot, backend: StyleBackend, *, engine_overrides: dict[str, Any] | None = None):
        self.bot = bot
        self.settings = bot.settings
        self.backend = backend
        self.engine_overrides = dict(engine_overrides or {})
        self.queue = FairQueue(
            slots=max(1, backend.capacity),
            max_queue=self.settings.max_queue,
            user_max_running=self.settings.user_max_running,
            user_max_waiting=self.settings.user_max_waiting,
        )
        self.reruns = RerunCache(max_entries=self.settings.rerun_cache_size, ttl=self.settings.rerun_cache_ttl)
        self.active: dict[str, ActiveJob] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.closing = False
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self.session = aiohttp.ClientSession()

    async def close(self, timeout: float = 5.0) -> None:
        """Stop: unfinished jobs stay 'accepted'/'running' in the journal, to be reported after restart."""
        self.closing = True
        for job in list(self.active.values()):
            if job.handle is not None:
                job.handle.cancel()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=timeout)
        if self.session is not None:
            await self.session.close()

    # -- entry points ----------------------------------------------------------------------------------

    def spawn(self, coro: Any) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def handle_request(
        self,
        reporter: Reporter,
        *,
        files: Sequence[InputFile] | None = None,
        inputs: Inputs | None = None,
        args: StyleArgs,
    ) -> None:
        """Everything for one request; never raises (errors become messages)."""
        job_id = uuid.uuid4().hex[:10]
        user = reporter.user
        guild = reporter.guild
        t0 = time.monotonic()
        timings: dict[str, float] = {}
        outcome = "error"
        preset = args.preset or "?"
        job = ActiveJob(job_id=job_id, user_id=user.id, guild_id=guild.id if guild else None)
        recorded = False
        try:
            limits = await self.bot.limits_for(guild)
            downloading = [j for j in self.active.values() if j.ticket is None]
            pending = sum(1 for j in downloading if j.user_id == user.id)
            self.queue.check_admission(user.id, pending=pending, pending_total=len(downloading))
            options = build_options(
                args, limits, overrides=self.engine_overrides,
                preview_every=self.settings.preview_interval or None,
            )
            preset = options.preset
            if inputs is None:
                if files is None:
                    raise Refusal("No images were given.")
                check_metadata(files, limits, max_styles=self.settings.max_styles)
                self.active[job_id] = job
                await reporter.status(f"Downloading {len(files)} images…", view=self.cancel_view(job_id))
                inputs = await self._download(job, files, limits)
                timings["download"] = time.monotonic() - t0
            else:
                self.active[job_id] = job
            if job.cancelled_by:
                raise Cancelled(f"cancelled by {job.cancelled_by}")

            request = StyleRequest(
                content=inputs.content, styles=list(inputs.styles), options=options, job_id=job_id,
                owner=f"{guild.id if guild else 'dm'}/{user.id}", timeout=self.settings.nst_job_timeout,
            )
            job.ticket = self.queue.enqueue(user.id, job_id)
            await self.bot.db.record_job(
                job_id, user_id=user.id, guild_id=guild.id if guild else None, channel_id=reporter.channel.id
            )
            recorded = True
            title = self._title(options, inputs)
            await self._wait_turn(job, reporter, title)
            t_start = time.monotonic()
            timings["queued"] = t_start - t0
            await self.bot.db.set_job_state(job_id, "running")
            job.handle = self.backend.submit(request)
            if job.cancelled_by:
                job.handle.cancel()
            result = await self._follow(job, reporter, title)
            timings["ran"] = time.monotonic() - t_start
            await self._deliver(job_id, reporter, result, inputs, args=replace(args, preset=preset))
            outcome = "done"
        except asyncio.CancelledError:
            outcome = "interrupted"
            raise
        except Refusal as exc:
            outcome = "refused"
            await self._fail(reporter, str(exc))
        except QueueRefused as exc:
            outcome = "refused"
            await self._fail(reporter, str(exc), title="Queue")
        except DownloadError as exc:
            outcome = "download-failed"
            await self._fail(reporter, str(exc))
        except Cancelled:
            outcome = "cancelled"
            who = job.cancelled_by or "you"
            await self._safe(reporter.status(f"Cancelled by {who}.", embed=None, view=None))
        except Exception as exc:
            if self.closing and isinstance(exc, (PoolClosedError, WorkerCrashedError)):
                outcome = "interrupted"  # shutting down: the journal keeps it open for the restart notice
                return
            known = isinstance(exc, (ImageError, OptionsError, EncodeError)) or type(exc).__module__.startswith(
                "nst_engine"
            )
            outcome = type(exc).__name__
            if not known:
                log.exception("job %s failed unexpectedly", job_id)
            await self._fail(reporter, describe_failure(exc, timeout=self.settings.nst_job_timeout))
        finally:
            self.active.pop(job_id, None)
            if job.ticket is not None:
                self.queue.release(job.ticket)
            if recorded and outcome != "interrupted" and not self.closing:
                try:
                    await self.bot.db.set_job_state(job_id, "done" if outcome == "done" else "failed")
                except Exception:
                    log.exception("could not update job %s in the journal", job_id)
            log.info(
                "job %s user=%s guild=%s preset=%s outcome=%s download=%.1fs queued=%.1fs ran=%.1fs total=%.1fs",
                job_id, user.id, guild.id if guild else "dm", preset, outcome, timings.get("download", 0.0),
                timings.get("queued", 0.0), timings.get("ran", 0.0), time.monotonic() - t0,
            )

    def cancel(self, job_id: str, *, by: discord.abc.User, moderator: bool) -> str:
        """Cancel a job for ``by``; returns a sentence for them."""
        job = self.active.get(job_id)
        if job is None:
            return "That job is no longer running."
        if job.user_id != by.id and not moderator:
            return "Only the person who started this job (or a moderator with Manage Messages) can cancel it."
        if job.cancelled_by:
            return "This job is already being cancelled."
        job.cancelled_by = by.display_name if job.user_id != by.id else "you"
        if job.ticket is not None and self.queue.cancel(job.ticket):
            return "Cancelled."
        if job.download is not None and job.download.cancel():
            return "Cancelled."
        if job.handle is not None:
            job.handle.cancel()
        return "Cancelling…"

    def cancel_view(self, job_id: str) -> discord.ui.View:
        from bot.views import CancelButton

        view = discord.ui.View(timeout=None)
        view.add_item(CancelButton(job_id))
        return view

    # -- steps -----------------------------------------------------------------------------------------

    async def _download(self, job: ActiveJob, files: Sequence[InputFile], limits: Limits) -> Inputs:
        """``_fetch`` as a task the Cancel button can stop at once."""
        job.download = asyncio.ensure_future(self._fetch(files, limits))
        try:
            return await job.download
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if job.download.cancelled() and job.cancelled_by and not (task and task.cancelling()):
                raise Cancelled(f"cancelled by {job.cancelled_by}") from None
            job.download.cancel()
            raise

    async def _fetch(self, files: Sequence[InputFile], limits: Limits) -> Inputs:
        assert self.session is not None
        image_limits = ImageLimits(max_bytes=limits.max_bytes, max_pixels=limits.max_pixels)
        tasks = [
            asyncio.create_task(
                download(self.session, f.url, filename=f.filename, max_bytes=limits.max_bytes,
                         timeout=self.settings.download_timeout)
            )
            for f in files
        ]
        try:
            blobs = await asyncio.gather(*tasks)
        finally:
            # One failed (or cancelled) download decides the request: stop the others now, not at their timeout.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        n_styles = len(files) - 1
        images: list[Image.Image] = []
        for i, (f, data) in enumerate(zip(files, blobs, strict=True)):
            try:
                images.append(await asyncio.to_thread(decode_image, data, role=role_name(i, n_styles),
                                                      limits=image_limits))
            except ImageError as exc:
                raise Refusal(f"{_sentence(str(exc))} (file `{f.filename}`)") from exc
        return Inputs(content=images[0], styles=images[1:], names=[f.filename for f in files])

    def _title(self, options: StyleOptions, inputs: Inputs) -> str:
        blend = f" + {len(inputs.styles) - 1} more" if len(inputs.styles) > 1 else ""
        return (
            f"**Style transfer** · `{inputs.names[0]}` in the style of `{inputs.names[1]}`{blend} · "
            f"preset {options.preset}, strength {options.strength:g}"
            + (", colours preserved" if options.preserve_colors else "")
        )

    async def _wait_turn(self, job: ActiveJob, reporter: Reporter, title: str) -> None:
        assert job.ticket is not None
        turn = asyncio.ensure_future(self.queue.wait_turn(job.ticket))
        shown = -1
        try:
            while not turn.done():
                pos = self.queue.position(job.ticket)
                if pos and pos != shown:
                    shown = pos
                    await self._safe(reporter.status(render.queued_text(pos, title=title),
                                                     view=self.cancel_view(job.job_id)))
                changed = asyncio.ensure_future(self.queue.wait_changed())
                await asyncio.wait([turn, changed], return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
            if not await turn:
                raise Cancelled("cancelled while waiting")
        finally:
            turn.cancel()

    async def _follow(self, job: ActiveJob, reporter: Reporter, title: str) -> StyleResult:
        assert job.handle is not None
        await self._safe(reporter.status(f"{title}\nStarting…", view=self.cancel_view(job.job_id)))
        interval = self.settings.progress_edit_interval
        last_edit = time.monotonic()
        last_preview = 0.0
        pending: asyncio.Task[None] | None = None
        async for event in job.handle.events():
            now = time.monotonic()
            if now - last_edit < interval or (pending is not None and not pending.done()):
                continue
            last_edit = now
            files: list[discord.File] = []
            if event.preview is not None and now - last_preview >= self.settings.preview_interval > 0:
                last_preview = now
                files = [self._preview_file(event)]
            pending = asyncio.create_task(self._safe(reporter.status(
                render.progress_text(event, title=title), view=self.cancel_view(job.job_id), files=files)))
        result = await job.handle.result()
        if pending is not None and not pending.done():
            await asyncio.wait([pending], timeout=5)
        return result

    @staticmethod
    def _preview_file(event: ProgressEvent) -> discord.File:
        buf = io.BytesIO()
        assert event.preview is not None
        event.preview.save(buf, format="JPEG", quality=70)
        return _file(buf.getvalue(), "preview.jpg")

    async def _deliver(
        self, job_id: str, reporter: Reporter, result: StyleResult, inputs: Inputs, *, args: StyleArgs
    ) -> None:
        from bot.views import result_view

        guild = reporter.guild
        limit = reporter.upload_limit
        chart = await asyncio.to_thread(result.loss_chart_png)
        margin = min(64 * 1024, limit // 10)  # room for the JSON part of the upload
        # The chart is a bonus: leave it out when it would take a big share of a small upload limit.
        with_chart = len(chart) * 4 < limit
        budget = limit - margin - (len(chart) if with_chart else 0)
        note = ""
        self.reruns.put(job_id, RerunEntry(inputs=self._shrink(inputs), args=args,
                                           guild_id=guild.id if guild else None))
        for _attempt in range(4):
            try:
                encoded = await asyncio.to_thread(encode_image, result.image, max_bytes=max(1, budget))
            except EncodeError as exc:
                raise Refusal(
                    f"The result could not be made small enough for this server's upload limit "
                    f"({human_bytes(limit)}): {exc}."
                ) from exc
            name = f"styled.{encoded.extension}"
            embed = render.result_embed(result.summary, user=reporter.user, filename=name, chart=with_chart,
                                        note=note)
            data, chart_now = encoded.data, with_chart

            def files(data: bytes = data, name: str = name, chart_now: bool = chart_now) -> list[discord.File]:
                out = [_file(data, name)]
                if chart_now:
                    out.append(_file(chart, "losses.png"))
                return out

            try:
                sent = await reporter.send(
                    content=f"{reporter.user.mention} here is your picture.", embeds=[embed], files=files,
                    view=result_view(job_id, preserved_colors=args.preserve_colors),
                )
            except discord.HTTPException as exc:
                if exc.status != 413:
                    raise
                # Discord's real limit was lower than we thought: drop the chart, halve the picture.
                log.info("job %s upload refused (413) at %d bytes; re-encoding smaller", job_id, len(data))
                with_chart = False
                budget = len(data) // 2
                note = "re-encoded smaller to fit this server's upload limit"
                continue
            await self._safe(reporter.status(self._done_text(reporter, sent), embed=None, view=None))
            return
        raise Refusal(
            "Discord refused the result even after shrinking it: this server's upload limit is too small. "
            "Try the `fast` preset or a smaller output size."
        )

    @staticmethod
    def _done_text(reporter: Reporter, sent: discord.Message | None) -> str:
        moved = sent is not None and reporter.dm_reason and isinstance(sent.channel, discord.DMChannel)
        if moved and reporter.guild is not None and not isinstance(reporter.channel, discord.DMChannel):
            # The status stayed in the channel but the upload was refused there.
            return f"Done, but {reporter.dm_reason}, so the result is in your direct messages."
        return "Done: the result is below."

    def _shrink(self, inputs: Inputs) -> Inputs:
        """Copies no larger than needed for a re-run (the output is never above the max output side)."""
        side = self.settings.max_output_side

        def small(im: Image.Image) -> Image.Image:
            # Long side down to the output limit, but the short side never below twice the engine's minimum.
            scale = max(side / max(im.size), 2 * MIN_SIDE / min(im.size))
            if scale >= 1:
                return im
            return im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)

        return Inputs(content=small(inputs.content), styles=[small(s) for s in inputs.styles], names=inputs.names)

    async def _fail(self, reporter: Reporter, message: str, *, title: str = "Can't do that") -> None:
        embed = render.error_embed(message, title=title)
        try:
            await reporter.status(None, embed=embed, view=None)
            if getattr(reporter, "expired", False):
                await reporter.send(content=reporter.user.mention, embeds=[embed], files=list, view=None)
        except discord.HTTPException:
            log.exception("could not tell user %s: %s", reporter.user.id, message)

    async def _safe(self, coro: Any) -> None:
        """Status edits are best effort: a failed edit must not fail the job."""
        try:
            await coro
        except discord.HTTPException as exc:
            log.warning("status update failed: %s", exc)

"""Download attachments with a hard byte cap and a time limit (Content-Length is never trusted), and decode them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import aiohttp
from PIL import Image

from bot.requests.policy import ImageInput, InputFile, Inputs, Refusal, Source, image_refusal, role_name
from bot.storage.limits import Limits
from nst_engine.animation import Clip, decode_clip
from nst_engine.errors import ImageError
from nst_engine.images import ImageLimits, decode_image, human_bytes, probe_image

CHUNK = 64 * 1024


class DownloadError(Exception):
    """A download failed; the message names the file and the cause, for the user."""

    def __init__(self, message: str, *, filename: str) -> None:
        super().__init__(message)
        self.filename = filename


class DownloadTooLarge(DownloadError):
    pass


class DownloadTimeout(DownloadError):
    pass


async def download(
    session: aiohttp.ClientSession, url: str, *, filename: str, max_bytes: int, timeout: float
) -> bytes:
    """Fetch ``url`` into memory, stopping as soon as more than ``max_bytes`` arrive."""
    too_large = DownloadTooLarge(
        f"`{filename}` is larger than the {human_bytes(max_bytes)} limit.", filename=filename
    )
    try:
        async with asyncio.timeout(timeout):
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                if resp.status != 200:
                    raise DownloadError(
                        f"Could not download `{filename}` (the server answered HTTP {resp.status}); "
                        "try uploading it again.",
                        filename=filename,
                    )
                # A declared length above the cap lets us stop early; a smaller one proves nothing.
                if resp.content_length is not None and resp.content_length > max_bytes:
                    raise too_large
                buf = bytearray()
                async for chunk in resp.content.iter_chunked(CHUNK):
                    buf += chunk
                    if len(buf) > max_bytes:
                        raise too_large
                return bytes(buf)
    except TimeoutError as exc:
        raise DownloadTimeout(
            f"Downloading `{filename}` took longer than {timeout:g} s; try again or use a smaller file.",
            filename=filename,
        ) from exc
    except aiohttp.ClientPayloadError as exc:
        raise DownloadError(
            f"The download of `{filename}` was cut off before the end; try uploading it again.",
            filename=filename,
        ) from exc
    except aiohttp.ClientError as exc:
        raise DownloadError(
            f"Could not download `{filename}` ({type(exc).__name__}); try uploading it again.",
            filename=filename,
        ) from exc


class Downloader:
    """Turns a request's sources into decoded images: attachments are downloaded in parallel, within the limits."""

    def __init__(self, *, timeout: float) -> None:
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self.bytes_read = 0  # attachment bytes downloaded so far (metrics read it)

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def fetch(self, sources: Sequence[Source], limits: Limits, *, shorten: bool = False) -> Inputs:
        """Download and decode; raises DownloadError, or Refusal for a file that is not a usable image.

        An animated content image is decoded whole (every frame within the limits; with ``shorten``, one over the
        frame limit is cut to its first frames); of an animated style image only the first frame is used.
        """
        files = [s for s in sources if isinstance(s, InputFile)]
        session = self._session
        if session is None and files:
            raise RuntimeError("Downloader.start() was not awaited")
        tasks = [
            asyncio.create_task(
                download(session, f.url, filename=f.filename, max_bytes=limits.max_bytes, timeout=self.timeout)
            )
            for f in files
            if session is not None
        ]
        try:
            blobs = await asyncio.gather(*tasks)
        finally:
            # One failed (or cancelled) download decides the request: stop the others now, not at their timeout.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self.bytes_read += sum(len(blob) for blob in blobs)
        data = dict(zip(map(id, files), blobs, strict=True))
        image_limits = ImageLimits(max_bytes=limits.max_bytes, max_pixels=limits.max_pixels)
        n_styles = len(sources) - 1
        images: list[Image.Image] = []
        clip: Clip | None = None
        notes: list[str] = []
        for i, source in enumerate(sources):
            if isinstance(source, ImageInput):
                images.append(source.image)
                clip = source.clip if i == 0 else clip
                continue
            role = role_name(i, n_styles)
            try:
                blob = data[id(source)]
                animated = (await asyncio.to_thread(probe_image, blob, role=role, limits=image_limits)).animated
                if animated and i == 0:
                    clip = await asyncio.to_thread(decode_clip, blob, role=role, limits=image_limits,
                                                   max_frames=limits.max_frames, shorten=shorten)  # fmt: skip
                    images.append(clip.frames[0])
                    continue
                images.append(await asyncio.to_thread(decode_image, blob, role=role, limits=image_limits))
                if animated:
                    notes.append(f"the {role} is animated: its first frame was used")
            except ImageError as exc:
                raise Refusal(image_refusal(exc, filename=source.filename), reason="bad-image") from exc
        names = [s.filename if isinstance(s, InputFile) else s.name for s in sources]
        if clip is not None and len(clip) == 1:
            clip = None  # a one-frame animation is a still
        return Inputs(content=images[0], styles=images[1:], names=names, clip=clip, notes=notes)

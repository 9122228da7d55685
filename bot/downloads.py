"""Download attachments with a hard byte cap and a time limit (Content-Length is never trusted)."""

from __future__ import annotations

import asyncio

import aiohttp

from nst_engine.images import human_bytes

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

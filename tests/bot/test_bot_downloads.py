"""The download cap against a real aiohttp server on loopback."""

import asyncio
import io

import aiohttp
import pytest
from aiohttp import web
from PIL import Image

from bot.downloads import Downloader, DownloadError, DownloadTimeout, DownloadTooLarge, download
from bot.limits import Limits
from bot.policy import ImageInput, InputFile, Refusal

BODY = bytes(range(256)) * 400  # 102,400 bytes


@pytest.fixture
async def server():
    async def ok(request):
        return web.Response(body=BODY, content_type="image/png")

    async def lying(request):
        # No Content-Length at all: only counting the bytes can stop it.
        resp = web.StreamResponse()
        await resp.prepare(request)
        for _ in range(100):
            await resp.write(b"x" * 65536)
        return resp

    async def slow(request):
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b"x" * 10)
        await asyncio.sleep(1.0)
        return resp

    async def missing(request):
        return web.Response(status=404)

    async def picture(request):
        buf = io.BytesIO()
        Image.new("RGB", (80, 60), "teal").save(buf, "PNG")
        return web.Response(body=buf.getvalue(), content_type="image/png")

    app = web.Application()
    app.router.add_get("/picture.png", picture)
    app.router.add_get("/ok", ok)
    app.router.add_get("/stream", lying)
    app.router.add_get("/slow", slow)
    app.router.add_get("/missing", missing)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    async with aiohttp.ClientSession() as session:
        yield session, f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_downloads_within_the_cap(server):
    session, base = server
    data = await download(session, f"{base}/ok", filename="a.png", max_bytes=len(BODY), timeout=5)
    assert data == BODY


async def test_declared_length_over_cap_is_refused(server):
    session, base = server
    with pytest.raises(DownloadTooLarge, match=r"`a.png` is larger than the 100 KB limit"):
        await download(session, f"{base}/ok", filename="a.png", max_bytes=len(BODY) - 1, timeout=5)


async def test_stream_without_length_is_cut_at_the_cap(server):
    session, base = server
    with pytest.raises(DownloadTooLarge):
        await download(session, f"{base}/stream", filename="b.png", max_bytes=200_000, timeout=5)


async def test_slow_download_times_out(server):
    session, base = server
    with pytest.raises(DownloadTimeout, match=r"`c.png` took longer than 0.3 s"):
        await download(session, f"{base}/slow", filename="c.png", max_bytes=1000, timeout=0.3)


async def test_http_error_names_the_file(server):
    session, base = server
    with pytest.raises(DownloadError, match=r"`d.png`.*HTTP 404"):
        await download(session, f"{base}/missing", filename="d.png", max_bytes=1000, timeout=5)


async def test_connection_refused_is_a_download_error(server):
    session, _ = server
    with pytest.raises(DownloadError, match=r"Could not download `e\.png`"):
        await download(session, "http://127.0.0.1:1/x", filename="e.png", max_bytes=1000, timeout=5)


LIMITS = Limits(max_file_mb=1, max_megapixels=1, max_output_side=512, allowed_presets=("fast",))


async def test_fetch_downloads_attachments_and_passes_decoded_pictures_through(server):
    _, base = server
    painting = ImageInput("gallery: Starry Night", Image.new("RGB", (70, 50), "navy"))
    downloader = Downloader(timeout=5)
    await downloader.start()
    try:
        inputs = await downloader.fetch(
            [InputFile("photo.png", f"{base}/picture.png", 500, "image/png"), painting], LIMITS
        )
        assert inputs.names == ["photo.png", "gallery: Starry Night"]
        assert inputs.content.size == (80, 60) and inputs.styles == [painting.image]
        with pytest.raises(Refusal, match=r"^Content image is not a supported image .*\(file `ok.bin`\)\.$"):
            await downloader.fetch([InputFile("ok.bin", f"{base}/ok", 500), painting], LIMITS)
    finally:
        await downloader.close()


async def test_fetch_without_attachments_needs_no_session():
    pictures = [ImageInput(name, Image.new("RGB", (40, 40))) for name in ("a", "b")]
    inputs = await Downloader(timeout=1).fetch(pictures, LIMITS)  # never started: nothing to download
    assert inputs.names == ["a", "b"]

"""The download cap against a real aiohttp server on loopback, counting the body bytes the server got rid of."""

import asyncio
import io
import socket

import aiohttp
import pytest
from aiohttp import web
from PIL import Image

from bot.requests.downloads import Downloader, DownloadError, DownloadTimeout, DownloadTooLarge, download
from bot.requests.policy import ImageInput, InputFile, Refusal
from bot.storage.limits import Limits

BODY = bytes(range(256)) * 400  # 102,400 bytes
HUGE = 20 * 1024 * 1024  # what the counting routes would send to a client that never stops
MIB = 1024 * 1024


@pytest.fixture
async def server():
    sent: dict[str, int] = {}

    async def counted(request, *, declare: bool):
        """HUGE bytes in 64 KiB chunks, counting what the client accepted; a small send buffer so the kernel
        does not swallow megabytes nobody reads. ``declare``: a Content-Length, and a pause after the headers in
        which a client that refuses on the length alone hangs up before the first body byte (the pause ends
        as soon as it does; a client waiting for the body gets it after 5 s)."""
        key = request.path
        sent[key] = 0
        headers = {"Content-Length": str(HUGE)} if declare else {}
        resp = web.StreamResponse(headers=headers)
        request.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
        await resp.prepare(request)
        try:
            if declare:
                for _ in range(500):
                    if request.transport is None or request.transport.is_closing():
                        return resp
                    await asyncio.sleep(0.01)
            chunk = b"x" * 65536
            while sent[key] < HUGE:
                await resp.write(chunk)
                sent[key] += len(chunk)
        except ConnectionError:
            pass  # the client stopped reading: what the test measures
        return resp

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
    async def counted_stream(request):
        return await counted(request, declare=False)

    async def counted_declared(request):
        return await counted(request, declare=True)

    app.router.add_get("/counted-stream", counted_stream)
    app.router.add_get("/counted-declared", counted_declared)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    async with aiohttp.ClientSession() as session:
        yield session, f"http://127.0.0.1:{port}", sent
    await runner.cleanup()


async def test_downloads_within_the_cap(server):
    session, base, _ = server
    data = await download(session, f"{base}/ok", filename="a.png", max_bytes=len(BODY), timeout=5)
    assert data == BODY


async def test_declared_length_over_cap_is_refused(server):
    session, base, _ = server
    with pytest.raises(DownloadTooLarge, match=r"`a.png` is larger than the 100 KB limit"):
        await download(session, f"{base}/ok", filename="a.png", max_bytes=len(BODY) - 1, timeout=5)


async def wait_until_settled(sent: dict[str, int], key: str) -> int:
    """The count once the server stopped (the client hung up, or everything was sent)."""
    last = -1
    for _ in range(50):
        await asyncio.sleep(0.1)
        if key in sent and sent[key] == last:
            return last
        last = sent.get(key, -1)
    return last


async def test_declared_length_over_cap_stops_before_reading_the_body(server):
    session, base, sent = server
    with pytest.raises(DownloadTooLarge, match=r"`big.png` is larger than the 1 MB limit"):
        await download(session, f"{base}/counted-declared", filename="big.png", max_bytes=MIB, timeout=5)
    assert await wait_until_settled(sent, "/counted-declared") == 0  # not one body byte was taken


async def test_stream_without_length_is_cut_at_the_cap(server):
    session, base, sent = server
    with pytest.raises(DownloadTooLarge):
        await download(session, f"{base}/stream", filename="b.png", max_bytes=200_000, timeout=5)
    with pytest.raises(DownloadTooLarge, match=r"`c.png` is larger than the 1 MB limit"):
        await download(session, f"{base}/counted-stream", filename="c.png", max_bytes=MIB, timeout=5)
    # The cap stops the read early: the server got rid of little more than the cap (buffers on the way), not the
    # 20 MB a read-everything-then-check download takes.
    taken = await wait_until_settled(sent, "/counted-stream")
    assert MIB < taken < 4 * MIB, taken


async def test_slow_download_times_out(server):
    session, base, _ = server
    with pytest.raises(DownloadTimeout, match=r"`c.png` took longer than 0.3 s"):
        await download(session, f"{base}/slow", filename="c.png", max_bytes=1000, timeout=0.3)


async def test_http_error_names_the_file(server):
    session, base, _ = server
    with pytest.raises(DownloadError, match=r"`d.png`.*HTTP 404"):
        await download(session, f"{base}/missing", filename="d.png", max_bytes=1000, timeout=5)


async def test_connection_refused_is_a_download_error(server):
    session, _, _ = server
    with pytest.raises(DownloadError, match=r"Could not download `e\.png`"):
        await download(session, "http://127.0.0.1:1/x", filename="e.png", max_bytes=1000, timeout=5)


LIMITS = Limits(max_file_mb=1, max_megapixels=1, max_output_side=512, allowed_presets=("fast",))


async def test_fetch_downloads_attachments_and_passes_decoded_pictures_through(server):
    _, base, _ = server
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

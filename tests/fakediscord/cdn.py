"""CDN: serves attachment bytes, with per-attachment faults (404, slow, truncated, wrong type, huge)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import TYPE_CHECKING

from aiohttp import web

from .state import RecordedRequest

if TYPE_CHECKING:
    from .server import FakeDiscord

log = logging.getLogger("fakediscord.cdn")
CHUNK = 64 * 1024


async def handle(fake: FakeDiscord, request: web.Request) -> web.StreamResponse:
    rec = RecordedRequest(fake.now(), request.method, request.path, "/cdn/attachments", dict(request.query))
    fake.requests.append(rec)
    fake._notify()
    fake.trip(rec)
    att = fake.attachments.get(int(request.match_info["attachment_id"]))
    if att is None or att.filename != request.match_info["filename"] or str(att.channel_id) != request.match_info[
            "channel_id"]:
        rec.status = 404
        return web.Response(status=404, text="Not Found")
    fault = att.fault
    kind = fault.kind if fault else None
    if kind == "404":
        rec.status = 404
        return web.Response(status=404, text="Not Found")
    if fault is not None and fault.delay:
        await asyncio.sleep(fault.delay)
    if fault is not None and fault.hold is not None:
        await fault.hold.wait()

    ctype = att.content_type or "application/octet-stream"
    body = att.data
    length = len(body)
    if fault is not None and kind == "content_type":
        ctype = fault.content_type or "text/html"
    if fault is not None and kind == "huge":
        length = fault.size if fault.size is not None else 1024**3
    declared = fault.lie_length if fault is not None and fault.lie_length is not None else length
    send = length
    if fault is not None and kind == "truncated":
        send = fault.send_bytes if fault.send_bytes is not None else len(body) // 2

    headers = {"Content-Type": ctype}
    if declared >= 0:  # lie_length=-1: no Content-Length at all (chunked), the downloader must cap itself
        headers["Content-Length"] = str(declared)
    resp = web.StreamResponse(status=200, headers=headers)
    rec.status = 200
    if kind == "huge":
        # A small send buffer keeps ``body_sent`` close to what the client really read (the kernel would
        # otherwise accept megabytes on loopback that nobody reads).
        sock = request.transport.get_extra_info("socket") if request.transport is not None else None
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
    sent = 0
    try:
        await resp.prepare(request)
        if fault is not None and fault.body_delay:
            # The headers are out (a StreamResponse sends them at prepare()); give the client up to body_delay
            # to hang up on them, as one that checks Content-Length against its cap does.
            deadline = time.monotonic() + fault.body_delay
            while time.monotonic() < deadline:
                if request.transport is None or request.transport.is_closing():
                    raise ConnectionResetError("the client closed the connection before the body")
                await asyncio.sleep(0.01)
        while sent < send:
            n = min(CHUNK, send - sent)
            if kind == "huge":
                chunk = (body * (n // max(1, len(body)) + 1))[:n] if body else b"\0" * n
            else:
                chunk = body[sent:sent + n]
            await resp.write(chunk)
            sent += n
            rec.body_sent = sent
            if fault is not None and fault.chunk_delay:
                await asyncio.sleep(fault.chunk_delay)
    except (ConnectionError, asyncio.CancelledError) as exc:
        # the downloader gave up (size cap, timeout): that is the behaviour under test, not an error
        log.info("cdn: client stopped reading %s after %d bytes (%r)", att.filename, sent, exc)
        if isinstance(exc, asyncio.CancelledError):
            raise
        return resp
    if 0 <= declared and sent < declared:
        # Content-Length promised more: cut the connection so the client sees a short body
        if request.transport is not None:
            request.transport.close()
        return resp
    try:
        await resp.write_eof()
    except ConnectionError:  # the client hung up after the last byte
        pass
    return resp

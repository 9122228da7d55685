"""Packing a request for its worker, shared by both backends (no torch here): the images shrunk to no more than
about twice the size the job will use, then packed with the backend's codec."""

from __future__ import annotations

from nst_engine.options import output_size, shrink
from nst_engine.pool.protocol import StyleRequest
from nst_engine.pool.wire import ImageCodec, PackedClip, RunMessage


def pack_request(request: StyleRequest, seq: int, codec: ImageCodec) -> RunMessage:
    """The message that runs ``request`` as job ``seq`` on a worker."""
    size = output_size(request.options)
    style_side = max(1, round(size * request.options.style_scale))
    clip = request.clip
    if clip is not None:
        clip = clip.with_frames([shrink(f, size) for f in clip.frames])
    return RunMessage(
        seq,
        request.job_id,
        codec(shrink(request.content, size)),
        tuple(codec(shrink(s, style_side)) for s in request.styles),
        request.options,
        PackedClip.pack(clip, codec) if clip is not None else None,
    )

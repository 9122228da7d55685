"""The re-run cache: the inputs of recent results, so the re-run buttons need no new upload."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field

from bot.requests.arguments import StyleArgs
from bot.requests.policy import Inputs
from nst_engine.options import shrink


@dataclass
class RerunInputs:
    """What a result's re-run buttons start from: its decoded inputs and the arguments it ran with (not a job)."""

    inputs: Inputs
    args: StyleArgs
    guild_id: int | None
    expires: float = field(default=0.0)


def shrink_inputs(inputs: Inputs, side: int) -> Inputs:
    """Copies no larger than a re-run can use (its output is never above ``side``), by the pool's own rule, so a
    re-run sees the same pixels as the first run did."""
    clip = inputs.clip.with_frames([shrink(f, side) for f in inputs.clip.frames]) if inputs.clip else None
    return Inputs(content=shrink(inputs.content, side), styles=[shrink(s, side) for s in inputs.styles],
                  names=inputs.names, clip=clip, notes=inputs.notes)


class RerunCache:
    """The inputs of recent results, bounded by count, bytes and age."""

    def __init__(self, *, max_entries: int, ttl: float, max_bytes: int = 512 * 1024 * 1024) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, RerunInputs] = OrderedDict()

    def put(self, job_id: str, entry: RerunInputs) -> None:
        if self.max_entries <= 0:
            return
        entry.expires = time.monotonic() + self.ttl
        self._items[job_id] = entry
        self._items.move_to_end(job_id)
        while len(self._items) > self.max_entries or (
            len(self._items) > 1 and sum(e.inputs.nbytes() for e in self._items.values()) > self.max_bytes
        ):
            self._items.popitem(last=False)

    def get(self, job_id: str) -> RerunInputs | None:
        entry = self._items.get(job_id)
        if entry is None:
            return None
        if entry.expires < time.monotonic():
            del self._items[job_id]
            return None
        return entry

    def __len__(self) -> int:
        return len(self._items)

"""What the job service tells the outside world about each request: a typed stream of events.

Observers (the metrics, for one) subscribe with ``JobService.observers.append(fn)``. They are
called synchronously on the event loop, so they must be quick and must not block; an observer that raises is logged
and skipped, never failing the job.

Lifecycle of one request: ``accepted`` or ``refused`` → (``queued`` …, only while it waits for its turn, once per
position) → ``started`` → (``progress`` …, one per engine event) → one of ``done``, ``cancelled``, ``failed``,
``interrupted`` (the bot shut down under it). ``refused`` can also end an accepted request (say, a file that turns
out not to be an image). Every final event carries ``timings["total"]``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from nst_engine.types import LossSummary, ProgressEvent

EventKind = Literal["accepted", "refused", "queued", "started", "progress", "done", "cancelled", "failed",
                    "interrupted"]
FINAL_KINDS: frozenset[EventKind] = frozenset({"refused", "done", "cancelled", "failed", "interrupted"})


@dataclass(frozen=True)
class JobEvent:
    kind: EventKind
    job_id: str
    user_id: int
    guild_id: int | None
    preset: str | None  # None until the request's options are known
    # Seconds spent so far: "download", "queued", "ran" as each ends, and "total" on final events.
    timings: Mapping[str, float] = field(default_factory=dict)
    reason: str | None = None  # refused / failed / cancelled / interrupted: the failure table's outcome
    position: int | None = None  # queued: 1 = next to start
    progress: ProgressEvent | None = None  # progress: the engine's event
    origin: str = "other"  # how the request came: "prefix", "slash" or "button" (Reporter.origin)
    summary: LossSummary | None = None  # done: the engine's summary (device, iterations, seconds)
    result_bytes: int = 0  # done: bytes uploaded (picture and chart)

    @property
    def final(self) -> bool:
        return self.kind in FINAL_KINDS


JobObserver = Callable[[JobEvent], None]

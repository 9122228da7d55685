"""Shared pieces of the pool tests (no tests here): tiny images and requests the real engine runs in a blink."""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path
from typing import Any

from PIL import Image

from nst_engine.pool import StyleRequest
from nst_engine.types import StyleOptions

LONG_JOB = 5000  # iterations: minutes of work, for jobs a test cancels or times out
SHARED_ENV = {  # every NST_* setting both backends read, none of them its default
    "NST_WORKERS": "3",
    "NST_DEVICE": "cpu",
    "NST_WEIGHTS": "random",
    "NST_JOB_TIMEOUT": "12.5",
    "NST_MAX_QUEUE": "7",
    "NST_PROGRESS_INTERVAL": "0.25",
    "NST_START_TIMEOUT": "30",
    "NST_STOP_GRACE": "1",
}


def noise_image(width: int, height: int, seed: int) -> Image.Image:
    rng = random.Random(seed)
    return Image.frombytes("RGB", (width, height), bytes(rng.randrange(256) for _ in range(width * height * 3)))


CONTENT = noise_image(48, 40, 1)
STYLE = noise_image(40, 40, 2)


def request(
    iterations: int = 4, *, size: int = 48, timeout: float | None = None, owner: str = "tests", **options: object
) -> StyleRequest:
    """A real job on one scale (the 'fast' preset's smallest scale is 128 px, so below that there is only one)."""
    opts = StyleOptions(preset="fast", size=size, iterations=iterations, precision="fp32", **options)  # type: ignore[arg-type]
    return StyleRequest(CONTENT, [STYLE], opts, owner=owner, timeout=timeout)


async def wait_running(job: Any, step: int = 1, timeout: float = 60.0) -> None:
    """Wait until the job has reported ``step`` iterations (``step=0``: any event at all)."""
    async with asyncio.timeout(timeout):
        async for event in job.events():
            if event.step >= step:
                return
    raise AssertionError(f"job {job.job_id} ended ({job.state}) before step {step}")


def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (absent from /proc, or a zombie waiting for its reaper)."""
    stat = Path(f"/proc/{pid}/stat")
    try:
        text = stat.read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return text.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not process_gone(pid)

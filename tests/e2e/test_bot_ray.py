"""The bot on the fake Discord with NST_BACKEND=ray: the bot builds its own Ray backend from the settings (on the
test session's local Ray), a request gets its result, a killed actor is a clear failure, the next request works."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

from bot.app import StyleBot
from nst_engine.pool import PoolJob, RayBackend
from tests.e2e.bot_harness import E2E, embed_text, fake, images, is_error, is_result, make_settings
from tests.fakediscord import run_discord_client
from tests.pool.helpers import process_gone

pytestmark = E2E
__all__ = ["fake"]  # fixtures

QUICK = {"size": 48, "iterations": 4}
LONG = {"size": 48, "iterations": 5000}  # minutes: it is killed long before it ends


def use_overrides(bot: StyleBot, values: dict[str, Any]) -> None:
    """Set the engine overrides of the requests that come next (the job service keeps its own copy)."""
    bot.jobs.engine_overrides.clear()
    bot.jobs.engine_overrides.update(values)


async def test_a_request_runs_on_ray_and_a_killed_actor_fails_only_its_job(
    fake: Any, tmp_path: Any, ray_cluster: Any
) -> None:
    settings = make_settings(tmp_path, nst_backend="ray", nst_workers=1, nst_job_timeout=120.0)
    bot = StyleBot(settings, engine_overrides=QUICK)  # no backend given: the bot builds it from the settings
    async with run_discord_client(bot, fake, ready_timeout=120, close_timeout=30) as client:
        backend = client.backend
        assert isinstance(backend, RayBackend) and client.manage_backend

        first = await fake.post_message(fake.channel, fake.member, "!style", attachments=images(1))
        result = await fake.wait_for_message(fake.channel, is_result, timeout=120)
        assert result.reference_id == first.id and result.attachments[0].size > 0

        use_overrides(client, LONG)
        victim = await fake.post_message(fake.channel, fake.member, "!style", attachments=images(2))
        await fake.wait_for_message(
            fake.channel, lambda m: m.reference_id == victim.id and "%" in m.content, timeout=60
        )
        [job] = client.jobs.active.values()
        assert isinstance(job.handle, PoolJob)
        dead_pid = job.handle.worker_pid
        assert dead_pid is not None
        os.kill(dead_pid, signal.SIGKILL)
        failure = await fake.wait_for_message(fake.channel, is_error, timeout=60)
        assert "crashed" in embed_text(failure)

        # The next request waits for the replacement actor and gets its result.
        use_overrides(client, QUICK)
        await fake.post_message(fake.channel, fake.admin, "!style", attachments=images(3))
        again = await fake.wait_for_message(fake.channel, lambda m: is_result(m) and m is not result, timeout=120)
        assert again.attachments
        pids = [w.pid for w in backend.workers]
        assert len(pids) == 1 and dead_pid not in pids and backend.workers[0].restarts == 1
    # The bot closed the backend it built: its actor is gone.
    deadline = time.monotonic() + 15
    while not all(process_gone(p) for p in pids if p is not None):
        assert time.monotonic() < deadline, f"actor processes {pids} outlived the bot"
        await asyncio.sleep(0.1)

"""SIGTERM / SIGINT on the real ``python -m bot`` process: finish running jobs within SHUTDOWN_GRACE, tell the
others they were interrupted, exit 0; a second signal stops at once and leaves the job for the restart notice."""

from __future__ import annotations

import base64
import json
import signal
import socket
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.bot_harness import embed_text, is_result, png
from tests.e2e.bot_process import BotProcess, bot_process
from tests.fakediscord import FakeDiscord, FakeMessage, serving_fake

pytestmark = pytest.mark.e2e
READY = "ready; invite the bot with"
TOKEN = base64.urlsafe_b64encode(b"123456789012345678").decode().rstrip("=") + ".GaBcDe." + "y" * 38


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start_job(fake: FakeDiscord, bot: BotProcess) -> FakeMessage:
    """Wait for the bot, send a request, and return its status message once the job is on the backend."""
    await bot.wait_for_line(READY, timeout=120)
    request = await fake.post_message(fake.channel, fake.member, "!style fast",
                                      attachments=[("c.png", png(seed=1)), ("s.png", png(seed=2))])
    status = await fake.wait_for_message(fake.channel, lambda m: m.reference_id == request.id, timeout=30)
    await fake.wait_for(lambda: "Starting" in status.content or "%" in status.content, timeout=60,
                        what="the job's start")
    return status


def journal(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute("SELECT job_id, state FROM jobs"))


async def test_sigterm_lets_the_running_job_finish_and_refuses_new_ones(tmp_path):
    port = free_port()
    async with serving_fake() as fake:
        async with bot_process(tmp_path, fake.base_url, overrides={"size": 48, "iterations": 20},
                               SHUTDOWN_GRACE=120, METRICS_ADDRESS=f"127.0.0.1:{port}") as bot:
            status = await start_job(fake, bot)
            invite = await bot.wait_for_line(READY)
            assert f"client_id={fake.application_id}&scope=bot+applications.commands&permissions=" in invite
            signalled = fake.now()
            bot.signal(signal.SIGTERM)
            # The job was on the backend when the signal came (the bot says so), and is delivered after it.
            await bot.wait_for_line("SIGTERM: stopping; 1 job(s) running have up to 120 s to finish, 0 waiting")
            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                assert resp.status == 503 and await resp.text() == "shutting down\n"
            late = await fake.post_message(fake.channel, fake.admin, "!style fast",
                                           attachments=[("c.png", png(seed=3)), ("s.png", png(seed=4))])
            refusal = await fake.wait_for_message(fake.channel, lambda m: m.reference_id == late.id, timeout=30)
            await fake.wait_for(lambda: "restarting" in embed_text(refusal), timeout=10, what="the refusal")
            assert "try" in embed_text(refusal) or "again in a minute" in embed_text(refusal)
            result = await fake.wait_for_message(fake.channel, is_result, timeout=180)
            assert fake.member.mention in result.content
            assert await bot.wait(timeout=60) == 0, bot.output
        uploads = [r for r in fake.requests if r.method == "POST" and any(f.filename.startswith("styled.")
                                                                           for f in r.files)]
        assert len(uploads) == 1 and uploads[0].t > signalled
        assert "Done" in status.content
        assert "Traceback" not in bot.output
        assert [state for _, state in journal(tmp_path / "bot.sqlite3")] == ["done"]


async def test_sigterm_with_a_short_grace_tells_the_user_and_exits_0(tmp_path):
    async with serving_fake() as fake:
        async with bot_process(tmp_path, fake.base_url, overrides={"size": 48, "iterations": 5000},
                               SHUTDOWN_GRACE=0.5, LOG_FORMAT="json", DISCORD_TOKEN=TOKEN) as bot:
            status = await start_job(fake, bot)
            bot.signal(signal.SIGINT)
            assert await bot.wait(timeout=60) == 0, bot.output
        told = "interrupted" in embed_text(status).lower() or "restarting" in embed_text(status)
        assert told, embed_text(status) + "\n" + bot.output
        assert not status.custom_ids(), "the interrupted job's status still has buttons"
        assert not any(is_result(m) for m in fake.bot_messages())
        assert "Traceback" not in bot.output
        # Told already: the journal says so, and the next start does not tell them again.
        assert [state for _, state in journal(tmp_path / "bot.sqlite3")] == ["interrupted"]
        # LOG_FORMAT=json: every line of the bot's own process is one object; the job line has its fields;
        # the token does not appear (redaction itself: tests/ops/test_logs.py).
        entries = [json.loads(line) for line in bot.lines if "using RANDOM VGG19 weights" not in line]
        job = next(e for e in entries if e.get("job_id"))
        assert job["outcome"] == "interrupted" and job["preset"] == "fast" and job["origin"] == "prefix"
        assert job["user_id"] == fake.member.id and job["guild_id"] == fake.guild.id and job["seconds"] > 0
        assert TOKEN not in bot.output


async def test_second_signal_stops_at_once_and_the_restart_tells_the_user(tmp_path):
    async with serving_fake() as fake:
        async with bot_process(tmp_path, fake.base_url, overrides={"size": 48, "iterations": 5000},
                               SHUTDOWN_GRACE=600) as bot:
            await start_job(fake, bot)
            bot.signal(signal.SIGTERM)
            await bot.wait_for_line("SIGTERM: stopping")
            bot.signal(signal.SIGTERM)
            assert await bot.wait(timeout=30) == 0, bot.output
        assert "stopping at once" in bot.output
        assert [state for _, state in journal(tmp_path / "bot.sqlite3")] == ["running"]
        # The next start reports the job a crash (or an impatient operator) interrupted.
        async with bot_process(tmp_path, fake.base_url) as again:
            await again.wait_for_line(READY, timeout=120)
            notice = await fake.wait_for_message(fake.channel, lambda m: "restarted" in m.content, timeout=30)
            assert fake.member.mention in notice.content
            again.signal(signal.SIGTERM)
            assert await again.wait(timeout=60) == 0, again.output


async def test_sigterm_tells_waiting_users_at_once_even_when_discord_rate_limits_the_edits(tmp_path):
    async with serving_fake() as fake:
        async with bot_process(tmp_path, fake.base_url, overrides={"size": 48, "iterations": 5000},
                               SHUTDOWN_GRACE=0.5, NST_STOP_GRACE=1) as bot:
            await start_job(fake, bot)  # the one worker is busy from now on
            waiting = [fake.add_user(f"waiting{i}") for i in range(3)]
            for i, user in enumerate(waiting):
                fake.add_member(fake.guild, user)
                request = await fake.post_message(fake.channel, user, "!style fast",
                                                  attachments=[("c.png", png(seed=10 + i)), ("s.png", png(seed=20))])
                status = await fake.wait_for_message(fake.channel, lambda m, r=request: m.reference_id == r.id,
                                                     timeout=30)
                await fake.wait_for(lambda s=status: "Queued" in s.content, timeout=30, what="queued")
            # Discord's per-channel bucket for edits is spent: each status edit waits 5 s before discord.py retries.
            fake.rate_limit(r"^PATCH /channels/", count=20, retry_after=5.0)
            signalled = fake.now()
            bot.signal(signal.SIGTERM)
            notice = await fake.wait_for_message(fake.channel, lambda m: "were stopped before they ran" in m.content,
                                                 timeout=10)
            assert fake.now() - signalled < 4, "the waiting users were not told within a second or two"
            assert {u.id for u in notice.mentions} == {u.id for u in waiting}
            assert notice.content.count("(job ") == 3
            await bot.wait_for_line("told 3 of 3 waiting or downloading job(s)")
            assert await bot.wait(timeout=90) == 0, bot.output
        assert "3 in one message per channel" in bot.output
        # The waiting users are journaled as told; the running job's notice was still held back when the bot exited,
        # so it stays open and the next start tells its user, and only them.
        assert sorted(state for _, state in journal(tmp_path / "bot.sqlite3")) == ["interrupted"] * 3 + ["running"]
        async with bot_process(tmp_path, fake.base_url) as again:
            await again.wait_for_line("after the restart: 1 open job(s)", timeout=120)
            again.signal(signal.SIGTERM)
            assert await again.wait(timeout=60) == 0, again.output
        for user in waiting:
            pings = [m for m in fake.bot_messages() if user in m.mentions]
            assert pings == [notice], [m.shown_text() for m in pings]
        assert len([m for m in fake.bot_messages() if fake.member in m.mentions and "restarted" in m.content]) == 1

"""The bot as a real process (``python -m bot``) pointed at a fake Discord, for signals, exit codes and stderr.

Run as ``python -m tests.e2e.bot_process``: it points discord.py's REST base, gateway and CDN at
``$FAKEDISCORD_URL`` (the same three constants ``tests.fakediscord.pointed_at`` sets in-process), optionally forces
engine options on every job from ``$NST_TEST_ENGINE_OVERRIDES`` (JSON, like the in-process harness's
``engine_overrides``) and takes new ones from ``$NST_TEST_OVERRIDES_FILE`` on SIGUSR1, then runs the ``bot`` package exactly as ``python -m bot`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import runpy
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _point_discord_at(base: str) -> None:
    import discord.asset
    import discord.gateway
    import discord.http
    import yarl

    discord.http.Route.BASE = f"{base}/api/v10"
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(f"{base.replace('http', 'ws', 1)}/gateway")
    discord.asset.Asset.BASE = f"{base}/cdn"


def _force_engine_overrides(overrides: dict[str, Any]) -> None:
    from bot.app import StyleBot

    original = StyleBot.__init__

    def init(self: StyleBot, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("engine_overrides", overrides)
        original(self, *args, **kwargs)

    StyleBot.__init__ = init  # type: ignore[method-assign]


def _overrides_from_file_on_sigusr1(path: str) -> None:
    """On SIGUSR1 the running bot's job service takes the engine overrides in ``path`` (JSON) for the jobs that come
    next, and says so on stdout (what the in-process tests do by changing ``bot.jobs.engine_overrides``)."""
    from bot.app import StyleBot

    bots: list[StyleBot] = []
    original = StyleBot.__init__

    def init(self: StyleBot, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        bots.append(self)

    def reload(signum: int, frame: Any) -> None:
        values = json.loads(Path(path).read_text())
        for bot in bots:
            bot.jobs.engine_overrides.clear()
            bot.jobs.engine_overrides.update(values)
        print(f"test engine overrides now {json.dumps(values, sort_keys=True)}", flush=True)

    StyleBot.__init__ = init  # type: ignore[method-assign]
    signal.signal(signal.SIGUSR1, reload)


def _fast_ready() -> None:
    """discord.py waits 2 s after the last GUILD_CREATE before READY; the in-process harness lowers it too."""
    import discord.state

    original = discord.state.ConnectionState.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.guild_ready_timeout = 0.05

    discord.state.ConnectionState.__init__ = init  # type: ignore[method-assign]


class BotProcess:
    """A running ``python -m bot`` (through this module), with its output collected."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []  # stderr and stdout, merged, as they come
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    async def wait_for_line(self, text: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if text in line:
                    return line
            if self.proc.returncode is not None and self._reader.done():
                break
            await asyncio.sleep(0.05)
        raise AssertionError(f"no line with {text!r} within {timeout:g} s; output so far:\n{self.output}")

    async def wait(self, timeout: float = 60.0) -> int:
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"the bot did not exit within {timeout:g} s; output:\n{self.output}") from None
        await asyncio.wait_for(self._reader, 10)
        return code

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._reader, 10)


def bot_env(cwd: Path, fake_url: str | None, **settings: Any) -> dict[str, str]:
    """A clean environment: no inherited bot settings; the test's settings as environment variables."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DISCORD_", "NST_", "DATABASE_", "METRICS_", "SHARD_", "LOG_", "SHUTDOWN_", "USER_"))}
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    defaults: dict[str, Any] = {
        "DISCORD_TOKEN": "fake-token", "DATABASE_PATH": cwd / "bot.sqlite3", "NST_WEIGHTS": "random",
        "NST_DEVICE": "cpu", "NST_WORKERS": 1, "METRICS_ADDRESS": "", "PROGRESS_EDIT_INTERVAL": 0.5,
        "DOWNLOAD_TIMEOUT": 5,
        "USER_COOLDOWN": 0,  # tests send one person's requests back to back; the cooldown's own tests set it
    }
    defaults.update(settings)
    env.update({k: str(v) for k, v in defaults.items() if v is not None})
    if fake_url is not None:
        env["FAKEDISCORD_URL"] = fake_url
    return env


async def start_bot_process(cwd: Path, fake_url: str | None, *, overrides: dict[str, Any] | None = None,
                            **settings: Any) -> BotProcess:
    """Start the bot as a subprocess (the caller kills it: ``BotProcess.kill``)."""
    env = bot_env(cwd, fake_url, **settings)
    if overrides is not None:
        env["NST_TEST_ENGINE_OVERRIDES"] = json.dumps(overrides)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.e2e.bot_process", cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    return BotProcess(proc)


@contextlib.asynccontextmanager
async def bot_process(cwd: Path, fake_url: str | None, *, overrides: dict[str, Any] | None = None,
                      **settings: Any) -> AsyncIterator[BotProcess]:
    """Start the bot as a subprocess; it is killed on exit if the test left it running."""
    bot = await start_bot_process(cwd, fake_url, overrides=overrides, **settings)
    try:
        yield bot
    finally:
        await bot.kill()


if __name__ == "__main__":
    if os.environ.get("FAKEDISCORD_URL"):
        _point_discord_at(os.environ["FAKEDISCORD_URL"])
        _fast_ready()
    if os.environ.get("NST_TEST_ENGINE_OVERRIDES"):
        _force_engine_overrides(json.loads(os.environ["NST_TEST_ENGINE_OVERRIDES"]))
    if os.environ.get("NST_TEST_OVERRIDES_FILE"):
        _overrides_from_file_on_sigusr1(os.environ["NST_TEST_OVERRIDES_FILE"])
    sys.argv = ["bot", *sys.argv[1:]]
    runpy.run_module("bot", run_name="__main__", alter_sys=True)

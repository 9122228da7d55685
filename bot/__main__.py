"""Entry point: ``python -m bot`` / ``nst-bot`` runs the bot; ``nst-bot doctor`` checks its set-up.

Start-up failures (settings, token, intents, network, Discord down, weights, metrics port) end with one clear line on
stderr and a non-zero exit code, never a traceback: 2 for what the operator must fix in the configuration, 1 for
what may pass (network, Discord's outages). SIGTERM or SIGINT stop the bot gracefully (see ``bot.ops.shutdown``); the
exit code is then 0.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import signal
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
from discord.ext import commands
from pydantic import ValidationError

from bot.config import Settings
from bot.ops.invite import invite_url
from bot.ops.logs import setup_logging
from nst_engine import __version__

if TYPE_CHECKING:
    from bot.app import StyleBot

log = logging.getLogger("bot")

CLI_USAGE = """usage: nst-bot [doctor | --version | --help]

  nst-bot            run the bot (settings from the environment and .env; see .env.example)
  nst-bot doctor     check the settings, token, weights, database and Discord, one line each, then exit
  nst-bot --version  print the version, then exit"""

NO_TOKEN = (
    "DISCORD_TOKEN is not set: copy .env.example to .env and set DISCORD_TOKEN to your bot's token "
    "(Discord Developer Portal → your application → Bot → Reset Token)."
)
CONFIG_ERROR, TRANSIENT_ERROR = 2, 1


def load_settings() -> Settings | str:
    """The settings, or a one-line explanation of what is wrong with them."""
    try:
        settings = Settings()
    except ValidationError as exc:
        from nst_engine.pool.settings import describe_settings_error

        return f"Invalid settings in the environment or .env: {describe_settings_error(exc)}."
    if settings.discord_token is None or not settings.discord_token.get_secret_value().strip():
        return NO_TOKEN
    return settings


NO_ENGINE = ("NST_BACKEND=process runs the style jobs on this machine, and the engine (torch) is not installed here: "
             "install it with pip install '.[engine]' (make install does), or set NST_BACKEND=ray to run the jobs "
             "on a Ray cluster (docs/scaling-out.md).")


def preflight_settings(settings: Settings) -> str | None:
    """What can be known to fail before connecting to anything (cheap checks only; ``doctor`` does the rest)."""
    if settings.nst_backend == "process" and importlib.util.find_spec("torch") is None:
        return NO_ENGINE  # a front-end install (no torch) with the local pool
    spec = settings.nst_weights.strip()
    if spec not in ("imagenet", "random"):
        path = Path(spec).expanduser()
        if not path.is_file():
            return (f"The weights file {str(path)!r} (NST_WEIGHTS) does not exist: set NST_WEIGHTS to imagenet or "
                    "to the path of a VGG19 state_dict file.")
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            return f"The weights file {str(path)!r} (NST_WEIGHTS) cannot be read: {exc.strerror or exc}."
    return None


def describe_startup_failure(exc: BaseException) -> tuple[str, int]:
    """One line for the operator, and the exit code, for whatever stopped the bot from starting."""
    from nst_engine.errors import ClusterSetupError, NSTError, OptionsError, PoolError, WeightsError

    if isinstance(exc, discord.LoginFailure):
        return ("Discord refused DISCORD_TOKEN: check the token in .env (it may have been reset; Developer Portal → "
                "your application → Bot → Reset Token).", CONFIG_ERROR)
    if isinstance(exc, discord.PrivilegedIntentsRequired):
        return ("Discord refused the Message Content intent: enable it in the Developer Portal "
                "(your application → Bot → Privileged Gateway Intents).", CONFIG_ERROR)
    if isinstance(exc, discord.DiscordServerError):
        return (f"Discord is having problems (HTTP {exc.status} at start-up); try again in a few minutes "
                "(https://discordstatus.com).", TRANSIENT_ERROR)
    if isinstance(exc, discord.HTTPException):
        return (f"Discord answered HTTP {exc.status} at start-up: {exc.text or exc}. Run `nst-bot doctor`.",
                TRANSIENT_ERROR)
    if isinstance(exc, discord.GatewayNotFound):
        return "Discord's gateway could not be found; try again in a few minutes.", TRANSIENT_ERROR
    if isinstance(exc, discord.ConnectionClosed):
        return (f"Discord closed the gateway connection (code {exc.code}: {exc.reason or 'no reason'}).",
                TRANSIENT_ERROR)
    dns = getattr(aiohttp, "ClientConnectorDNSError", None)
    if dns is not None and isinstance(exc, dns):
        return (f"Cannot resolve {exc.host}: no network or DNS. Check the connection and DNS, then start again.",
                TRANSIENT_ERROR)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return (f"Cannot connect to {exc.host}:{exc.port} ({exc.strerror or exc.os_error}): check the network, "
                "firewall and proxy, then start again.", TRANSIENT_ERROR)
    if isinstance(exc, (aiohttp.ClientError, TimeoutError)):
        return (f"The connection to Discord failed at start-up ({type(exc).__name__}: {exc or 'timed out'}); check "
                "the network, then start again.", TRANSIENT_ERROR)
    if isinstance(exc, WeightsError | OptionsError | ClusterSetupError):
        return f"The style workers could not start: {exc}.", CONFIG_ERROR
    if isinstance(exc, PoolError | NSTError):
        return f"The style workers could not start: {exc}.", TRANSIENT_ERROR
    if isinstance(exc, sqlite3.Error):
        return f"The database could not be opened: {exc}. Check DATABASE_PATH.", CONFIG_ERROR
    if isinstance(exc, OSError):
        return f"Start-up failed: {exc.strerror or exc}{f' ({exc.filename})' if exc.filename else ''}.", CONFIG_ERROR
    return (f"Start-up failed: {type(exc).__name__}: {exc}. Run `nst-bot doctor`, or set LOG_LEVEL=DEBUG for "
            "the details.", TRANSIENT_ERROR)


def make_bot(settings: Settings, **kwargs: Any) -> StyleBot:
    """A StyleBot: one gateway connection, or discord.py's AutoShardedBot when SHARD_COUNT is set."""
    from bot.app import StyleBot

    if settings.shard_count is None:
        return StyleBot(settings, **kwargs)

    class ShardedStyleBot(StyleBot, commands.AutoShardedBot):
        """The same bot over several gateway connections (shards), each serving a share of the servers."""

    if settings.shard_count != "auto":
        kwargs["shard_count"] = settings.shard_count
    return ShardedStyleBot(settings, **kwargs)


async def serve(settings: Settings, **bot_kwargs: Any) -> int:
    """Run the bot until it stops; returns the exit code."""
    from bot.ops.health import MetricsServer
    from bot.ops.metrics import BotMetrics, instrument
    from bot.ops.shutdown import Shutdown

    token = settings.discord_token.get_secret_value().strip() if settings.discord_token else ""
    metrics = BotMetrics()
    server = MetricsServer(metrics, settings.metrics_address) if settings.metrics_address else None
    if server is not None:
        try:
            await server.start()
        except OSError as exc:
            print(f"METRICS_ADDRESS={settings.metrics_address}: {exc.strerror}; choose another host:port, or "
                  "set METRICS_ADDRESS= (empty) to turn the metrics server off.", file=sys.stderr)
            return CONFIG_ERROR
    bot = make_bot(settings, observers=[metrics.observe], **bot_kwargs)
    instrument(bot, metrics)
    announced = False

    async def announce() -> None:
        nonlocal announced
        if not announced and bot.application_id is not None:
            announced = True
            log.info("ready; invite the bot with %s", invite_url(bot.application_id))

    bot.add_listener(announce, "on_ready")
    shutdown = Shutdown(bot, metrics, grace=settings.shutdown_grace)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, shutdown.on_signal, sig)
    runner: asyncio.Task[None] | None = None
    try:
        runner = asyncio.create_task(bot.start(token), name="discord-client")
        stop = asyncio.create_task(shutdown.requested.wait())
        await asyncio.wait({runner, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not runner.done():
            await shutdown.run()
            await _close(bot, runner)
            return 0
        failure = runner.exception()
        await _close(bot, runner)
        if failure is None:
            return 0
        line, code = describe_startup_failure(failure)
        log.debug("the bot stopped", exc_info=failure)
        print(line, file=sys.stderr)
        return code
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        if runner is not None and not runner.done():
            runner.cancel()
        if server is not None:
            await server.stop()


async def _close(bot: StyleBot, runner: asyncio.Task[None]) -> None:
    """Close the bot (backend, database, gateway) and wait for its task; a failure here is logged, not raised."""
    try:
        await asyncio.wait_for(bot.close(), timeout=30)
    except Exception:
        log.exception("closing the bot failed")
    if not runner.done():
        try:
            await asyncio.wait_for(runner, timeout=10)
        except (Exception, asyncio.CancelledError):
            log.debug("the client task ended with an error while closing", exc_info=True)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help", "help"):
        print(CLI_USAGE)
        return 0
    if args in (["--version"], ["-V"], ["version"]):
        print(f"nst-bot {__version__}")
        return 0
    if args == ["doctor"]:
        from bot.ops import doctor

        return doctor.main()
    if args:
        print(f"nst-bot: unknown arguments {' '.join(args)!r}\n\n{CLI_USAGE}", file=sys.stderr)
        return CONFIG_ERROR
    settings = load_settings()
    if isinstance(settings, str):
        print(settings, file=sys.stderr)
        return CONFIG_ERROR
    from bot.storage.db import preflight as database_preflight

    # Before logging in: a database the bot cannot use is one clear line and exit 2, not a traceback loop.
    problem = database_preflight(settings.database_path, retention=settings.job_retention_days * 86400)
    if problem:
        print(problem, file=sys.stderr)
        return CONFIG_ERROR
    assert settings.discord_token is not None
    setup_logging(settings.log_level, settings.log_format, secrets=[settings.discord_token.get_secret_value()])
    problem = preflight_settings(settings)
    if problem is not None:
        print(problem, file=sys.stderr)
        return CONFIG_ERROR
    try:
        return asyncio.run(serve(settings))
    except KeyboardInterrupt:  # a second Ctrl-C while asyncio.run is cleaning up
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""Entry point: ``python -m bot`` / ``nst-bot``. Exit code 2 for configuration problems, with one clear line."""

from __future__ import annotations

import logging
import sys

import discord
from pydantic import ValidationError

from bot.config import Settings

NO_TOKEN = (
    "DISCORD_TOKEN is not set: copy .env.example to .env and set DISCORD_TOKEN to your bot's token "
    "(Discord Developer Portal → your application → Bot → Reset Token)."
)


def load_settings() -> Settings | str:
    """The settings, or a one-line explanation of what is wrong with them."""
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        )
        return f"Invalid settings in the environment or .env: {problems}."
    if settings.discord_token is None or not settings.discord_token.get_secret_value().strip():
        return NO_TOKEN
    return settings


def main(argv: list[str] | None = None) -> int:
    settings = load_settings()
    if isinstance(settings, str):
        print(settings, file=sys.stderr)
        return 2
    from bot.db import preflight

    # Before logging in: a database the bot cannot use is one clear line and exit 2, not a traceback loop.
    problem = preflight(settings.database_path, retention=settings.job_retention_days * 86400)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    discord.utils.setup_logging(level=getattr(logging, settings.log_level))
    from bot.app import StyleBot

    bot = StyleBot(settings)
    assert settings.discord_token is not None
    try:
        bot.run(settings.discord_token.get_secret_value().strip(), log_handler=None)
    except discord.LoginFailure:
        print("Discord refused DISCORD_TOKEN: check the token in .env (it may have been reset).", file=sys.stderr)
        return 2
    except discord.PrivilegedIntentsRequired:
        print(
            "Discord refused the Message Content intent: enable it in the Developer Portal "
            "(your application → Bot → Privileged Gateway Intents).",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

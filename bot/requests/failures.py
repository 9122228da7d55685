"""Every way a request can end badly, mapped in one table to an outcome and the user's message.

In the spirit of httpx's exception mapping: ``describe`` walks ``FAILURES`` in order and the first row whose class
matches decides. The engine's messages say what is wrong with the input; the sentences that speak to a Discord user
("send it again", "try the fast preset") live only here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import discord
from discord import app_commands
from discord.ext import commands

from bot.requests.downloads import DownloadError
from bot.requests.fair_queue import FairQueueFull, QueueRefused
from bot.requests.policy import Refusal, image_refusal, sentence
from bot.requests.redelivery import is_transient, reason
from bot.storage.db import DatabaseUnavailable
from nst_engine.errors import (
    Cancelled,
    EncodeError,
    ImageError,
    JobFailedError,
    JobTimeoutError,
    NSTError,
    OptionsError,
    OutOfMemoryError,
    PoolClosedError,
    PoolError,
    QueueFullError,
    WeightsError,
    WorkerCrashedError,
)

GENERIC = "Something went wrong on my side. It has been logged; please try again."


class DeliveryFailed(Exception):
    """The result could not be posted within the upload limit; the message is for the user."""


class Undeliverable(Exception):
    """Neither the channel nor the user's DMs take the bot's message; the message says why, for the log and the
    status message (which the bot may still be able to edit)."""


@dataclass(frozen=True)
class Failure:
    """How a request ended: ``outcome`` for logs and metrics, ``message`` (and embed title) for the user.

    ``expected`` is False for bugs: those are logged with their traceback.
    """

    outcome: str
    message: str
    title: str = "Can't do that"
    expected: bool = True
    refused: bool = False  # the request was not run because of what it is (vs. failed while running)


@dataclass(frozen=True)
class Context:
    """What a message may need to know besides the exception."""

    job_timeout: float  # seconds


Rule = Callable[[BaseException, Context], Failure]


def _timeout(exc: JobTimeoutError, context: Context) -> str:
    minutes = (exc.seconds or context.job_timeout) / 60
    if exc.frames > 1:
        return (f"Your animation ran longer than its {minutes:.3g}-minute limit ({exc.frames} frames) and was "
                "stopped. Try the `fast` preset, a shorter animation or smaller images.")  # fmt: skip
    return f"Your job ran longer than the {minutes:.3g}-minute limit and was stopped. Try the `fast` preset or smaller images."

FAILURES: tuple[tuple[type[BaseException], Rule], ...] = (
    (Refusal, lambda e, c: Failure(cast(Refusal, e).reason, str(e), refused=True)),
    (FairQueueFull, lambda e, c: Failure("queue-full", str(e), title="Queue", refused=True)),
    (QueueRefused, lambda e, c: Failure("user-limit", str(e), title="Queue", refused=True)),
    (DownloadError, lambda e, c: Failure("download-failed", str(e))),
    (DeliveryFailed, lambda e, c: Failure("undeliverable", str(e))),
    (Cancelled, lambda e, c: Failure("cancelled", "Cancelled.")),
    (WorkerCrashedError, lambda e, c: Failure(
        "crashed",
        "The worker process running your job crashed (it may have run out of memory). Other jobs are not "
        "affected; please send it again, perhaps with smaller images or the `fast` preset.")),
    (JobTimeoutError, lambda e, c: Failure("timeout", _timeout(cast(JobTimeoutError, e), c))),
    (OutOfMemoryError, lambda e, c: Failure(
        "out-of-memory", "The device ran out of memory for this job, even at a smaller size. Try smaller images.")),
    (QueueFullError, lambda e, c: Failure(
        "busy", "The bot is too busy right now (the worker queue is full). Please try again in a few minutes.")),
    (PoolClosedError, lambda e, c: Failure(
        "pool-closed", "The bot is restarting; please send your request again in a minute.")),
    (OptionsError, lambda e, c: Failure("bad-options", f"Those options don't work: {e}.")),
    (ImageError, lambda e, c: Failure("bad-image", image_refusal(cast(ImageError, e)))),
    (EncodeError, lambda e, c: Failure("encode-failed", f"The result could not be encoded: {e}.")),
    (JobFailedError, lambda e, c: Failure("engine-failed", f"The style transfer failed: {e}")),
    (WeightsError, lambda e, c: Failure(  # the bot's setup, not the request: logged for its owner
        "no-weights", "The style engine could not load its model. It has been logged for the bot's owner.",
        expected=False)),
    (PoolError, lambda e, c: Failure("pool-failed", f"The worker pool failed: {sentence(str(e))}")),
    (NSTError, lambda e, c: Failure("engine-failed", f"The style transfer failed: {sentence(str(e))}")),
    (Undeliverable, lambda e, c: Failure("undeliverable", str(e))),
    (discord.HTTPException, lambda e, c: _discord_refused(cast(discord.HTTPException, e))),
    (Exception, lambda e, c: Failure("error", GENERIC, expected=False)),
)


def _discord_refused(exc: discord.HTTPException) -> Failure:
    if is_transient(exc):
        return Failure("discord-unavailable",
                       f"Discord kept refusing to take the result ({reason(exc)}) for several minutes, so it is lost. "
                       "Please send your request again later.")
    # Any other refusal is the bot's own mistake: logged with its traceback, but the user still hears why.
    return Failure("discord-refused",
                   f"Discord refused my message (HTTP {exc.status}, code {exc.code}). It has been logged; please "
                   "try again.", expected=False)


def permission_names(names: list[str]) -> str:
    """discord.py's permission names as Discord's UI shows them: manage_guild -> Manage Server."""
    return ", ".join(name.replace("guild", "server").replace("_", " ").title() for name in names)


def _missing(e: BaseException) -> str:
    names = getattr(e, "missing_permissions", [])
    return f"Only members with the **{permission_names(names)}** permission can do this."


# Errors of commands (slash and prefix) before they reach the job service: the user's message, first match wins.
COMMAND_ERRORS: tuple[tuple[tuple[type[BaseException], ...], Callable[[BaseException], str]], ...] = (
    ((app_commands.NoPrivateMessage, commands.NoPrivateMessage),
     lambda e: str(e) or "This command only works in a server."),
    ((app_commands.MissingPermissions, commands.MissingPermissions), _missing),
    ((app_commands.CheckFailure, commands.CheckFailure), lambda e: str(e) or "You can't use this command here."),
    ((app_commands.TransformerError, commands.UserInputError), str),
)


def describe_command_error(error: BaseException) -> str | None:
    """The user's message for a command error, or None for a bug (log it, answer with GENERIC)."""
    original = getattr(error, "original", error)
    if isinstance(original, DatabaseUnavailable):  # settings not saved: the database is locked or read-only
        return str(original)
    for kinds, message in COMMAND_ERRORS:
        if isinstance(error, kinds):
            return message(error)
    return None


def describe(exc: BaseException, context: Context) -> Failure:
    """The first row of ``FAILURES`` that matches ``exc``."""
    for kind, rule in FAILURES:
        if isinstance(exc, kind):
            return rule(exc, context)
    return Failure("error", GENERIC, expected=False)

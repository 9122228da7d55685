"""Logging set-up: ``LOG_FORMAT=text`` (one readable line) or ``json`` (one JSON object a line), never a secret.

Structured fields travel as ``extra``: ``log.info("job done", extra={"job_id": ..., "outcome": "done"})``; the JSON
format writes every such field as a key (``job_id``, ``user_id``, ``guild_id``, ``preset``, ``seconds``, ``outcome``,
...), the text format writes the message as is. Both formats pass the final line through ``redact``: the bot's token
is replaced by ``[token]`` and attachment URLs lose their query strings (Discord signs them with ``ex``/``is``/``hm``
parameters that let anyone holding the link fetch the file).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
from collections.abc import Iterable
from typing import Any, Literal, TextIO

LogFormat = Literal["text", "json"]

# Attachment URLs (Discord's CDN and media proxy serve them under /attachments/ or /ephemeral-attachments/): keep
# scheme, host and path; drop the signed ``?ex=..&is=..&hm=..`` query. Other URLs (the invite link) stay whole.
_URL_QUERY = re.compile(r"(\bhttps?://[^\s?#\"'<>]*/(?:ephemeral-)?attachments/[^\s?#\"'<>]*)\?[^\s\"'<>]*")
# Anything shaped like a Discord bot token (three base64url parts), even one that is not ours.
_TOKEN_SHAPE = re.compile(r"\b[A-Za-z0-9_-]{23,28}\.[A-Za-z0-9_-]{6,7}\.[A-Za-z0-9_-]{27,}\b")
# The attributes every LogRecord has; anything else on a record came in through ``extra``.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class Redactor:
    """Removes secrets from a finished log line."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = [s for s in secrets if s and len(s) >= 8]

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[token]")
        text = _TOKEN_SHAPE.sub("[token]", text)
        return _URL_QUERY.sub(r"\1?[query removed]", text)


class TextFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%Y-%m-%d %H:%M:%S")
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the ``extra`` fields, exception."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return self.redact(json.dumps(entry, ensure_ascii=False, default=str))


class OneLineRetries(logging.Filter):
    """discord.py logs each gateway reconnect with a full traceback; keep it to one line with the reason."""

    PREFIXES = ("Attempting a reconnect", "Failed to connect for shard_id")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.msg, str) and record.msg.startswith(self.PREFIXES):
            exc = record.exc_info[1]
            if exc is not None:
                record.msg = f"{record.getMessage()} ({type(exc).__name__}: {exc})"
                record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


def setup_logging(
    level: str = "INFO", fmt: LogFormat = "text", *, secrets: Iterable[str] = (), stream: TextIO | None = None
) -> logging.Handler:
    """Send every logger's records (discord.py's and aiohttp's too) to ``stream`` (stderr) in ``fmt``.

    Replaces the root logger's handlers, so calling it twice does not double the lines. Returns the handler.
    """
    redact = Redactor(secrets)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter(redact) if fmt == "json" else TextFormatter(redact))
    handler.addFilter(OneLineRetries())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    # discord.py's HTTP client logs every request at DEBUG, with bodies; keep it at INFO unless asked otherwise.
    logging.getLogger("discord.http").setLevel(max(logging.INFO, root.level))
    return handler

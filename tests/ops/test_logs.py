"""LOG_FORMAT=text|json: structured fields, and never the token or a URL's query string."""

from __future__ import annotations

import io
import json
import logging

import pytest

from bot.ops.logs import Redactor, setup_logging

TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456"
URL = "https://cdn.discordapp.com/attachments/1/2/cat.png?ex=65f&is=65e&hm=deadbeef"


@pytest.fixture
def restore_root():
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_json_lines_carry_the_job_fields_and_no_secrets(restore_root):
    out = io.StringIO()
    setup_logging("INFO", "json", secrets=[TOKEN], stream=out)
    log = logging.getLogger("bot.jobs")
    log.info("job %s finished", "ab12", extra={"job_id": "ab12", "user_id": 42, "guild_id": 7, "preset": "fast",
                                               "seconds": 1.5, "outcome": "done"})
    log.warning("download of %s failed with token %s", URL, TOKEN)
    try:
        raise ValueError(f"bad {URL}")
    except ValueError:
        log.exception("oops")
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    first, second, third = (json.loads(line) for line in lines)
    assert first["message"] == "job ab12 finished" and first["level"] == "INFO" and first["logger"] == "bot.jobs"
    assert {k: first[k] for k in ("job_id", "user_id", "guild_id", "preset", "seconds", "outcome")} == {
        "job_id": "ab12", "user_id": 42, "guild_id": 7, "preset": "fast", "seconds": 1.5, "outcome": "done"}
    assert first["time"].endswith("+00:00")
    assert "cat.png" in second["message"] and "ex=65f" not in second["message"] and TOKEN not in second["message"]
    assert "[token]" in second["message"]
    assert "Traceback" in third["exception"] and "hm=deadbeef" not in third["exception"]
    assert TOKEN not in out.getvalue() and "?ex=" not in out.getvalue()


def test_text_format_is_one_readable_line_without_secrets(restore_root):
    out = io.StringIO()
    setup_logging("DEBUG", "text", secrets=[TOKEN], stream=out)
    logging.getLogger("discord.client").info("logging in with %s to %s", TOKEN, URL)
    text = out.getvalue()
    assert text.count("\n") == 1 and " INFO " in text and "discord.client:" in text
    assert TOKEN not in text and "hm=" not in text and "attachments/1/2/cat.png?[query removed]" in text
    # Calling it again replaces the handler instead of doubling every line.
    setup_logging("INFO", "text", stream=out)
    logging.getLogger("x").info("once")
    assert out.getvalue().count("once") == 1


def test_token_shaped_strings_are_redacted_even_when_not_ours():
    redact = Redactor()
    assert "[token]" in redact(f"Authorization: Bot {TOKEN}")
    media = "https://media.discordapp.net/ephemeral-attachments/1/2/a.webp?ex=1&is=2&hm=3&width=100"
    assert redact(f"got {media} ok") == "got https://media.discordapp.net/ephemeral-attachments/1/2/a.webp?[query removed] ok"
    # Other links keep their query: the invite link is useless without it.
    invite = "https://discord.com/oauth2/authorize?client_id=123&scope=bot+applications.commands&permissions=274878024704"
    assert redact(f"invite: {invite}") == f"invite: {invite}"
    assert redact("no secrets here: v1.2.3 and a.b") == "no secrets here: v1.2.3 and a.b"


def test_gateway_reconnects_are_one_line_each(restore_root):
    out = io.StringIO()
    setup_logging("INFO", "text", stream=out)
    try:
        raise OSError(111, "Connect call failed ('127.0.0.1', 9)")
    except OSError:
        logging.getLogger("discord.client").exception("Attempting a reconnect in %.2fs", 1.234)
    text = out.getvalue()
    assert "Traceback" not in text and text.count("\n") == 1
    assert "Attempting a reconnect in 1.23s (ConnectionRefusedError: [Errno 111] Connect call failed" in text

"""Route registry, the per-request `Call` and Discord-style errors (shared by the REST modules)."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .state import RecordedRequest, UploadedFile

if TYPE_CHECKING:
    from .server import FakeDiscord


class DiscordError(Exception):
    """Raised by handlers; rendered as Discord's JSON error body."""

    def __init__(self, status: int, code: int, message: str, errors: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status, self.code, self.message, self.errors = status, code, message, errors


def unknown_channel() -> DiscordError:
    return DiscordError(404, 10003, "Unknown Channel")


def unknown_message() -> DiscordError:
    return DiscordError(404, 10008, "Unknown Message")


@dataclass
class Call:
    """One parsed request, handed to a handler."""

    fake: FakeDiscord
    request: web.Request
    params: dict[str, str]
    json: Any = None
    files: list[UploadedFile] = field(default_factory=list)
    record: RecordedRequest | None = None

    def int_param(self, name: str) -> int:
        return int(self.params[name])

    @property
    def query(self) -> Any:
        return self.request.query


Handler = Callable[[Call], Awaitable[Any]]
ROUTES: list[tuple[str, str, re.Pattern[str], Handler]] = []


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    """Register a handler; `{x_id}` placeholders match snowflakes, others any path segment."""

    def to_regex(match: re.Match[str]) -> str:
        name = match.group(1)
        return f"(?P<{name}>\\d+)" if name.endswith("_id") else f"(?P<{name}>[^/]+)"

    regex = re.compile("^" + re.sub(r"\{(\w+)\}", to_regex, pattern) + "$")

    def deco(fn: Handler) -> Handler:
        ROUTES.append((method, pattern, regex, fn))
        return fn

    return deco


def discord_json(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """JSON exactly as Discord labels it: discord.py only parses `Content-Type: application/json` (no charset)."""
    return web.Response(body=json.dumps(data).encode(), status=status,
                        headers={**(headers or {}), "Content-Type": "application/json"})

"""FakeDiscord: the aiohttp application (REST + gateway + CDN) and the world it serves."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mimetypes
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from . import cdn, gateway, rest
from .driver import DriverMixin
from .rules import clean_filename
from .state import (
    CdnFault,
    FakeAttachment,
    FakeChannel,
    FakeConfig,
    FakeGuild,
    FakeMember,
    FakeMessage,
    FakeRole,
    FakeUser,
    FileSpec,
    InteractionRecord,
    Overwrite,
    Perm,
    RecordedRequest,
    RegisteredCommand,
    image_size,
    snowflake,
)

log = logging.getLogger("fakediscord")
T = TypeVar("T")


@dataclass
class RateLimitRule:
    pattern: re.Pattern[str]
    remaining: int
    retry_after: float
    is_global: bool
    scope: str


@dataclass
class ServerErrorRule:
    pattern: re.Pattern[str]
    remaining: int
    status: int


@dataclass
class Tripwire:
    """Runs ``action`` once, at the first request past ``skip`` whose "METHOD /path" matches and ``when`` accepts."""

    pattern: re.Pattern[str]
    action: Callable[[], None]
    when: Callable[[RecordedRequest], bool] | None
    skip: int
    fired: RecordedRequest | None = None


class FakeDiscord(DriverMixin):
    """A fake Discord on 127.0.0.1. Build the world, `await start()`, point discord.py at it."""

    def __init__(self) -> None:
        self.config = FakeConfig()
        self.allow_unknown_routes = False
        self.host = "127.0.0.1"
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._t0 = time.monotonic()
        self._changed = asyncio.Event()  # set (and replaced) on every state change; see _notify()

        self.users: dict[int, FakeUser] = {}
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, FakeChannel] = {}
        self.messages: dict[int, FakeMessage] = {}
        self.attachments: dict[int, FakeAttachment] = {}
        self.interactions: list[InteractionRecord] = []
        self.commands: list[RegisteredCommand] = []
        self.requests: list[RecordedRequest] = []
        self.unknown_routes: list[str] = []
        self.rate_limits: list[RateLimitRule] = []
        self.server_errors: list[ServerErrorRule] = []
        self.tripwires: list[Tripwire] = []
        self.reactions: list[tuple[int, str]] = []  # (message id, emoji) the bot added
        self.gateway = gateway.Gateway(self)
        self._action_mark = 0

        # the default world
        self.bot_user = self.add_user("StyleBot", bot=True)
        self.application_id = self.bot_user.id
        self.owner = self.add_user("owner")
        self.admin = self.add_user("admin")
        self.member = self.add_user("member")
        self.guild = self.add_guild("Test Guild", self.owner)
        self.admin_role = self.add_role(self.guild, "Admin", Perm.DEFAULT | Perm.MANAGE_GUILD)
        self.bot_role = self.add_role(self.guild, "StyleBot", Perm.DEFAULT)
        self.add_member(self.guild, self.admin, roles=[self.admin_role])
        self.add_member(self.guild, self.member)
        self.add_member(self.guild, self.bot_user, roles=[self.bot_role])
        self.channel = self.add_channel(self.guild, "general")
        self.other_channel = self.add_channel(self.guild, "art")
        self.dm_channel = self.add_dm_channel(self.member)

    # ------------------------------------------------------------------ lifecycle
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/api/v10"

    @property
    def cdn_base(self) -> str:
        return f"{self.base_url}/cdn"

    @property
    def gateway_url(self) -> str:
        return f"ws://{self.host}:{self.port}/gateway"

    def now(self) -> float:
        """Seconds since this fake was created (the clock of `RecordedRequest.t`)."""
        return time.monotonic() - self._t0

    async def start(self) -> None:
        # Large client_max_size: the upload-limit check (413) must be ours, not aiohttp's.
        app = web.Application(client_max_size=1024**3)
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_get("/cdn/attachments/{channel_id}/{attachment_id}/{filename}", self._cdn)
        app.router.add_route("*", "/api/{version:v\\d+}/{tail:.*}", self._rest)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None)
        assert sockets
        self.port = sockets[0].getsockname()[1]
        log.info("fake discord listening on %s", self.base_url)

    async def stop(self) -> None:
        await self.gateway.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        return await rest.handle(self, request)

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        return await cdn.handle(self, request)

    async def _unknown(self, request: web.Request) -> web.StreamResponse:
        return await rest.unknown(self, request)

    # ------------------------------------------------------------------ world builders
    def add_user(self, name: str, *, bot: bool = False) -> FakeUser:
        user = FakeUser(snowflake(), name, bot=bot)
        self.users[user.id] = user
        return user

    def add_guild(self, name: str, owner: FakeUser) -> FakeGuild:
        guild = FakeGuild(snowflake(), name, owner)
        guild.roles.append(FakeRole(guild.id, "@everyone", Perm.DEFAULT, position=0))
        self.guilds[guild.id] = guild
        self.add_member(guild, owner)
        return guild

    def add_role(self, guild: FakeGuild, name: str, permissions: int) -> FakeRole:
        role = FakeRole(snowflake(), name, permissions, position=len(guild.roles))
        guild.roles.append(role)
        return role

    def add_member(self, guild: FakeGuild, user: FakeUser, roles: list[FakeRole] | tuple[()] = ()) -> FakeMember:
        member = FakeMember(user, guild, list(roles))
        guild.members[user.id] = member
        return member

    def add_channel(self, guild: FakeGuild, name: str) -> FakeChannel:
        channel = FakeChannel(snowflake(), name, guild=guild, position=len(guild.channels))
        guild.channels.append(channel)
        self.channels[channel.id] = channel
        return channel

    def set_permissions(self, channel: FakeChannel, target: FakeRole | FakeUser, *, allow: int = 0,
                        deny: int = 0) -> None:
        """Set ``channel``'s permission overwrite for a role (``fake.guild.everyone_role`` for @everyone) or a
        member, as a server admin would; allow=deny=0 removes it. Affects every permission check of the fake (the
        bot's sends, uploads, replies, embeds; interaction ``member.permissions``/``app_permissions``). Set before
        the client connects, or call ``await fake.push_channel_update(channel)`` so its cache learns it."""
        kind = Overwrite.ROLE if isinstance(target, FakeRole) else Overwrite.MEMBER
        if allow == deny == 0:
            channel.overwrites.pop(target.id, None)
        else:
            channel.overwrites[target.id] = Overwrite(target.id, kind, allow, deny)

    async def push_channel_update(self, channel: FakeChannel) -> None:
        """Dispatch CHANNEL_UPDATE (e.g. after ``set_permissions`` on a connected client)."""
        await self.gateway.dispatch("CHANNEL_UPDATE", channel.payload(), intent=gateway.GUILDS,
                                    guild_id=channel.guild.id if channel.guild else None)
        self._notify()

    def set_dms_open(self, user: FakeUser, accepts: bool = True) -> None:
        """Open or close ``user``'s DMs to the bot: closed, every bot message to their DM channel gets 403 code
        50007 "Cannot send messages to this user" (creating the DM channel still works, as on Discord)."""
        user.accepts_dms = accepts

    def add_dm_channel(self, user: FakeUser) -> FakeChannel:
        for ch in self.channels.values():
            if ch.is_dm and ch.recipient is user:
                return ch
        channel = FakeChannel(snowflake(), f"dm-{user.name}", recipient=user)
        self.channels[channel.id] = channel
        return channel

    # ------------------------------------------------------------------ attachments / CDN
    def make_attachment(self, channel: FakeChannel, spec: FileSpec | tuple[str, bytes],
                        *, ephemeral: bool = False) -> FakeAttachment:
        """Register bytes on the CDN and return the attachment Discord would describe."""
        if isinstance(spec, tuple):
            spec = FileSpec(*spec)
        att_id = snowflake()
        filename = clean_filename(spec.filename)  # Discord stores (and serves) the cleaned name
        ctype = spec.content_type or mimetypes.guess_type(filename)[0]
        url = f"{self.cdn_base}/attachments/{channel.id}/{att_id}/{filename}"
        size = image_size(spec.data)
        att = FakeAttachment(att_id, channel.id, filename, spec.data, ctype, url, url + "?proxy=1",
                             width=size[0] if size else None, height=size[1] if size else None,
                             ephemeral=ephemeral, title=spec.filename if filename != spec.filename else None)
        self.attachments[att_id] = att
        return att

    def cdn_fault(self, attachment: FakeAttachment | str, kind: str, **params: Any) -> CdnFault:
        """Make the CDN misbehave for one attachment (see README for kinds and params)."""
        if kind not in {"404", "slow", "truncated", "content_type", "huge"}:
            raise ValueError(f"unknown CDN fault kind {kind!r}")
        att = self._attachment(attachment)
        att.fault = CdnFault(kind, **params)
        return att.fault

    def clear_cdn_fault(self, attachment: FakeAttachment | str) -> None:
        self._attachment(attachment).fault = None

    def _attachment(self, ref: FakeAttachment | str) -> FakeAttachment:
        if isinstance(ref, FakeAttachment):
            return ref
        for att in self.attachments.values():
            if ref in (att.url, att.proxy_url):
                return att
        raise KeyError(f"no attachment with url {ref!r}")

    # ------------------------------------------------------------------ rate limits
    def rate_limit(self, pattern: str, count: int = 1, retry_after: float = 0.05, *,
                   is_global: bool = False, scope: str = "user") -> None:
        """Answer the next `count` requests whose "METHOD /path" matches `pattern` with a 429."""
        self.rate_limits.append(RateLimitRule(re.compile(pattern), count, retry_after, is_global, scope))

    def server_error(self, pattern: str, count: int = 1, status: int = 503) -> None:
        """Answer the next `count` requests whose "METHOD /path" matches `pattern` with a 5xx (Discord's own trouble:
        discord.py retries 500/502/504 a few times within seconds and raises DiscordServerError on 503 at once)."""
        self.server_errors.append(ServerErrorRule(re.compile(pattern), count, status))

    def tripwire(self, pattern: str, action: Callable[[], None], *,
                 when: Callable[[RecordedRequest], bool] | None = None, skip: int = 0) -> Tripwire:
        """Call ``action`` (synchronously) at the first matching request after ``skip`` matching ones: a REST call
        once the fake has done what it asks (a message created or edited) but before the client has the answer; a
        CDN download as it arrives. For a client killed at an exact point (``os.kill`` in ``action``)."""
        wire = Tripwire(re.compile(pattern), action, when, skip)
        self.tripwires.append(wire)
        return wire

    def trip(self, rec: RecordedRequest) -> None:
        key = f"{rec.method} {rec.path}"
        for wire in self.tripwires:
            if wire.fired is None and wire.pattern.search(key) and (wire.when is None or wire.when(rec)):
                if wire.skip > 0:
                    wire.skip -= 1
                    continue
                wire.fired = rec
                wire.action()

    def take_server_error(self, method: str, path: str) -> ServerErrorRule | None:
        key = f"{method} {path}"
        for rule in self.server_errors:
            if rule.remaining > 0 and rule.pattern.search(key):
                rule.remaining -= 1
                return rule
        return None

    def take_rate_limit(self, method: str, path: str) -> RateLimitRule | None:
        key = f"{method} {path}"
        for rule in self.rate_limits:
            if rule.remaining > 0 and rule.pattern.search(key):
                rule.remaining -= 1
                return rule
        return None

    # ------------------------------------------------------------------ lookups / records
    def bot_messages(self, channel: FakeChannel | None = None, *, include_deleted: bool = False) -> list[FakeMessage]:
        return [m for m in self.messages.values()
                if m.author is self.bot_user and (channel is None or m.channel is channel)
                and (include_deleted or not m.deleted)]

    def interaction_by_token(self, token: str) -> InteractionRecord | None:
        return next((r for r in self.interactions if r.token == token), None)

    def bot_permissions(self, channel: FakeChannel) -> int:
        """The bot's permissions in ``channel`` (channel overwrites included)."""
        if channel.guild is None:
            return Perm.DEFAULT
        member = channel.guild.member(self.bot_user)
        return member.permissions_in(channel) if member else 0

    def _notify(self) -> None:
        """Wake every waiter: something changed (request, message, ack...)."""
        self._changed.set()
        self._changed = asyncio.Event()

    def recent_requests(self, n: int = 15) -> str:
        lines = [repr(r) for r in self.requests[-n:]]
        if self.unknown_routes:
            lines.append(f"unknown routes: {self.unknown_routes}")
        return "\n  ".join(["recent requests:", *lines]) if lines else "no requests were made"

    async def wait_for(self, fn: Callable[[], T | None], timeout: float = 5.0,
                       what: str | Callable[[], str] = "condition") -> T:
        """Return the first truthy `fn()`, re-checked on every state change; bounded by `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            result = fn()
            if result:
                return result
            left = deadline - time.monotonic()
            if left <= 0:
                desc = what() if callable(what) else what
                raise AssertionError(f"timed out after {timeout:.1f}s waiting for {desc}\n  "
                                     + self.recent_requests())
            try:
                # re-check at least every 50 ms too: some conditions depend on time passing
                await asyncio.wait_for(self._changed.wait(), timeout=min(left, 0.05))
            except TimeoutError:
                pass


@contextlib.asynccontextmanager
async def serving_fake() -> AsyncIterator[FakeDiscord]:
    """A started fake Discord on 127.0.0.1, stopped afterwards; then fails if an unknown route was hit (unless the
    test set ``allow_unknown_routes``). The body of every e2e fixture, whatever its event-loop scope."""
    logging.getLogger("fakediscord").setLevel(logging.INFO)
    async with FakeDiscord() as fake:
        yield fake
    if not fake.allow_unknown_routes:
        assert fake.unknown_routes == [], f"the client called routes the fake does not know: {fake.unknown_routes}"

"""REST API v10 handlers: routing, request recording, Discord-style errors and rate limits."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import interactions, messages  # noqa: F401  (their handlers register themselves)
from .routing import ROUTES, Call, DiscordError, discord_json, route, unknown_channel
from .state import Perm, RecordedRequest, RegisteredCommand, UploadedFile, snowflake

if TYPE_CHECKING:
    from .server import FakeDiscord

log = logging.getLogger("fakediscord.rest")


def _error_response(err: DiscordError) -> web.Response:
    body: dict[str, Any] = {"message": err.message, "code": err.code}
    if err.errors:
        body["errors"] = err.errors
    return discord_json(body, status=err.status, headers=_ratelimit_headers("error"))


def _ratelimit_headers(bucket: str) -> dict[str, str]:
    # Generous numbers so discord.py never pre-emptively sleeps on a healthy route.
    return {
        "X-RateLimit-Limit": "50",
        "X-RateLimit-Remaining": "49",
        "X-RateLimit-Reset": f"{time.time() + 1:.3f}",
        "X-RateLimit-Reset-After": "1.000",
        "X-RateLimit-Bucket": hashlib.sha1(bucket.encode()).hexdigest()[:16],
    }


def _429(rule: Any, route_key: str) -> web.Response:
    headers = {
        "Retry-After": str(max(1, math.ceil(rule.retry_after))),
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": f"{time.time() + rule.retry_after:.3f}",
        "X-RateLimit-Reset-After": f"{rule.retry_after:.3f}",
        "X-RateLimit-Bucket": hashlib.sha1(route_key.encode()).hexdigest()[:16],
        "X-RateLimit-Scope": "global" if rule.is_global else rule.scope,
        # discord.py treats a 429 without Via as a Cloudflare ban and does not retry
        "Via": "1.1 google",
    }
    if rule.is_global:
        headers["X-RateLimit-Global"] = "true"
    body = {"message": "You are being rate limited.", "retry_after": rule.retry_after,
            "global": rule.is_global, "code": 0}
    return discord_json(body, status=429, headers=headers)


async def _parse_body(request: web.Request, rec: RecordedRequest) -> tuple[Any, list[UploadedFile]]:
    ctype = request.content_type
    if ctype == "application/json":
        raw = await request.read()
        rec.body_size = len(raw)
        return (json.loads(raw) if raw else None), []
    if ctype.startswith("multipart/"):
        payload: Any = None
        files: list[UploadedFile] = []
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            data = await part.read()  # type: ignore[union-attr]
            rec.body_size += len(data)
            name = part.name or ""  # type: ignore[union-attr]
            if name == "payload_json":
                payload = json.loads(data)
            elif part.filename is not None:  # type: ignore[union-attr]
                files.append(UploadedFile(name, part.filename, part.headers.get("Content-Type"),  # type: ignore[union-attr]
                                          bytes(data)))
            else:
                # discord.py never sends other plain fields; keep them visible in the record
                payload = payload or {}
                payload[name] = data.decode("utf-8", "replace")
        return payload, files
    rec.body_size = len(await request.read())
    return None, []


async def handle(fake: FakeDiscord, request: web.Request) -> web.StreamResponse:
    path = "/" + request.match_info["tail"]
    rec = RecordedRequest(fake.now(), request.method, path, None, dict(request.query))
    fake.requests.append(rec)
    try:
        json_body, files = await _parse_body(request, rec)
    except Exception as exc:  # a malformed body is a client bug worth seeing
        log.error("fakediscord: cannot parse body of %s %s: %r", request.method, path, exc)
        json_body, files = None, []
    rec.json, rec.files = json_body, files

    for method, pattern, regex, fn in ROUTES:
        if method != request.method:
            continue
        m = regex.match(path)
        if not m:
            continue
        rec.route = pattern
        rule = fake.take_rate_limit(request.method, path)
        if rule is not None:
            rec.status, rec.error_code = 429, None
            fake._notify()
            return _429(rule, f"{method} {pattern}")
        outage = fake.take_server_error(request.method, path)
        if outage is not None:
            rec.status, rec.error_code = outage.status, 0
            fake._notify()
            return discord_json({"message": "Service Unavailable", "code": 0}, status=outage.status)
        call = Call(fake, request, m.groupdict(), json_body, files, rec)
        try:
            if pattern not in _NO_AUTH:
                _check_auth(fake, request)
            result = await fn(call)
        except DiscordError as err:
            rec.status, rec.error_code = err.status, err.code
            fake.trip(rec)
            log.info("fakediscord: %s %s -> %s %s %s", request.method, path, err.status, err.code, err.message)
            fake._notify()
            return _error_response(err)
        fake._notify()
        fake.trip(rec)
        if isinstance(result, web.StreamResponse):
            rec.status = result.status
            return result
        if result is None:
            rec.status = 204
            return web.Response(status=204, headers=_ratelimit_headers(pattern))
        rec.status = 200
        return discord_json(result, headers=_ratelimit_headers(pattern))

    return await unknown(fake, request, rec)


async def unknown(fake: FakeDiscord, request: web.Request, rec: RecordedRequest | None = None) -> web.Response:
    key = f"{request.method} {rec.path if rec is not None else request.path}"
    if rec is None:
        rec = RecordedRequest(fake.now(), request.method, request.path, None, dict(request.query))
        fake.requests.append(rec)
        await request.read()
    rec.status, rec.error_code = 404, 0
    fake.unknown_routes.append(key)
    log.error("fakediscord: UNKNOWN ROUTE %s (not implemented by the fake; add a handler or fix the call)", key)
    fake._notify()
    return discord_json({"message": "404: Not Found", "code": 0}, status=404)


_NO_AUTH = {
    "/interactions/{interaction_id}/{token}/callback",
    "/webhooks/{app_id}/{token}",
    "/webhooks/{app_id}/{token}/messages/@original",
    "/webhooks/{app_id}/{token}/messages/{message_id}",
}


def _check_auth(fake: FakeDiscord, request: web.Request) -> None:
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bot ") or (fake.config.token is not None and auth[4:] != fake.config.token):
        raise DiscordError(401, 0, "401: Unauthorized")


# ---------------------------------------------------------------------------- gateway / identity
@route("GET", "/gateway")
async def get_gateway(c: Call) -> Any:
    return {"url": c.fake.gateway_url}


@route("GET", "/gateway/bot")
async def get_gateway_bot(c: Call) -> Any:
    return {"url": c.fake.gateway_url, "shards": c.fake.config.shard_count,
            "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}}


@route("GET", "/users/@me")
async def get_me(c: Call) -> Any:
    data = c.fake.bot_user.payload()
    data.update({"verified": True, "mfa_enabled": False, "email": None, "locale": "en-US"})
    return data


@route("GET", "/users/{user_id}")
async def get_user(c: Call) -> Any:
    user = c.fake.users.get(c.int_param("user_id"))
    if user is None:
        raise DiscordError(404, 10013, "Unknown User")
    return user.payload()


def _app_info(fake: FakeDiscord) -> dict[str, Any]:
    return {
        "id": str(fake.application_id),
        "name": fake.bot_user.name,
        "icon": None,
        "description": "",
        "rpc_origins": [],
        "bot_public": True,
        "bot_require_code_grant": False,
        "bot": fake.bot_user.payload(),
        "owner": fake.owner.payload(),
        "summary": "",
        "verify_key": "0" * 64,
        "team": None,
        "flags": fake.config.app_flags,  # default GATEWAY_MESSAGE_CONTENT_LIMITED
        "interactions_endpoint_url": None,
        "tags": [],
    }


@route("GET", "/applications/@me")
async def get_application(c: Call) -> Any:
    return _app_info(c.fake)


@route("GET", "/oauth2/applications/@me")
async def get_oauth_application(c: Call) -> Any:
    return _app_info(c.fake)


# ---------------------------------------------------------------------------- application commands
def _check_app(c: Call) -> None:
    if c.int_param("app_id") != c.fake.application_id:
        raise DiscordError(403, 50001, "Missing Access")


def _guild_id(c: Call) -> int | None:
    if "guild_id" not in c.params:
        return None
    gid = c.int_param("guild_id")
    if gid not in c.fake.guilds:
        raise DiscordError(404, 10004, "Unknown Guild")
    return gid


def _command_payload(c: Call, cmd: RegisteredCommand) -> dict[str, Any]:
    data = dict(cmd.payload)
    data.update({"id": str(cmd.id), "application_id": str(c.fake.application_id), "version": str(cmd.id),
                 "type": cmd.type, "name": cmd.name})
    data.setdefault("description", "")
    data.setdefault("options", [])
    data.setdefault("default_member_permissions", None)
    data.setdefault("dm_permission", True)
    data.setdefault("nsfw", False)
    if cmd.guild_id is not None:
        data["guild_id"] = str(cmd.guild_id)
    return data


def _validate_command(body: Any) -> None:
    if not isinstance(body, dict) or not body.get("name"):
        raise DiscordError(400, 50035, "Invalid Form Body", {"name": {"_errors": [{"code": "BASE_TYPE_REQUIRED"}]}})
    if int(body.get("type", 1)) == 1 and not re.fullmatch(r"[-_\w]{1,32}", body["name"]):
        raise DiscordError(400, 50035, "Invalid Form Body",
                           {"name": {"_errors": [{"code": "APPLICATION_COMMAND_INVALID_NAME"}]}})


def _upsert(c: Call, guild_id: int | None, body: dict[str, Any]) -> RegisteredCommand:
    _validate_command(body)
    ctype = int(body.get("type", 1))
    for cmd in c.fake.commands:
        if cmd.guild_id == guild_id and cmd.name == body["name"] and cmd.type == ctype:
            cmd.payload = body
            return cmd
    cmd = RegisteredCommand(snowflake(), body["name"], ctype, guild_id, body)
    c.fake.commands.append(cmd)
    return cmd


@route("GET", "/applications/{app_id}/commands")
@route("GET", "/applications/{app_id}/guilds/{guild_id}/commands")
async def list_commands(c: Call) -> Any:
    _check_app(c)
    gid = _guild_id(c)
    return [_command_payload(c, cmd) for cmd in c.fake.commands if cmd.guild_id == gid]


@route("PUT", "/applications/{app_id}/commands")
@route("PUT", "/applications/{app_id}/guilds/{guild_id}/commands")
async def bulk_overwrite_commands(c: Call) -> Any:
    _check_app(c)
    gid = _guild_id(c)
    if not isinstance(c.json, list):
        raise DiscordError(400, 50035, "Invalid Form Body")
    if len(c.json) > 100:
        raise DiscordError(400, 30032, "Maximum number of application commands reached (100)")
    keep = [cmd for cmd in c.fake.commands if cmd.guild_id != gid]
    c.fake.commands = keep
    return [_command_payload(c, _upsert(c, gid, body)) for body in c.json]


@route("POST", "/applications/{app_id}/commands")
@route("POST", "/applications/{app_id}/guilds/{guild_id}/commands")
async def create_command(c: Call) -> Any:
    _check_app(c)
    return _command_payload(c, _upsert(c, _guild_id(c), c.json))


def _find_command(c: Call) -> RegisteredCommand:
    gid = _guild_id(c)
    cid = c.int_param("command_id")
    for cmd in c.fake.commands:
        if cmd.id == cid and cmd.guild_id == gid:
            return cmd
    raise DiscordError(404, 10063, "Unknown application command")


@route("GET", "/applications/{app_id}/commands/{command_id}")
@route("GET", "/applications/{app_id}/guilds/{guild_id}/commands/{command_id}")
async def get_command(c: Call) -> Any:
    _check_app(c)
    return _command_payload(c, _find_command(c))


@route("PATCH", "/applications/{app_id}/commands/{command_id}")
@route("PATCH", "/applications/{app_id}/guilds/{guild_id}/commands/{command_id}")
async def edit_command(c: Call) -> Any:
    _check_app(c)
    cmd = _find_command(c)
    cmd.payload = {**cmd.payload, **(c.json or {})}
    return _command_payload(c, cmd)


@route("DELETE", "/applications/{app_id}/commands/{command_id}")
@route("DELETE", "/applications/{app_id}/guilds/{guild_id}/commands/{command_id}")
async def delete_command(c: Call) -> Any:
    _check_app(c)
    cmd = _find_command(c)
    c.fake.commands.remove(cmd)
    return None


# ---------------------------------------------------------------------------- channels / guilds
@route("GET", "/channels/{channel_id}")
async def get_channel(c: Call) -> Any:
    ch = c.fake.channels.get(c.int_param("channel_id"))
    if ch is None:
        raise unknown_channel()
    if not ch.is_dm and not c.fake.bot_permissions(ch) & Perm.VIEW_CHANNEL:
        raise DiscordError(403, 50001, "Missing Access")
    return ch.payload()


@route("POST", "/users/@me/channels")
async def create_dm(c: Call) -> Any:
    rid = int((c.json or {}).get("recipient_id", 0))
    user = c.fake.users.get(rid)
    if user is None:
        raise DiscordError(400, 50035, "Invalid Form Body", {"recipient_id": {"_errors": [{"code": "INVALID"}]}})
    return c.fake.add_dm_channel(user).payload()


@route("POST", "/channels/{channel_id}/typing")
async def typing(c: Call) -> Any:
    ch = c.fake.channels.get(c.int_param("channel_id"))
    if ch is None:
        raise unknown_channel()
    if not ch.is_dm:
        perms = c.fake.bot_permissions(ch)
        if not perms & Perm.VIEW_CHANNEL:
            raise DiscordError(403, 50001, "Missing Access")
        if not perms & Perm.SEND_MESSAGES:
            raise DiscordError(403, 50013, "Missing Permissions")
    return None


def _guild(c: Call) -> Any:
    guild = c.fake.guilds.get(c.int_param("guild_id"))
    if guild is None:
        raise DiscordError(404, 10004, "Unknown Guild")
    return guild


@route("GET", "/guilds/{guild_id}")
async def get_guild(c: Call) -> Any:
    guild = _guild(c)
    data = guild.payload([])
    for key in ("members", "channels", "threads", "presences", "voice_states", "joined_at", "large",
                "unavailable", "member_count"):
        data.pop(key, None)
    data["approximate_member_count"] = len(guild.members)
    return data


@route("GET", "/guilds/{guild_id}/channels")
async def get_guild_channels(c: Call) -> Any:
    return [ch.payload() for ch in _guild(c).channels]


@route("GET", "/guilds/{guild_id}/roles")
async def get_roles(c: Call) -> Any:
    return [r.payload() for r in _guild(c).roles]


@route("GET", "/guilds/{guild_id}/members/{user_id}")
async def get_member(c: Call) -> Any:
    member = _guild(c).member(c.int_param("user_id"))
    if member is None:
        raise DiscordError(404, 10007, "Unknown Member")
    return member.payload()


@route("GET", "/guilds/{guild_id}/members")
async def list_members(c: Call) -> Any:
    limit = int(c.query.get("limit", 1))
    after = int(c.query.get("after", 0))
    members = sorted(_guild(c).members.values(), key=lambda m: m.user.id)
    return [m.payload() for m in members if m.user.id > after][:limit]


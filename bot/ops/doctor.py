"""``nst-bot doctor`` (``make doctor``): check everything the bot needs before it goes live, one line per check.

Checks, in order: the settings parse; the token is set and shaped like a bot token; the VGG19 weights load and one
tiny forward pass runs on the configured device (with a Ray cluster instead: its head answers and this machine has
joined it); the database is writable and at the current schema version; Discord's API is reachable, accepts the
token, and whether the application has the Message Content intent (only `!style` needs it: without it that is a
warning, unless MESSAGE_CONTENT_INTENT=on). Each failure says how to fix it; the exit code is 1 when any check failed
(warnings do not count). The invite link is printed at the end.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import aiohttp
from pydantic import ValidationError

from bot.config import Settings
from bot.ops.invite import invite_url
from nst_engine.pool.settings import describe_settings_error

PORTAL = "Discord Developer Portal → your application → Bot"
GATEWAY_MESSAGE_CONTENT = 1 << 18
GATEWAY_MESSAGE_CONTENT_LIMITED = 1 << 19
_TOKEN = re.compile(r"^([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    skipped: bool = False
    warning: bool = False  # ok (the bot runs), but something works less than it could

    def line(self) -> str:
        mark = "skip" if self.skipped else ("warn" if self.warning else ("ok" if self.ok else "FAIL"))
        text = f"[{mark:>4}] {self.name}: {self.detail}"
        return f"{text} — fix: {self.fix}" if self.fix and (self.warning or not self.ok) else text


def check_token(settings: Settings) -> tuple[Check, int | None]:
    """The token's shape (offline); also the application id it encodes, for the invite link."""
    raw = settings.discord_token.get_secret_value() if settings.discord_token is not None else ""
    token = raw.strip()
    if not token:
        return Check("token", False, "DISCORD_TOKEN is not set",
                     f"copy .env.example to .env and set DISCORD_TOKEN ({PORTAL} → Reset Token)"), None
    if token.lower().startswith("bot "):
        return Check("token", False, "DISCORD_TOKEN starts with 'Bot '",
                     "put only the token itself into DISCORD_TOKEN, without the 'Bot ' prefix"), None
    if token[0] in "\"'" or token[-1] in "\"'":
        return Check("token", False, "DISCORD_TOKEN is wrapped in quotes", "remove the quotes around the token"), None
    match = _TOKEN.match(token)
    app_id = _decode_id(match.group(1)) if match else None
    if match is None or app_id is None or len(match.group(3)) < 20:
        return Check("token", False, "DISCORD_TOKEN does not look like a bot token (three dot-separated parts, the "
                     "first naming the bot's id)",
                     f"copy the token again ({PORTAL} → Reset Token); the client secret is not the token"), None
    return Check("token", True, f"shaped like a bot token for application {app_id}"), app_id


def _decode_id(part: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return int(text) if text.isdigit() else None


def check_weights(settings: Settings) -> Check:
    """Load the weights and run one tiny forward pass on the configured device (imports torch: seconds)."""
    spec = settings.nst_weights.strip()
    try:
        import torch

        from nst_engine.device import resolve_device
        from nst_engine.engine import load_vgg
        from nst_engine.errors import NSTError

        started = time.perf_counter()
        device = resolve_device(settings.nst_device)
        model = load_vgg(spec, device)
        layer = model.available_layers()[-1]
        with torch.no_grad():
            out = model(torch.rand(1, 3, 64, 64, device=device), (layer,))[layer]
        if not bool(torch.isfinite(out).all()):
            return Check("weights", False, f"{spec} gives non-finite activations on {device}",
                         "the weights file is damaged; download it again")
        seconds = time.perf_counter() - started
    except NSTError as exc:
        fix = "set NST_WEIGHTS to imagenet or to the path of a VGG19 state_dict file"
        if "device" in str(exc):
            fix = "set NST_DEVICE to auto, cpu, or a CUDA device this machine has"
        return Check("weights", False, str(exc), fix)
    except Exception as exc:  # a CUDA or torch failure: report it in one line
        return Check("weights", False, f"{type(exc).__name__}: {exc}".splitlines()[0],
                     "check NST_DEVICE and the GPU driver (`nvidia-smi`), or use NST_DEVICE=cpu")
    note = " (random weights: for tests only)" if spec == "random" else ""
    return Check("weights", True, f"{model.source} loaded and ran on {device} in {seconds:.1f} s{note}")


def check_cluster(address: str) -> Check:
    """With a Ray cluster: its head answers and this machine runs a node of it (the bot's way in; no Ray import)."""
    from nst_engine.errors import NSTError
    from nst_engine.pool.ray_attach import check_head_reachable, node_ip_for

    try:
        check_head_reachable(address)
        node_ip = node_ip_for(address)
    except NSTError as exc:
        detail, _, fix = str(exc).partition(": ")
        return Check("ray cluster", False, detail, fix)
    return Check("ray cluster", True, f"the head at {address} answers; this machine's node is {node_ip}")


async def check_database(settings: Settings) -> Check:
    """Open (creating if needed), migrate and write to the database, as the bot will at start-up."""
    from bot.storage.db import SCHEMA_VERSION, Database

    path = Path(settings.database_path)
    existed = await asyncio.to_thread(path.exists)
    db = Database(path)
    try:
        await db.open()
        version = await db.version()
        await db.conn.execute("UPDATE schema_version SET version = version")  # a real write
        await db.conn.commit()
    except (OSError, sqlite3.Error, RuntimeError) as exc:
        reason = str(exc).splitlines()[0] or type(exc).__name__
        return Check("database", False, f"{path} is not usable: {reason}",
                     "set DATABASE_PATH to a file in a directory the bot can write to")
    finally:
        await db.close()
    if version != SCHEMA_VERSION:
        return Check("database", False, f"{path} is at schema version {version}, not {SCHEMA_VERSION}",
                     "restore a backup or move the file aside")
    made = "created" if not existed else "writable"
    return Check("database", True, f"{path} {made}, schema version {version} (current)")


async def check_discord(settings: Settings, api_base: str, *, timeout: float = 10.0) -> tuple[list[Check], int | None]:
    """Discord's API: reachable, the token accepted, and the Message Content intent enabled."""
    assert settings.discord_token is not None
    headers = {"Authorization": f"Bot {settings.discord_token.get_secret_value().strip()}",
               "User-Agent": "DiscordBot (nst-bot doctor, 1.0)"}
    host = re.sub(r"^https?://([^/]+).*$", r"\1", api_base)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout), headers=headers) as http:
            async with http.get(f"{api_base}/users/@me") as resp:
                if resp.status >= 500:
                    return [Check("discord", False, f"{host} answered HTTP {resp.status}: Discord is having problems",
                                  "wait and try again; see https://discordstatus.com")], None
                if resp.status == 401:
                    return [Check("discord", False, f"{host} refused DISCORD_TOKEN (401 Unauthorized)",
                                  f"the token was reset or mistyped: copy a new one ({PORTAL} → Reset Token)")], None
                if resp.status != 200:
                    return [Check("discord", False, f"{host} answered HTTP {resp.status} to GET /users/@me",
                                  "check the network's proxy or firewall")], None
                me = await resp.json()
            async with http.get(f"{api_base}/oauth2/applications/@me") as resp:
                app = await resp.json() if resp.status == 200 else {}
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (str(exc) or type(exc).__name__)
        return [Check("discord", False, f"cannot reach {host}: {reason}",
                      "check the network, DNS and any proxy (the bot needs HTTPS to discord.com)")], None
    app_id = int(app.get("id") or me.get("id"))
    checks = [Check("discord", True, f"{host} reachable; logged in as {me.get('username')} (id {me.get('id')})")]
    checks.append(check_intents(settings, int(app.get("flags") or 0)))
    return checks, app_id


def check_intents(settings: Settings, app_flags: int) -> Check:
    """The Message Content intent against MESSAGE_CONTENT_INTENT: only `!style` needs it."""
    prefix = f"{settings.bot_prefix}style"
    enable = f"{PORTAL} → Privileged Gateway Intents → enable Message Content"
    if settings.message_content_intent == "off":
        return Check("intents", True, f"Message Content not asked for (MESSAGE_CONTENT_INTENT=off): {prefix} is off")
    if app_flags & (GATEWAY_MESSAGE_CONTENT | GATEWAY_MESSAGE_CONTENT_LIMITED):
        return Check("intents", True, "the Message Content intent is enabled")
    if settings.message_content_intent == "on":
        return Check("intents", False, "the Message Content intent is off, so Discord will refuse the bot "
                     "(MESSAGE_CONTENT_INTENT=on)", f"{enable}, or set MESSAGE_CONTENT_INTENT=auto")
    return Check("intents", True, f"the Message Content intent is off: the bot starts without it and {prefix} is "
                 "off (slash commands, Stylize and @mentions work)", f"{enable} to use {prefix}", warning=True)


async def run_checks(
    *, settings_factory: Callable[[], Settings] = Settings, api_base: str | None = None, weights: bool = True
) -> tuple[list[Check], int | None]:
    """Every check, in order (later ones are skipped when what they need failed); and the application id."""
    try:
        settings = settings_factory()
    except ValidationError as exc:
        return [Check("settings", False, describe_settings_error(exc), "correct these in .env or the environment"),
                Check("other checks", False, "not run: the settings must load first", skipped=True)], None
    checks = [Check("settings", True, "loaded from the environment and .env")]
    token_check, app_id = check_token(settings)
    checks.append(token_check)
    if settings.nst_backend == "ray" and settings.ray_address:
        checks.append(await asyncio.to_thread(check_cluster, settings.ray_address))  # the weights load out there
    elif weights:
        checks.append(await asyncio.to_thread(check_weights, settings))
    checks.append(await check_database(settings))
    if token_check.ok:
        if api_base is None:
            import discord.http

            api_base = discord.http.Route.BASE
        discord_checks, real_id = await check_discord(settings, api_base)
        checks += discord_checks
        app_id = real_id or app_id
    else:
        checks.append(Check("discord", False, "not checked without a usable token", skipped=True))
    return checks, app_id


def main(out: TextIO | None = None) -> int:
    out = out if out is not None else sys.stdout
    checks, app_id = asyncio.run(run_checks())
    for check in checks:
        print(check.line(), file=out, flush=True)
    failed = [c for c in checks if not c.ok and not c.skipped]
    warned = [c for c in checks if c.warning]
    if app_id is not None:
        print(f"invite link: {invite_url(app_id)}", file=out)
    if failed:
        print(f"{len(failed)} check(s) failed.", file=out)
    else:
        print(f"All checks passed ({len(warned)} warning(s))." if warned else "All checks passed.", file=out)
    return 1 if failed else 0

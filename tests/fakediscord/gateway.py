"""Gateway websocket: hello/identify/READY/GUILD_CREATE, heartbeats, resume, dispatch with intents + zlib-stream."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from .state import FakeMessage

if TYPE_CHECKING:
    from .server import FakeDiscord

log = logging.getLogger("fakediscord.gateway")

# opcodes
DISPATCH, HEARTBEAT, IDENTIFY, PRESENCE, VOICE_STATE, RESUME, RECONNECT, REQUEST_MEMBERS = 0, 1, 2, 3, 4, 6, 7, 8
INVALIDATE_SESSION, HELLO, HEARTBEAT_ACK = 9, 10, 11

# intents
GUILDS, GUILD_MEMBERS, GUILD_PRESENCES = 1 << 0, 1 << 1, 1 << 8
GUILD_MESSAGES, DIRECT_MESSAGES, MESSAGE_CONTENT = 1 << 9, 1 << 12, 1 << 15


class Connection:
    """One websocket; serialises sends because the zlib stream is stateful."""

    def __init__(self, ws: web.WebSocketResponse, compress: str | None) -> None:
        self.ws = ws
        self.compress = compress
        self._zlib = zlib.compressobj() if compress == "zlib-stream" else None
        self._lock = asyncio.Lock()

    async def send(self, payload: dict[str, Any]) -> None:
        text = json.dumps(payload, separators=(",", ":"))
        async with self._lock:
            if self.ws.closed:
                return
            try:
                if self._zlib is not None:
                    data = self._zlib.compress(text.encode()) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
                    await self.ws.send_bytes(data)
                else:
                    await self.ws.send_str(text)
            except (ConnectionError, RuntimeError) as exc:  # client went away mid-send: it will resume
                log.info("gateway send failed: %r", exc)


@dataclass(eq=False)
class Session:
    id: str
    intents: int
    seq: int = 0
    conn: Connection | None = None
    #: everything dispatched, for RESUME replay
    sent: list[dict[str, Any]] = field(default_factory=list)
    identify: dict[str, Any] = field(default_factory=dict)
    #: [shard_id, num_shards] from IDENTIFY
    shard: tuple[int, int] = (0, 1)

    def owns(self, guild_id: int | None) -> bool:
        """Discord's routing: a guild belongs to shard (guild_id >> 22) % num_shards; DMs go to shard 0."""
        shard_id, count = self.shard
        if guild_id is None:
            return shard_id == 0
        return (guild_id >> 22) % count == shard_id


class Gateway:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.sessions: dict[str, Session] = {}
        self.identify_count = 0
        #: (intents asked for, close code) of each IDENTIFY refused, e.g. a privileged intent not enabled: 4014
        self.refused_identifies: list[tuple[int, int]] = []
        self.resume_count = 0
        self.heartbeats = 0
        self._sockets: set[web.WebSocketResponse] = set()

    # ------------------------------------------------------------------ dispatch
    async def dispatch(self, event: str, data: dict[str, Any], *, intent: int | None = None,
                       guild_id: int | None = None) -> None:
        """Send ``event`` to every session that asked for ``intent`` and whose shard owns ``guild_id``
        (None: a DM or guild-less event, shard 0)."""
        for session in list(self.sessions.values()):
            if intent is not None and not session.intents & intent:
                continue
            if not session.owns(guild_id):
                continue
            await self._send_event(session, event, data)

    async def dispatch_message(self, event: str, data: dict[str, Any], msg: FakeMessage) -> None:
        """MESSAGE_* events honour GUILD_MESSAGES / DIRECT_MESSAGES and the message_content intent."""
        intent = DIRECT_MESSAGES if msg.channel.is_dm else GUILD_MESSAGES
        guild_id = msg.channel.guild.id if msg.channel.guild is not None else None
        for session in list(self.sessions.values()):
            if not session.intents & intent or not session.owns(guild_id):
                continue
            payload = data
            if (event != "MESSAGE_DELETE" and not msg.channel.is_dm and not session.intents & MESSAGE_CONTENT
                    and msg.author is not self.fake.bot_user
                    and all(u is not self.fake.bot_user for u in msg.mentions)):
                # Discord blanks these for apps without the privileged message_content intent
                payload = {**data, "content": "", "embeds": [], "attachments": [], "components": []}
            await self._send_event(session, event, payload)

    async def _send_event(self, session: Session, event: str, data: dict[str, Any]) -> None:
        session.seq += 1
        payload = {"op": DISPATCH, "t": event, "s": session.seq, "d": data}
        session.sent.append(payload)
        if session.conn is not None:
            await session.conn.send(payload)

    async def close_all(self) -> None:
        for ws in list(self._sockets):
            await ws.close(code=1001)

    async def reconnect(self) -> None:
        """Ask every client to reconnect (op 7): discord.py then RESUMEs."""
        for session in self.sessions.values():
            if session.conn is not None:
                await session.conn.send({"op": RECONNECT, "d": None})

    async def drop(self) -> None:
        """Close every socket abruptly (code 4000), like a network blip; clients should resume."""
        for ws in list(self._sockets):
            await ws.close(code=4000)

    # ------------------------------------------------------------------ websocket handler
    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0, autoping=True)
        await ws.prepare(request)
        compress = request.query.get("compress")
        if compress not in (None, "zlib-stream"):
            log.error("fakediscord: gateway compression %r not supported (only zlib-stream)", compress)
            await ws.close(code=4000, message=b"unsupported compression")
            return ws
        if request.query.get("encoding", "json") != "json":
            log.error("fakediscord: gateway encoding %r not supported", request.query.get("encoding"))
            await ws.close(code=4000)
            return ws
        conn = Connection(ws, compress)
        self._sockets.add(ws)
        session: Session | None = None
        try:
            await conn.send({"op": HELLO, "d": {"heartbeat_interval": self.fake.config.heartbeat_interval_ms}})
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                session = await self._on_frame(conn, session, frame) or session
        finally:
            self._sockets.discard(ws)
            if session is not None and session.conn is conn:
                session.conn = None
        return ws

    async def _on_frame(self, conn: Connection, session: Session | None, frame: dict[str, Any]) -> Session | None:
        op, d = frame.get("op"), frame.get("d")
        if op == HEARTBEAT:
            self.heartbeats += 1
            await conn.send({"op": HEARTBEAT_ACK, "d": None})
        elif op == IDENTIFY:
            intents = int((d or {}).get("intents", 0))
            if intents & MESSAGE_CONTENT and not self.fake.config.app_flags & (3 << 18):
                self.refused_identifies.append((intents, 4014))
                await conn.ws.close(code=4014, message=b"Disallowed intent(s).")
                return None
            return await self._identify(conn, d or {})
        elif op == RESUME:
            return await self._resume(conn, d or {})
        elif op == REQUEST_MEMBERS and session is not None:
            await self._members_chunk(session, d or {})
        elif op in (PRESENCE, VOICE_STATE):
            pass
        else:
            log.error("fakediscord: unexpected gateway op %r", op)
        return None

    async def _identify(self, conn: Connection, d: dict[str, Any]) -> Session | None:
        fake = self.fake
        self.identify_count += 1
        shard = d.get("shard") or [0, 1]
        try:
            shard_id, count = int(shard[0]), int(shard[1])
        except (TypeError, ValueError, IndexError):
            shard_id, count = -1, 0
        if not 0 <= shard_id < count:
            log.error("fakediscord: IDENTIFY with invalid shard %r", shard)
            await conn.ws.close(code=4010, message=b"Invalid shard.")
            return None
        session = Session(secrets.token_hex(16), int(d.get("intents", 0)), conn=conn, identify=d,
                          shard=(shard_id, count))
        self.sessions[session.id] = session
        ready = {
            "v": 10,
            "user": {**fake.bot_user.payload(), "verified": True, "mfa_enabled": False},
            "guilds": [{"id": str(g.id), "unavailable": True} for g in fake.guilds.values()
                       if g.member(fake.bot_user) is not None and session.owns(g.id)],
            "session_id": session.id,
            "resume_gateway_url": fake.gateway_url,
            "shard": [shard_id, count],
            "application": {"id": str(fake.application_id), "flags": fake.config.app_flags},
            "private_channels": [],
            "relationships": [],
            "presences": [],
        }
        await self._send_event(session, "READY", ready)
        for guild in fake.guilds.values():
            if guild.member(fake.bot_user) is None or not session.owns(guild.id):
                continue
            # Without GUILD_PRESENCES Discord only includes the bot itself; discord.py then chunks (op 8)
            if session.intents & GUILD_PRESENCES:
                members = list(guild.members.values())
            else:
                members = [m for m in guild.members.values() if m.user is fake.bot_user]
            await self._send_event(session, "GUILD_CREATE", guild.payload(members))
        fake._notify()
        return session

    async def _resume(self, conn: Connection, d: dict[str, Any]) -> Session | None:
        session = self.sessions.get(str(d.get("session_id")))
        if session is None:
            await conn.send({"op": INVALIDATE_SESSION, "d": False})
            return None
        self.resume_count += 1
        session.conn = conn
        last = int(d.get("seq") or 0)
        for payload in session.sent:
            if payload["s"] > last:
                await conn.send(payload)
        await self._send_event(session, "RESUMED", {})
        self.fake._notify()
        return session

    async def _members_chunk(self, session: Session, d: dict[str, Any]) -> None:
        guild = self.fake.guilds.get(int(d.get("guild_id", 0)))
        if guild is None:
            return
        members = list(guild.members.values())
        if d.get("user_ids"):
            wanted = {int(u) for u in d["user_ids"]}
            members = [m for m in members if m.user.id in wanted]
        elif d.get("query"):
            members = [m for m in members if m.user.name.lower().startswith(str(d["query"]).lower())]
        limit = int(d.get("limit") or 0)
        if limit:
            members = members[:limit]
        chunk: dict[str, Any] = {"guild_id": str(guild.id), "members": [m.payload() for m in members],
                                 "chunk_index": 0, "chunk_count": 1, "not_found": []}
        if d.get("nonce"):
            chunk["nonce"] = d["nonce"]
        await self._send_event(session, "GUILD_MEMBERS_CHUNK", chunk)

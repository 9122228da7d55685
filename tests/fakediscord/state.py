"""In-memory model of the fake Discord: users, guilds, channels, messages, interactions, records.

Every object knows how to render itself as the JSON payload Discord would send, so the REST and
gateway layers only decide *when* to send what.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

DISCORD_EPOCH_MS = 1_420_070_400_000
_counter = itertools.count(1)


def snowflake(*, age: float = 0.0) -> int:
    """A fresh Discord-style snowflake (timestamp in the top bits), strictly increasing unless ``age`` (seconds)
    backdates its timestamp."""
    ms = int((time.time() - age) * 1000) - DISCORD_EPOCH_MS
    return (ms << 22) | (next(_counter) & 0x3FFFFF)


def iso_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


class Perm:
    """Discord permission bits (only the ones tests care about, plus ALL)."""

    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    SEND_TTS_MESSAGES = 1 << 12
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    MANAGE_ROLES = 1 << 28
    USE_APPLICATION_COMMANDS = 1 << 31
    SEND_MESSAGES_IN_THREADS = 1 << 38
    ALL = (1 << 53) - 1
    #: what @everyone gets in a fresh guild, roughly
    DEFAULT = (
        CREATE_INSTANT_INVITE | ADD_REACTIONS | VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS | ATTACH_FILES
        | READ_MESSAGE_HISTORY | USE_EXTERNAL_EMOJIS | USE_APPLICATION_COMMANDS | SEND_MESSAGES_IN_THREADS
    )


@dataclass(eq=False)
class FakeUser:
    id: int
    name: str
    bot: bool = False
    #: False: the user closed their DMs (or blocked the bot); the bot's DMs get 403 code 50007
    accepts_dms: bool = True

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "username": self.name,
            "discriminator": "0",
            "global_name": self.name,
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
            "flags": 0,
        }

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"


@dataclass(eq=False)
class FakeRole:
    id: int
    name: str
    permissions: int
    position: int = 0
    #: anyone may ping a mentionable role; others need MENTION_EVERYONE
    mentionable: bool = False

    @property
    def mention(self) -> str:
        return f"<@&{self.id}>"

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": 0,
            "hoist": False,
            "managed": False,
            "mentionable": self.mentionable,
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }


@dataclass(eq=False)
class FakeMember:
    user: FakeUser
    guild: FakeGuild
    roles: list[FakeRole] = field(default_factory=list)
    joined_at: str = field(default_factory=iso_now)

    def permissions(self) -> int:
        """Guild-level permissions the way Discord computes them (owner, then @everyone | roles, ADMINISTRATOR)."""
        if self.guild.owner.id == self.user.id:
            return Perm.ALL
        perms = self.guild.everyone_role.permissions
        for role in self.roles:
            perms |= role.permissions
        return Perm.ALL if perms & Perm.ADMINISTRATOR else perms

    def permissions_in(self, channel: FakeChannel) -> int:
        """Permissions in ``channel``: Discord's algorithm (guild permissions, then the @everyone overwrite, the
        member's role overwrites together, the member's own overwrite; deny before allow at each step), with its
        implicit rules (no View Channel: nothing; no Send Messages: no mentions/embeds/files/TTS)."""
        perms = self.permissions()
        if perms & Perm.ADMINISTRATOR or channel.guild is not self.guild:
            return perms if channel.guild is self.guild else 0
        everyone = channel.overwrites.get(self.guild.id)
        if everyone is not None:
            perms = (perms & ~everyone.deny) | everyone.allow
        allow = deny = 0
        for role in self.roles:
            ow = channel.overwrites.get(role.id)
            if ow is not None and ow.type == Overwrite.ROLE:
                allow, deny = allow | ow.allow, deny | ow.deny
        perms = (perms & ~deny) | allow
        own = channel.overwrites.get(self.user.id)
        if own is not None and own.type == Overwrite.MEMBER:
            perms = (perms & ~own.deny) | own.allow
        if not perms & Perm.VIEW_CHANNEL:
            return 0
        if not perms & Perm.SEND_MESSAGES:
            perms &= ~(Perm.SEND_TTS_MESSAGES | Perm.MENTION_EVERYONE | Perm.EMBED_LINKS | Perm.ATTACH_FILES)
        return perms

    def payload(self, *, with_user: bool = True, with_permissions: bool = False,
                channel: FakeChannel | None = None) -> dict[str, Any]:
        """``with_permissions``: add ``permissions`` (in ``channel`` if given, overwrites included, as in interactions)."""
        data: dict[str, Any] = {
            "roles": [str(r.id) for r in self.roles],
            "joined_at": self.joined_at,
            "nick": None,
            "avatar": None,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
            "communication_disabled_until": None,
        }
        if with_user:
            data["user"] = self.user.payload()
        if with_permissions:
            data["permissions"] = str(self.permissions_in(channel) if channel is not None else self.permissions())
        return data


@dataclass
class Overwrite:
    """A channel permission overwrite for a role (type 0) or a member (type 1)."""

    ROLE = 0
    MEMBER = 1

    id: int
    type: int
    allow: int = 0
    deny: int = 0

    def payload(self) -> dict[str, Any]:
        return {"id": str(self.id), "type": self.type, "allow": str(self.allow), "deny": str(self.deny)}


@dataclass(eq=False)
class FakeChannel:
    id: int
    name: str
    guild: FakeGuild | None = None
    recipient: FakeUser | None = None  # DM channels only
    position: int = 0
    #: role or user id -> overwrite (the @everyone role's id is the guild's id)
    overwrites: dict[int, Overwrite] = field(default_factory=dict)

    @property
    def is_dm(self) -> bool:
        return self.guild is None

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"

    def payload(self) -> dict[str, Any]:
        if self.guild is None:
            assert self.recipient is not None
            return {"id": str(self.id), "type": 1, "recipients": [self.recipient.payload()],
                    "last_message_id": None, "flags": 0}
        return {
            "id": str(self.id),
            "type": 0,
            "guild_id": str(self.guild.id),
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [ow.payload() for ow in self.overwrites.values()],
            "topic": None,
            "nsfw": False,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "parent_id": None,
            "flags": 0,
        }


@dataclass(eq=False)
class FakeGuild:
    id: int
    name: str
    owner: FakeUser
    roles: list[FakeRole] = field(default_factory=list)
    members: dict[int, FakeMember] = field(default_factory=dict)
    channels: list[FakeChannel] = field(default_factory=list)
    #: per-guild upload limit in bytes (None: use FakeConfig.upload_limit)
    upload_limit: int | None = None
    joined_at: str = field(default_factory=iso_now)

    @property
    def everyone_role(self) -> FakeRole:
        return self.roles[0]

    def member(self, user: FakeUser | int) -> FakeMember | None:
        uid = user if isinstance(user, int) else user.id
        return self.members.get(uid)

    def payload(self, members: list[FakeMember]) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "owner_id": str(self.owner.id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [r.payload() for r in self.roles],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "vanity_url_code": None,
            "description": None,
            "banner": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "public_updates_channel_id": None,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "joined_at": self.joined_at,
            "large": False,
            "unavailable": False,
            "member_count": len(self.members),
            "voice_states": [],
            "members": [m.payload() for m in members],
            "channels": [c.payload() for c in self.channels],
            "threads": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }


@dataclass
class FileSpec:
    """A file a fake user attaches (to a message or an attachment option)."""

    filename: str
    data: bytes
    content_type: str | None = None


@dataclass(eq=False)
class CdnFault:
    kind: str  # "404" | "slow" | "truncated" | "content_type" | "huge"
    delay: float = 0.0
    chunk_delay: float = 0.0
    send_bytes: int | None = None
    content_type: str | None = None
    size: int | None = None
    lie_length: int | None = None
    #: up to this many seconds between the response headers and the first body byte, cut short when the client
    #: hangs up (as one that refuses a Content-Length over its cap does: the request records ``body_sent == 0``)
    body_delay: float = 0.0
    #: the response waits until this event is set (after ``delay``): a download the test lets finish when it wants
    hold: asyncio.Event | None = None


@dataclass(eq=False)
class FakeAttachment:
    id: int
    channel_id: int
    filename: str
    data: bytes
    content_type: str | None
    url: str
    proxy_url: str
    width: int | None = None
    height: int | None = None
    ephemeral: bool = False
    description: str | None = None
    fault: CdnFault | None = None
    #: the name as uploaded, when Discord's cleaning changed it (Discord's ``title``)
    title: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "filename": self.filename,
            "size": self.size,
            "url": self.url,
            "proxy_url": self.proxy_url,
        }
        if self.content_type is not None:
            data["content_type"] = self.content_type
        if self.width is not None and self.height is not None:
            data["width"] = self.width
            data["height"] = self.height
        if self.ephemeral:
            data["ephemeral"] = True
        if self.description is not None:
            data["description"] = self.description
        if self.title is not None:
            data["title"] = self.title
        return data


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) if `data` is an image Pillow can identify from its header, else None."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except Exception:  # not an image or truncated: Discord just omits width/height
        return None


@dataclass(eq=False)
class FakeMessage:
    id: int
    channel: FakeChannel
    author: FakeUser
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[FakeAttachment] = field(default_factory=list)
    flags: int = 0
    type: int = 0
    created_at: str = field(default_factory=iso_now)
    edited_at: str | None = None
    reference_id: int | None = None
    #: who Discord records as mentioned (pinged): users, role ids, @everyone/@here (see rules.allowed_parse)
    mentions: list[FakeUser] = field(default_factory=list)
    mention_roles: list[int] = field(default_factory=list)
    mention_everyone: bool = False
    #: set on messages created through an interaction (response or follow-up)
    interaction_id: int | None = None
    interaction_meta: dict[str, Any] | None = None
    webhook_id: int | None = None
    application_id: int | None = None
    deleted: bool = False
    edits: int = 0
    nonce: str | int | None = None

    EPHEMERAL = 1 << 6
    LOADING = 1 << 7

    @property
    def loading(self) -> bool:
        """A deferred ("Bot is thinking...") placeholder not yet edited."""
        return bool(self.flags & self.LOADING)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & self.EPHEMERAL)

    @property
    def filenames(self) -> list[str]:
        return [a.filename for a in self.attachments]

    def shown_text(self) -> str:
        """Everything the message shows a person: its content, then each embed's title, description, fields and
        footer."""
        parts = [self.content or ""]
        for e in self.embeds:
            parts += [e.get("title", ""), e.get("description", "")]
            parts += [f"{f.get('name', '')}: {f.get('value', '')}" for f in e.get("fields", [])]
            parts.append((e.get("footer") or {}).get("text", ""))
        return "\n".join(parts)

    def button(self, custom_id: str) -> dict[str, Any] | None:
        """The component dict with this custom_id, searched through action rows/containers."""

        def walk(items: list[dict[str, Any]]) -> dict[str, Any] | None:
            for item in items:
                if item.get("custom_id") == custom_id:
                    return item
                for key in ("components", "accessory"):
                    sub = item.get(key)
                    if isinstance(sub, dict):
                        sub = [sub]
                    if isinstance(sub, list) and (found := walk(sub)):
                        return found
            return None

        return walk(self.components)

    def custom_ids(self) -> list[str]:
        out: list[str] = []

        def walk(items: list[dict[str, Any]]) -> None:
            for item in items:
                if "custom_id" in item:
                    out.append(item["custom_id"])
                sub = item.get("components")
                if isinstance(sub, list):
                    walk(sub)

        walk(self.components)
        return out

    def payload(self, *, gateway: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "channel_id": str(self.channel.id),
            "author": self.author.payload(),
            "content": self.content,
            "timestamp": self.created_at,
            "edited_timestamp": self.edited_at,
            "tts": False,
            "mention_everyone": self.mention_everyone,
            "mentions": [u.payload() for u in self.mentions],
            "mention_roles": [str(r) for r in self.mention_roles],
            "attachments": [a.payload() for a in self.attachments],
            "embeds": self.embeds,
            "components": self.components,
            "pinned": False,
            "type": self.type,
            "flags": self.flags,
        }
        if self.reference_id is not None:
            ref: dict[str, Any] = {"type": 0, "message_id": str(self.reference_id),
                                   "channel_id": str(self.channel.id)}
            if self.channel.guild is not None:
                ref["guild_id"] = str(self.channel.guild.id)
            data["message_reference"] = ref
        if self.webhook_id is not None:
            data["webhook_id"] = str(self.webhook_id)
        if self.application_id is not None:
            data["application_id"] = str(self.application_id)
        if self.interaction_meta is not None:
            data["interaction_metadata"] = self.interaction_meta
        if self.nonce is not None:
            data["nonce"] = self.nonce
        if gateway and self.channel.guild is not None:
            data["guild_id"] = str(self.channel.guild.id)
            member = self.channel.guild.member(self.author)
            if member is not None:
                data["member"] = member.payload(with_user=False)
        return data

    def __repr__(self) -> str:
        return (f"FakeMessage(id={self.id}, channel={self.channel.name!r}, author={self.author.name!r}, "
                f"content={self.content[:60]!r}, files={self.filenames}, flags={self.flags})")


@dataclass
class UploadedFile:
    field: str
    filename: str
    content_type: str | None
    data: bytes


@dataclass
class RecordedRequest:
    t: float
    method: str
    path: str
    route: str | None
    query: dict[str, str]
    json: Any = None
    files: list[UploadedFile] = field(default_factory=list)
    status: int = 0
    error_code: int | None = None
    #: bytes of the request body as received (the per-request upload limit applies to it)
    body_size: int = 0
    #: CDN downloads: body bytes the fake managed to hand to the client before it stopped reading
    body_sent: int = 0

    def __repr__(self) -> str:
        files = f" files={[f.filename for f in self.files]}" if self.files else ""
        err = f" code={self.error_code}" if self.error_code is not None else ""
        return f"<{self.t:8.3f}s {self.method} {self.path} -> {self.status}{err}{files}>"


@dataclass(eq=False)
class InteractionRecord:
    id: int
    token: str
    kind: str  # "slash" | "context_menu" | "autocomplete" | "button" | "modal"
    user: FakeUser
    channel: FakeChannel
    payload: dict[str, Any]
    created_at: float  # time.monotonic() when dispatched (the 3 s acknowledgement clock)
    name: str | None = None
    custom_id: str | None = None
    message: FakeMessage | None = None  # the message a component was clicked on
    ack_type: int | None = None
    ack_latency: float | None = None
    ack_json: Any = None
    callback_errors: list[int] = field(default_factory=list)
    original: FakeMessage | None = None
    followups: list[FakeMessage] = field(default_factory=list)
    modal: dict[str, Any] | None = None
    #: seconds the interaction was already old when dispatched (its id is backdated; the token clock counts it)
    age: float = 0.0

    @property
    def token_age(self) -> float:
        """Seconds since Discord created the interaction: what its 15-minute token lifetime is measured from."""
        return time.monotonic() - self.created_at + self.age

    @property
    def acked(self) -> bool:
        return self.ack_type is not None

    def choices(self) -> list[dict[str, Any]]:
        """The choices the bot answered an autocomplete interaction with (callback type 8)."""
        if self.ack_type != 8:
            raise AssertionError(f"{self!r} was not answered with autocomplete choices")
        return list(((self.ack_json or {}).get("data") or {}).get("choices") or [])

    def __repr__(self) -> str:
        return (f"InteractionRecord({self.kind} {self.name or self.custom_id!r} id={self.id} ack_type={self.ack_type} "
                f"latency={self.ack_latency} errors={self.callback_errors})")


@dataclass(eq=False)
class RegisteredCommand:
    id: int
    name: str
    type: int
    guild_id: int | None
    payload: dict[str, Any]

    def option_types(self, path: list[str]) -> dict[str, int]:
        """Option name -> type for the (sub)command addressed by `path` (group/subcommand names)."""
        options = self.payload.get("options") or []
        for name in path:
            sub = next((o for o in options if o.get("name") == name), None)
            options = (sub or {}).get("options") or []
        return {o["name"]: int(o["type"]) for o in options}

    def paths(self) -> list[list[str]]:
        """Every invocable path below the command: [] alone, or [sub] / [group, sub] for each subcommand."""
        subs = [o for o in self.payload.get("options") or [] if o.get("type") in (1, 2)]
        if not subs:
            return [[]]
        out: list[list[str]] = []
        for sub in subs:
            if sub["type"] == 1:
                out.append([sub["name"]])
            else:
                out += [[sub["name"], inner["name"]] for inner in sub.get("options") or [] if inner.get("type") == 1]
        return out


@dataclass
class FakeConfig:
    #: per file, in bytes (Discord's default for a server without boosts; ``guild.upload_limit`` overrides it)
    upload_limit: int = 10 * 1024 * 1024
    #: the whole multipart body of one request, in bytes (Discord's cap whatever the per-file limit)
    request_limit: int = 25 * 1024 * 1024
    ack_deadline: float = 3.0
    token_ttl: float = 15 * 60.0
    strict_commands: bool = True
    heartbeat_interval_ms: int = 41_250
    #: None: accept any bot token; else REST calls with another token get 401
    token: str | None = None
    #: what GET /gateway/bot recommends; clients that IDENTIFY with [shard_id, num_shards] get only the guilds
    #: (and their events) of their shard, DMs going to shard 0 as on Discord
    shard_count: int = 1
    #: the application's flags (GET /applications/@me); without GATEWAY_MESSAGE_CONTENT(_LIMITED), 1 << 18 or
    #: 1 << 19, an IDENTIFY asking for the message_content intent is closed with 4014 "Disallowed intent(s)"
    app_flags: int = 1 << 19

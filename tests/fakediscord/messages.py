"""Bot-authored messages: validation, uploads (limits), edits, and the channel message routes."""

from __future__ import annotations

import mimetypes
import re
from typing import TYPE_CHECKING, Any

from .routing import Call, DiscordError, route, unknown_channel, unknown_message
from .state import FakeAttachment, FakeChannel, FakeMessage, FileSpec, Perm, UploadedFile, iso_now, snowflake

if TYPE_CHECKING:
    from .server import FakeDiscord

MAX_CONTENT = 2000
MAX_EMBEDS = 10
MAX_FILES = 10
_FILE_FIELD = re.compile(r"^files\[(\d+)\]$")


def invalid_form(field: str, code: str, message: str) -> DiscordError:
    return DiscordError(400, 50035, "Invalid Form Body",
                        {field: {"_errors": [{"code": code, "message": message}]}})


def upload_limit(fake: FakeDiscord, channel: FakeChannel) -> int:
    if channel.guild is not None and channel.guild.upload_limit is not None:
        return channel.guild.upload_limit
    return fake.config.upload_limit


def validate(payload: dict[str, Any], files: list[UploadedFile], *, creating: bool) -> None:
    content = payload.get("content")
    if content is not None and not isinstance(content, str):
        raise invalid_form("content", "BASE_TYPE_STRING", "Must be a string.")
    if content and len(content) > MAX_CONTENT:
        raise invalid_form("content", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CONTENT} or fewer in length.")
    embeds = payload.get("embeds") or []
    if len(embeds) > MAX_EMBEDS:
        raise invalid_form("embeds", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_EMBEDS} or fewer in length.")
    if len(files) > MAX_FILES:
        raise invalid_form("files", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_FILES} or fewer in length.")
    if creating and not (content or embeds or files or payload.get("components") or payload.get("sticker_ids")
                         or payload.get("poll")):
        raise DiscordError(400, 50006, "Cannot send an empty message")


def check_upload_size(fake: FakeDiscord, channel: FakeChannel, files: list[UploadedFile]) -> None:
    total = sum(len(f.data) for f in files)
    if files and total > upload_limit(fake, channel):
        raise DiscordError(413, 40005, "Request entity too large")


def _ctype(up: UploadedFile, filename: str | None = None) -> str | None:
    # discord.py always sends application/octet-stream; Discord derives the type from the filename
    if up.content_type in (None, "application/octet-stream"):
        return mimetypes.guess_type(filename or up.filename)[0] or up.content_type
    return up.content_type


def store_files(fake: FakeDiscord, channel: FakeChannel, payload: dict[str, Any], files: list[UploadedFile],
                existing: list[FakeAttachment], *, ephemeral: bool = False) -> list[FakeAttachment]:
    """Resolve the `attachments` array (kept ids + new `files[n]`) into the message's attachment list."""
    by_index: dict[int, UploadedFile] = {}
    for pos, f in enumerate(files):
        m = _FILE_FIELD.match(f.field)
        by_index[int(m.group(1)) if m else pos] = f
    meta = payload.get("attachments")
    if meta is None:
        # no attachments array: keep the old ones, append every uploaded file
        meta = [{"id": a.id} for a in existing] + [{"id": i} for i in sorted(by_index)]
    result: list[FakeAttachment] = []
    old = {a.id: a for a in existing}
    used: set[int] = set()
    for item in meta:
        ident = int(item.get("id", -1))
        if ident in old:
            result.append(old[ident])
        elif ident in by_index:
            up = by_index[ident]
            used.add(ident)
            filename = item.get("filename") or up.filename
            att = fake.make_attachment(channel, FileSpec(filename, up.data, _ctype(up, filename)),
                                       ephemeral=ephemeral)
            att.description = item.get("description")
            result.append(att)
        else:
            raise invalid_form("attachments", "ATTACHMENT_NOT_FOUND",
                               f"Attachment {ident} is neither an existing attachment nor an uploaded file.")
    for idx in sorted(set(by_index) - used):
        # an uploaded file the attachments array does not mention is still attached
        up = by_index[idx]
        result.append(fake.make_attachment(channel, FileSpec(up.filename, up.data, _ctype(up)), ephemeral=ephemeral))
    return result


def new_bot_message(fake: FakeDiscord, channel: FakeChannel, payload: dict[str, Any], files: list[UploadedFile],
                    **extra: Any) -> FakeMessage:
    validate(payload, files, creating=True)
    check_upload_size(fake, channel, files)
    flags = int(payload.get("flags") or 0)
    msg = FakeMessage(snowflake(), channel, fake.bot_user, content=payload.get("content") or "",
                      embeds=list(payload.get("embeds") or []), components=list(payload.get("components") or []),
                      flags=flags, nonce=payload.get("nonce"), **extra)
    ref = payload.get("message_reference")
    if ref and ref.get("message_id"):
        ref_id = int(ref["message_id"])
        if ref_id not in fake.messages and ref.get("fail_if_not_exists", True):
            raise invalid_form("message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message")
        msg.reference_id = ref_id
        msg.type = 19
    msg.attachments = store_files(fake, channel, payload, files, [], ephemeral=msg.ephemeral)
    msg.mentions = [u for u in fake.users.values() if f"<@{u.id}>" in msg.content or f"<@!{u.id}>" in msg.content]
    fake.messages[msg.id] = msg
    return msg


def apply_edit(fake: FakeDiscord, msg: FakeMessage, payload: dict[str, Any], files: list[UploadedFile]) -> None:
    validate(payload, files, creating=False)
    check_upload_size(fake, msg.channel, files)
    if "content" in payload:
        msg.content = payload["content"] or ""
    if "embeds" in payload:
        msg.embeds = list(payload["embeds"] or [])
    if "components" in payload:
        msg.components = list(payload["components"] or [])
    if "attachments" in payload or files:
        msg.attachments = store_files(fake, msg.channel, payload, files, msg.attachments, ephemeral=msg.ephemeral)
    msg.flags &= ~FakeMessage.LOADING
    msg.edited_at = iso_now()
    msg.edits += 1


async def publish(fake: FakeDiscord, event: str, msg: FakeMessage) -> None:
    """Send MESSAGE_CREATE/UPDATE/DELETE over the gateway, as Discord does (never for ephemeral messages)."""
    if msg.ephemeral:
        return
    if event == "MESSAGE_DELETE":
        data: dict[str, Any] = {"id": str(msg.id), "channel_id": str(msg.channel.id)}
        if msg.channel.guild is not None:
            data["guild_id"] = str(msg.channel.guild.id)
        await fake.gateway.dispatch_message(event, data, msg)
    else:
        await fake.gateway.dispatch_message(event, msg.payload(gateway=True), msg)
    fake._notify()


def _channel(c: Call) -> FakeChannel:
    ch = c.fake.channels.get(c.int_param("channel_id"))
    if ch is None:
        raise unknown_channel()
    return ch


def _message(c: Call, ch: FakeChannel) -> FakeMessage:
    msg = c.fake.messages.get(c.int_param("message_id"))
    if msg is None or msg.channel is not ch or msg.deleted or msg.ephemeral:
        raise unknown_message()
    return msg


def _need(c: Call, ch: FakeChannel, perm: int) -> None:
    if not c.fake.bot_permissions(ch) & perm:
        raise DiscordError(403, 50013, "Missing Permissions")


@route("POST", "/channels/{channel_id}/messages")
async def create_message(c: Call) -> Any:
    ch = _channel(c)
    if ch.is_dm and ch.recipient is not None and not ch.recipient.accepts_dms:
        raise DiscordError(403, 50007, "Cannot send messages to this user")
    _need(c, ch, Perm.VIEW_CHANNEL)
    _need(c, ch, Perm.SEND_MESSAGES)
    if c.files:
        _need(c, ch, Perm.ATTACH_FILES)
    msg = new_bot_message(c.fake, ch, c.json or {}, c.files)
    await publish(c.fake, "MESSAGE_CREATE", msg)
    return msg.payload()


@route("GET", "/channels/{channel_id}/messages")
async def list_messages(c: Call) -> Any:
    ch = _channel(c)
    limit = min(int(c.query.get("limit", 50)), 100)
    msgs = sorted((m for m in c.fake.messages.values() if m.channel is ch and not m.deleted and not m.ephemeral),
                  key=lambda m: m.id, reverse=True)
    if "before" in c.query:
        msgs = [m for m in msgs if m.id < int(c.query["before"])]
    if "after" in c.query:
        msgs = [m for m in msgs if m.id > int(c.query["after"])]
    return [m.payload() for m in msgs[:limit]]


@route("GET", "/channels/{channel_id}/messages/{message_id}")
async def get_message(c: Call) -> Any:
    ch = _channel(c)
    return _message(c, ch).payload()


@route("PATCH", "/channels/{channel_id}/messages/{message_id}")
async def edit_message(c: Call) -> Any:
    ch = _channel(c)
    msg = _message(c, ch)
    if msg.author is not c.fake.bot_user:
        raise DiscordError(403, 50005, "Cannot edit a message authored by another user")
    apply_edit(c.fake, msg, c.json or {}, c.files)
    await publish(c.fake, "MESSAGE_UPDATE", msg)
    return msg.payload()


@route("DELETE", "/channels/{channel_id}/messages/{message_id}")
async def delete_message(c: Call) -> Any:
    ch = _channel(c)
    msg = _message(c, ch)
    if msg.author is not c.fake.bot_user:
        _need(c, ch, Perm.MANAGE_MESSAGES)
    msg.deleted = True
    await publish(c.fake, "MESSAGE_DELETE", msg)
    return None


@route("PUT", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me")
async def add_reaction(c: Call) -> Any:
    msg = _message(c, _channel(c))
    c.fake.reactions.append((msg.id, c.params["emoji"]))
    return None


@route("DELETE", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me")
@route("DELETE", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/{user_id}")
@route("DELETE", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}")
@route("DELETE", "/channels/{channel_id}/messages/{message_id}/reactions")
async def remove_reaction(c: Call) -> Any:
    msg = _message(c, _channel(c))
    emoji = c.params.get("emoji")
    c.fake.reactions[:] = [r for r in c.fake.reactions if not (r[0] == msg.id and emoji in (None, r[1]))]
    return None


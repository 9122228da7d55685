"""Bot-authored messages: Discord's rules (rules.py), uploads and their limits, mentions, replies, edits, and the
channel message routes with their permission checks."""

from __future__ import annotations

import mimetypes
import re
from typing import TYPE_CHECKING, Any

from . import rules
from .routing import Call, DiscordError, route, unknown_channel, unknown_message
from .state import FakeAttachment, FakeChannel, FakeMessage, FileSpec, Perm, UploadedFile, iso_now, snowflake

if TYPE_CHECKING:
    from .server import FakeDiscord

_FILE_FIELD = re.compile(r"^files\[(\d+)\]$")


def upload_limit(fake: FakeDiscord, channel: FakeChannel) -> int:
    """Bytes one file may have in ``channel`` (the guild's own limit, else the configured default)."""
    if channel.guild is not None and channel.guild.upload_limit is not None:
        return channel.guild.upload_limit
    return fake.config.upload_limit


def validate(payload: dict[str, Any], files: list[UploadedFile]) -> None:
    """Discord's form rules for a message body (content, embeds, components, allowed_mentions, file count)."""
    errors = rules.FormErrors()
    rules.check_content(errors, payload.get("content"))
    rules.check_embeds(errors, payload.get("embeds"))
    rules.check_components(errors, payload.get("components"), flags=int(payload.get("flags") or 0))
    rules.check_allowed_mentions(errors, payload.get("allowed_mentions"))
    if len(files) > rules.MAX_FILES:
        errors.too_long(("files",), rules.MAX_FILES)
    errors.raise_if_any()


def check_upload_size(fake: FakeDiscord, channel: FakeChannel, files: list[UploadedFile], body_size: int) -> None:
    """413 code 40005 for a file over the per-file limit or a request body over the per-request limit."""
    limit = upload_limit(fake, channel)
    if any(len(f.data) > limit for f in files) or body_size > fake.config.request_limit:
        raise DiscordError(413, 40005, "Request entity too large")


def _is_empty(content: str, embeds: list[Any], attachments: list[Any], components: list[Any],
              payload: dict[str, Any]) -> bool:
    return not (content.strip() or embeds or attachments or components or payload.get("sticker_ids")
                or payload.get("poll"))


def empty_message() -> DiscordError:
    return DiscordError(400, 50006, "Cannot send an empty message")


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
    meta: list[dict[str, Any]] | None = payload.get("attachments")
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
            filename = str(item.get("filename") or up.filename)
            att = fake.make_attachment(channel, FileSpec(filename, up.data, _ctype(up, filename)),
                                       ephemeral=ephemeral)
            description = item.get("description")
            att.description = description if isinstance(description, str) else None
            result.append(att)
        else:
            raise rules.invalid_form("attachments", "ATTACHMENT_NOT_FOUND",
                                     f"Attachment {ident} is neither an existing attachment nor an uploaded file.")
    for idx in sorted(set(by_index) - used):
        # an uploaded file the attachments array does not mention is still attached
        up = by_index[idx]
        result.append(fake.make_attachment(channel, FileSpec(up.filename, up.data, _ctype(up)), ephemeral=ephemeral))
    return result


def set_mentions(fake: FakeDiscord, msg: FakeMessage, allowed: dict[str, Any] | None, *,
                 replied_user: bool | None = None) -> None:
    """Record who the message pings, as Discord does: what the content mentions, filtered by allowed_mentions,
    roles only when mentionable (or with Mention Everyone), @everyone/@here only with Mention Everyone, and
    the replied-to author when ``replied_user`` allows it."""
    user_ids, role_ids, everyone = rules.mentioned_ids(msg.content)
    parse, users_ok, roles_ok, replied = rules.allowed_parse(allowed)
    if replied_user is not None:
        replied = replied_user
    perms = fake.bot_permissions(msg.channel)
    users = [fake.users[u] for u in user_ids
             if u in fake.users and ("users" in parse or (users_ok is not None and u in users_ok))]
    guild_roles = {r.id: r for r in msg.channel.guild.roles} if msg.channel.guild is not None else {}
    msg.mention_roles = [r for r in role_ids if r in guild_roles and r != msg.channel.guild.id  # type: ignore[union-attr]
                         and ("roles" in parse or (roles_ok is not None and r in roles_ok))
                         and (guild_roles[r].mentionable or perms & Perm.MENTION_EVERYONE)]
    msg.mention_everyone = bool(everyone and "everyone" in parse and msg.channel.guild is not None
                                and perms & Perm.MENTION_EVERYONE)
    if replied and msg.reference_id is not None:
        ref = fake.messages.get(msg.reference_id)
        if ref is not None and ref.author is not msg.author and ref.author not in users:
            users.append(ref.author)
    msg.mentions = users


def _reference(fake: FakeDiscord, channel: FakeChannel, ref: dict[str, Any]) -> FakeMessage | None:
    """The message a reply points at, or None (sent as a plain message) when it is gone and the request allows it.

    A deleted message, one in another channel, or an ephemeral one is unknown to Discord: 400 code 50035 at
    ``message_reference`` unless ``fail_if_not_exists`` is false.
    """
    target = fake.messages.get(int(ref["message_id"]))
    wanted_channel = ref.get("channel_id")
    ok = (target is not None and not target.deleted and not target.ephemeral and target.channel is channel
          and (wanted_channel is None or int(wanted_channel) == channel.id))
    if ok:
        return target
    if ref.get("fail_if_not_exists", True):
        raise rules.invalid_form("message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message")
    return None


def new_bot_message(fake: FakeDiscord, channel: FakeChannel, payload: dict[str, Any], files: list[UploadedFile],
                    *, body_size: int = 0, embed_links: bool = True, **extra: Any) -> FakeMessage:
    """Create a bot-authored message from a request body, enforcing Discord's rules.

    ``embed_links``: False when the bot lacks Embed Links in the channel: Discord drops the embeds (silently).
    """
    validate(payload, files)
    check_upload_size(fake, channel, files, body_size)
    embeds = list(payload.get("embeds") or []) if embed_links else []
    content = payload.get("content") or ""
    if _is_empty(content, embeds, files, payload.get("components") or [], payload):
        raise empty_message()
    flags = int(payload.get("flags") or 0)
    msg = FakeMessage(snowflake(), channel, fake.bot_user, content=content, embeds=embeds,
                      components=list(payload.get("components") or []), flags=flags, nonce=payload.get("nonce"),
                      **extra)
    ref = payload.get("message_reference")
    if ref and ref.get("message_id") and int(ref.get("type") or 0) == 0:
        target = _reference(fake, channel, ref)
        if target is not None:
            msg.reference_id = target.id
            msg.type = 19
    msg.attachments = store_files(fake, channel, payload, files, [], ephemeral=msg.ephemeral)
    set_mentions(fake, msg, payload.get("allowed_mentions"))
    fake.messages[msg.id] = msg
    return msg


def apply_edit(fake: FakeDiscord, msg: FakeMessage, payload: dict[str, Any], files: list[UploadedFile],
               *, body_size: int = 0, embed_links: bool = True) -> None:
    """Edit a bot message; an edit that leaves nothing (no content, embed, file or component) is refused (50006)."""
    validate(payload, files)
    check_upload_size(fake, msg.channel, files, body_size)
    content = (payload["content"] or "") if "content" in payload else msg.content
    if "embeds" in payload:
        embeds = list(payload["embeds"] or []) if embed_links else []
    else:
        embeds = msg.embeds
    components = list(payload["components"] or []) if "components" in payload else msg.components
    if "attachments" in payload or files:
        attachments = store_files(fake, msg.channel, payload, files, msg.attachments, ephemeral=msg.ephemeral)
    else:
        attachments = msg.attachments
    if _is_empty(content, embeds, attachments, components, payload):
        raise empty_message()
    was_loading = msg.loading
    msg.content, msg.embeds, msg.components, msg.attachments = content, embeds, components, attachments
    if "content" in payload or was_loading:
        # an edit re-parses the content; it never pings the replied-to author anew (edits notify nobody)
        ref = fake.messages.get(msg.reference_id) if msg.reference_id is not None else None
        replied_before = ref is not None and ref.author in msg.mentions
        set_mentions(fake, msg, payload.get("allowed_mentions"), replied_user=replied_before)
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


def missing_access() -> DiscordError:
    return DiscordError(403, 50001, "Missing Access")


def missing_permissions() -> DiscordError:
    return DiscordError(403, 50013, "Missing Permissions")


def _perms(c: Call, ch: FakeChannel, *needed: int) -> int:
    """The bot's permissions in ``ch``; 403 50001 if it cannot see the channel, 50013 if one of ``needed`` lacks."""
    perms = c.fake.bot_permissions(ch)
    if not perms & Perm.VIEW_CHANNEL:
        raise missing_access()
    for perm in needed:
        if not perms & perm:
            raise missing_permissions()
    return perms


def _check_dm(c: Call, ch: FakeChannel) -> None:
    """Discord refuses a DM to a user who closed DMs, shares no server with the bot, or is a bot: 403 50007."""
    user = ch.recipient
    assert user is not None
    shares_guild = any(g.member(user) is not None and g.member(c.fake.bot_user) is not None
                       for g in c.fake.guilds.values())
    if not user.accepts_dms or user.bot or not shares_guild:
        raise DiscordError(403, 50007, "Cannot send messages to this user")


def _body_size(c: Call) -> int:
    return c.record.body_size if c.record is not None else 0


@route("POST", "/channels/{channel_id}/messages")
async def create_message(c: Call) -> Any:
    ch = _channel(c)
    payload = c.json or {}
    embed_links = True
    if ch.is_dm:
        _check_dm(c, ch)
    else:
        needed = [Perm.SEND_MESSAGES]
        if c.files:
            needed.append(Perm.ATTACH_FILES)
        if (payload.get("message_reference") or {}).get("message_id"):
            needed.append(Perm.READ_MESSAGE_HISTORY)  # replying needs Read Message History
        embed_links = bool(_perms(c, ch, *needed) & Perm.EMBED_LINKS)
    msg = new_bot_message(c.fake, ch, payload, c.files, body_size=_body_size(c), embed_links=embed_links)
    await publish(c.fake, "MESSAGE_CREATE", msg)
    return msg.payload()


@route("GET", "/channels/{channel_id}/messages")
async def list_messages(c: Call) -> Any:
    ch = _channel(c)
    if not ch.is_dm:
        _perms(c, ch)
        if not c.fake.bot_permissions(ch) & Perm.READ_MESSAGE_HISTORY:
            return []  # Discord answers an empty list without Read Message History
    limit = min(int(c.query.get("limit", 50)), 100)
    msgs = sorted((m for m in c.fake.messages.values() if m.channel is ch and not m.deleted and not m.ephemeral),
                  key=lambda m: m.id, reverse=True)
    if "before" in c.query:
        msgs = [m for m in msgs if m.id < int(c.query["before"])]
    if "after" in c.query:
        msgs = [m for m in msgs if m.id > int(c.query["after"])]
        if "before" not in c.query:
            # As Discord: the ``limit`` messages right after ``after`` (the oldest ones), still newest first.
            return [m.payload() for m in msgs[-limit:]]
    return [m.payload() for m in msgs[:limit]]


@route("GET", "/channels/{channel_id}/messages/{message_id}")
async def get_message(c: Call) -> Any:
    ch = _channel(c)
    if not ch.is_dm and not _perms(c, ch) & Perm.READ_MESSAGE_HISTORY:
        raise missing_access()
    return _message(c, ch).payload()


@route("PATCH", "/channels/{channel_id}/messages/{message_id}")
async def edit_message(c: Call) -> Any:
    ch = _channel(c)
    perms = Perm.ALL if ch.is_dm else _perms(c, ch)
    msg = _message(c, ch)
    if msg.author is not c.fake.bot_user:
        raise DiscordError(403, 50005, "Cannot edit a message authored by another user")
    apply_edit(c.fake, msg, c.json or {}, c.files, body_size=_body_size(c),
               embed_links=bool(perms & Perm.EMBED_LINKS))
    await publish(c.fake, "MESSAGE_UPDATE", msg)
    return msg.payload()


@route("DELETE", "/channels/{channel_id}/messages/{message_id}")
async def delete_message(c: Call) -> Any:
    ch = _channel(c)
    if not ch.is_dm:
        _perms(c, ch)
    msg = _message(c, ch)
    if msg.author is not c.fake.bot_user:
        if ch.is_dm:
            raise DiscordError(403, 50003, "Cannot execute action on a DM channel")
        _perms(c, ch, Perm.MANAGE_MESSAGES)
    msg.deleted = True
    await publish(c.fake, "MESSAGE_DELETE", msg)
    return None


@route("PUT", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me")
async def add_reaction(c: Call) -> Any:
    ch = _channel(c)
    if not ch.is_dm:
        _perms(c, ch, Perm.READ_MESSAGE_HISTORY, Perm.ADD_REACTIONS)
    msg = _message(c, ch)
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

"""The test-facing driver: act as Discord users (messages, slash commands, clicks, modals) and wait for the bot."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from .messages import publish
from .state import (
    FakeAttachment,
    FakeChannel,
    FakeMessage,
    FakeRole,
    FakeUser,
    FileSpec,
    InteractionRecord,
    Perm,
    RecordedRequest,
    RegisteredCommand,
    iso_now,
    snowflake,
)

T = TypeVar("T")

if TYPE_CHECKING:
    from .gateway import Gateway
    from .server import FakeDiscord
    from .state import FakeConfig

# application command option types
SUB_COMMAND, SUB_GROUP, STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)


def _infer_type(value: Any) -> int:
    if isinstance(value, FileSpec | tuple):
        return ATTACHMENT
    if isinstance(value, FakeUser):
        return USER
    if isinstance(value, FakeChannel):
        return CHANNEL
    if isinstance(value, FakeRole):
        return ROLE
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int):
        return INTEGER
    if isinstance(value, float):
        return NUMBER
    return STRING


def _guild_id(channel: FakeChannel) -> int | None:
    return channel.guild.id if channel.guild is not None else None


class DriverMixin:
    """Mixed into FakeDiscord; `self` is the FakeDiscord (what it uses from there is declared for the type checker)."""

    if TYPE_CHECKING:
        config: FakeConfig
        channel: FakeChannel
        member: FakeUser
        users: dict[int, FakeUser]
        messages: dict[int, FakeMessage]
        interactions: list[InteractionRecord]
        commands: list[RegisteredCommand]
        requests: list[RecordedRequest]
        application_id: int
        gateway: Gateway
        _action_mark: int

        def _notify(self) -> None: ...

        def make_attachment(self, channel: FakeChannel, spec: FileSpec | tuple[str, bytes], *,
                            ephemeral: bool = False) -> FakeAttachment: ...

        def bot_permissions(self, channel: FakeChannel) -> int: ...

        def bot_messages(self, channel: FakeChannel | None = None, *,
                         include_deleted: bool = False) -> list[FakeMessage]: ...

        async def wait_for(self, fn: Callable[[], T | None], timeout: float = 5.0,
                           what: str | Callable[[], str] = "condition") -> T: ...

    @property
    def _fake(self) -> FakeDiscord:
        return cast("FakeDiscord", self)

    # ------------------------------------------------------------------ user messages
    async def post_message(self, channel: FakeChannel | None = None, author: FakeUser | None = None,
                           content: str = "",
                           attachments: list[FileSpec | tuple[str, bytes] | FakeAttachment] | tuple[()] = (),
                           reference: FakeMessage | None = None, mentions: list[FakeUser] | tuple[()] = ()
                           ) -> FakeMessage:
        """A user posts a message; dispatched to the bot as MESSAGE_CREATE."""
        channel = channel or self.channel
        author = author or self.member
        self._mark_action()
        msg = FakeMessage(snowflake(), channel, author, content=content)
        msg.attachments = [self._user_attachment(channel, spec) for spec in attachments]
        mentioned = list(mentions) + [u for u in self.users.values()
                                      if (f"<@{u.id}>" in content or f"<@!{u.id}>" in content) and u not in mentions]
        msg.mentions = mentioned
        if reference is not None:
            msg.reference_id, msg.type = reference.id, 19
        self.messages[msg.id] = msg
        await publish(self._fake, "MESSAGE_CREATE", msg)
        return msg

    def _user_attachment(self, channel: FakeChannel,
                         spec: FileSpec | tuple[str, bytes] | FakeAttachment) -> FakeAttachment:
        if isinstance(spec, FakeAttachment):
            # pre-made with make_attachment (e.g. to set a CDN fault before the bot sees it)
            if spec.channel_id != channel.id:
                raise AssertionError(f"attachment {spec.filename} was made for channel {spec.channel_id}, "
                                     f"not {channel.id}")
            return spec
        return self.make_attachment(channel, spec)

    async def edit_user_message(self, message: FakeMessage, content: str) -> FakeMessage:
        message.content = content
        message.edited_at = iso_now()
        message.edits += 1
        await publish(self._fake, "MESSAGE_UPDATE", message)
        return message

    async def delete_user_message(self, message: FakeMessage) -> None:
        message.deleted = True
        await publish(self._fake, "MESSAGE_DELETE", message)

    # ------------------------------------------------------------------ interactions
    def _interaction_base(self, kind: str, itype: int, user: FakeUser, channel: FakeChannel,
                          data: dict[str, Any], *, age: float = 0.0) -> InteractionRecord:
        iid, token = snowflake(age=age), "aW50ZXJhY3Rpb24" + secrets.token_urlsafe(40)
        payload: dict[str, Any] = {
            "id": str(iid),
            "application_id": str(self.application_id),
            "type": itype,
            "token": token,
            "version": 1,
            "data": data,
            "channel_id": str(channel.id),
            "channel": channel.payload(),
            "locale": "en-US",
            "entitlements": [],
            "app_permissions": str(self.bot_permissions(channel)),
            "attachment_size_limit": self._upload_limit(channel),
        }
        if channel.guild is not None:
            member = channel.guild.member(user)
            if member is None:
                raise AssertionError(f"{user.name} is not a member of {channel.guild.name}")
            payload.update({
                "guild_id": str(channel.guild.id),
                "guild": {"id": str(channel.guild.id), "locale": "en-US", "features": []},
                "guild_locale": "en-US",
                "member": member.payload(with_permissions=True, channel=channel),
                "authorizing_integration_owners": {"0": str(channel.guild.id)},
                "context": 0,
            })
        else:
            payload.update({"user": user.payload(), "context": 1,
                            "authorizing_integration_owners": {"0": str(user.id)}})
        rec = InteractionRecord(iid, token, kind, user, channel, payload, time.monotonic(), age=age)
        self.interactions.append(rec)
        return rec

    def _upload_limit(self, channel: FakeChannel) -> int:
        if channel.guild is not None and channel.guild.upload_limit is not None:
            return channel.guild.upload_limit
        return self.config.upload_limit

    def find_command(self, name: str, channel: FakeChannel | None = None,
                     ctype: int = 1) -> RegisteredCommand | None:
        """The registered command `name` of type `ctype` (1 chat input, 2 user, 3 message) visible in `channel`
        (guild commands win)."""
        guild_id = channel.guild.id if channel is not None and channel.guild is not None else None
        candidates = [c for c in self.commands
                      if c.name == name and c.type == ctype and c.guild_id in (guild_id, None)]
        candidates.sort(key=lambda c: c.guild_id is None)
        return candidates[0] if candidates else None

    def visible_commands(self, user: FakeUser | None = None, channel: FakeChannel | None = None) -> set[str]:
        """What the Discord client offers ``user`` in ``channel`` on typing ``/``: the paths ("name", "name sub",
        "name group sub") of the chat commands registered for there. Like Discord, a top-level command's
        ``default_member_permissions`` hides it from members who lack them ("0": from everyone but administrators),
        its ``contexts``/``dm_permission`` hide it in DMs, and subcommands' own permissions are ignored. (A server's
        admins can still grant a hidden command to anyone, so ``invoke_slash`` does not refuse it.)"""
        user = user or self.member
        channel = channel or self.channel
        member = channel.guild.member(user) if channel.guild is not None else None
        shown: set[str] = set()
        for cmd in self.commands:
            if cmd.type != 1 or self.find_command(cmd.name, channel) is not cmd:
                continue
            payload = cmd.payload
            if channel.guild is None:
                contexts = payload.get("contexts")
                if payload.get("dm_permission") is False or (contexts is not None and 1 not in contexts):
                    continue
            needed = payload.get("default_member_permissions")
            if needed is not None and member is not None:
                perms = member.permissions_in(channel)
                if not perms & Perm.ADMINISTRATOR and (int(needed) == 0 or perms & int(needed) != int(needed)):
                    continue
            shown |= {" ".join([cmd.name, *path]) for path in cmd.paths()}
        return shown

    async def invoke_slash(self, name: str, options: dict[str, Any] | None = None,
                           user: FakeUser | None = None, channel: FakeChannel | None = None, *,
                           subcommand: str | None = None, group: str | None = None,
                           age: float = 0.0) -> InteractionRecord:
        """A user runs `/name [group] [subcommand] options...`; dispatched as INTERACTION_CREATE (type 2).

        ``age``: seconds the interaction is already old (its id, hence discord.py's ``interaction.created_at``, is
        backdated, and the fake's token clock counts it; the 3 s acknowledgement clock starts now). Tests a bot's
        own 15-minute token clock without waiting 15 minutes.
        """
        user = user or self.member
        channel = channel or self.channel
        options = options or {}
        self._mark_action()
        cmd = self.find_command(name, channel)
        if cmd is None and self.config.strict_commands:
            known = [(c.name, c.guild_id) for c in self.commands]
            raise AssertionError(f"/{name} is not registered with the fake Discord (registered: {known}); the bot "
                                 "must sync its command tree, or set fake.config.strict_commands = False")
        path = [p for p in (group, subcommand) if p]
        declared = cmd.option_types(path) if cmd is not None else {}
        if cmd is not None:
            self._check_options(cmd, path, options)
        resolved: dict[str, dict[str, Any]] = {}
        opts = [self._option(n, v, declared.get(n) or _infer_type(v), channel, resolved) for n, v in options.items()]
        if subcommand:
            opts = [{"name": subcommand, "type": SUB_COMMAND, "options": opts}]
        if group:
            opts = [{"name": group, "type": SUB_GROUP, "options": opts}]
        data: dict[str, Any] = {"id": str(cmd.id if cmd else snowflake()), "name": name, "type": 1, "options": opts}
        if resolved:
            data["resolved"] = resolved
        if cmd is not None and cmd.guild_id is not None:
            data["guild_id"] = str(cmd.guild_id)
        rec = self._interaction_base("slash", 2, user, channel, data, age=age)
        rec.name = name
        await self.gateway.dispatch("INTERACTION_CREATE", rec.payload, guild_id=_guild_id(rec.channel))
        self._notify()
        return rec

    async def invoke_autocomplete(self, name: str, options: dict[str, Any], focused: str,
                                  user: FakeUser | None = None, channel: FakeChannel | None = None, *,
                                  subcommand: str | None = None, group: str | None = None) -> InteractionRecord:
        """A user types into option `focused` of `/name [group] [subcommand]`; INTERACTION_CREATE type 4.
        `options` holds what is typed so far (strings as typed). The bot's choices: `record.choices()`."""
        user = user or self.member
        channel = channel or self.channel
        self._mark_action()
        cmd = self.find_command(name, channel)
        if cmd is None:
            raise AssertionError(f"/{name} is not registered with the fake Discord")
        path = [p for p in (group, subcommand) if p]
        declared = cmd.option_types(path)
        if focused not in options or focused not in declared:
            raise AssertionError(f"/{name} {subcommand or ''}: cannot focus {focused!r} (options {sorted(declared)})")
        opts: list[dict[str, Any]] = []
        for n, v in options.items():
            if n not in declared:
                raise AssertionError(f"/{name} has no option {n!r}")
            opt: dict[str, Any] = {"name": n, "type": declared[n], "value": v}
            if n == focused:
                opt["focused"] = True
            opts.append(opt)
        if subcommand:
            opts = [{"name": subcommand, "type": SUB_COMMAND, "options": opts}]
        if group:
            opts = [{"name": group, "type": SUB_GROUP, "options": opts}]
        data: dict[str, Any] = {"id": str(cmd.id), "name": name, "type": 1, "options": opts}
        if cmd.guild_id is not None:
            data["guild_id"] = str(cmd.guild_id)
        rec = self._interaction_base("autocomplete", 4, user, channel, data)
        rec.name = name
        await self.gateway.dispatch("INTERACTION_CREATE", rec.payload)
        self._notify()
        return rec

    async def invoke_message_command(self, name: str, target: FakeMessage,
                                     user: FakeUser | None = None) -> InteractionRecord:
        """A user right-clicks `target` → Apps → `name` (a message context-menu command); INTERACTION_CREATE
        type 2 with data type 3, `target_id` and the message in `resolved.messages`."""
        user = user or self.member
        channel = target.channel
        self._mark_action()
        cmd = self.find_command(name, channel, ctype=3)
        if cmd is None and self.config.strict_commands:
            raise AssertionError(f"message command {name!r} is not registered with the fake Discord")
        if target.deleted:
            raise AssertionError(f"cannot use {name!r} on deleted message {target.id}")
        data: dict[str, Any] = {
            "id": str(cmd.id if cmd else snowflake()), "name": name, "type": 3, "target_id": str(target.id),
            "resolved": {"messages": {str(target.id): target.payload()}},
        }
        if cmd is not None and cmd.guild_id is not None:
            data["guild_id"] = str(cmd.guild_id)
        rec = self._interaction_base("context_menu", 2, user, channel, data)
        rec.name, rec.message = name, target
        await self.gateway.dispatch("INTERACTION_CREATE", rec.payload)
        self._notify()
        return rec

    def _check_options(self, cmd: RegisteredCommand, path: list[str], options: dict[str, Any]) -> None:
        opts = cmd.payload.get("options") or []
        for part in path:
            sub = next((o for o in opts if o.get("name") == part), None)
            if sub is None:
                raise AssertionError(f"/{cmd.name} has no subcommand/group {part!r}")
            opts = sub.get("options") or []
        names = {o["name"] for o in opts}
        unknown = set(options) - names
        if unknown:
            raise AssertionError(f"/{cmd.name} {' '.join(path)} has no option(s) {sorted(unknown)}; it has "
                                 f"{sorted(names)}")
        missing = [o["name"] for o in opts if o.get("required") and o["name"] not in options]
        if missing:
            raise AssertionError(f"/{cmd.name}: required option(s) {missing} missing (Discord would not send it)")

    def _option(self, name: str, value: Any, otype: int, channel: FakeChannel,
                resolved: dict[str, dict[str, Any]]) -> dict[str, Any]:
        if otype == ATTACHMENT:
            if isinstance(value, FakeAttachment):
                att = value
            else:
                att = self.make_attachment(channel, value, ephemeral=True)
            resolved.setdefault("attachments", {})[str(att.id)] = att.payload()
            return {"name": name, "type": otype, "value": str(att.id)}
        if otype in (USER, MENTIONABLE) and isinstance(value, FakeUser):
            resolved.setdefault("users", {})[str(value.id)] = value.payload()
            member = channel.guild.member(value) if channel.guild else None
            if member is not None:
                resolved.setdefault("members", {})[str(value.id)] = member.payload(with_user=False,
                                                                                   with_permissions=True)
            return {"name": name, "type": otype, "value": str(value.id)}
        if otype == CHANNEL and isinstance(value, FakeChannel):
            data = value.payload()
            data["permissions"] = str(self.bot_permissions(value))
            resolved.setdefault("channels", {})[str(value.id)] = data
            return {"name": name, "type": otype, "value": str(value.id)}
        if otype in (ROLE, MENTIONABLE) and isinstance(value, FakeRole):
            resolved.setdefault("roles", {})[str(value.id)] = value.payload()
            return {"name": name, "type": otype, "value": str(value.id)}
        return {"name": name, "type": otype, "value": value}

    async def click_button(self, message: FakeMessage, custom_id: str, user: FakeUser | None = None,
                           *, values: list[str] | None = None, age: float = 0.0) -> InteractionRecord:
        """A user clicks a button (or picks `values` in a select) on a bot message; INTERACTION_CREATE type 3."""
        user = user or self.member
        self._mark_action()
        if message.deleted:
            raise AssertionError(f"cannot click {custom_id!r}: message {message.id} was deleted")
        comp = message.button(custom_id)
        if comp is None:
            raise AssertionError(f"message {message.id} has no component {custom_id!r} "
                                 f"(it has {message.custom_ids()})")
        if comp.get("disabled"):
            raise AssertionError(f"component {custom_id!r} on message {message.id} is disabled")
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": int(comp.get("type", 2))}
        if values is not None:
            data["values"] = values
        rec = self._interaction_base("button", 3, user, message.channel, data, age=age)
        rec.custom_id, rec.message = custom_id, message
        rec.payload["message"] = message.payload()
        await self.gateway.dispatch("INTERACTION_CREATE", rec.payload, guild_id=_guild_id(rec.channel))
        self._notify()
        return rec

    async def submit_modal(self, opened_by: InteractionRecord, values: dict[str, str],
                           user: FakeUser | None = None) -> InteractionRecord:
        """Submit the modal the bot opened in answer to `opened_by`; INTERACTION_CREATE type 5."""
        if opened_by.modal is None:
            raise AssertionError(f"{opened_by!r} did not open a modal")
        self._mark_action()
        modal = opened_by.modal
        seen: list[str] = []

        def fill(comp: dict[str, Any]) -> dict[str, Any]:
            if comp.get("type") == 1:
                return {"type": 1, "components": [fill(c) for c in comp.get("components", [])]}
            if comp.get("type") == 18:
                return {"type": 18, "component": fill(comp["component"])}
            cid = str(comp.get("custom_id"))
            seen.append(cid)
            return {"type": comp.get("type", 4), "custom_id": cid, "value": values.get(cid, comp.get("value") or "")}

        components = [fill(c) for c in modal.get("components", [])]
        unknown = set(values) - set(seen)
        if unknown:
            raise AssertionError(f"modal {modal.get('custom_id')!r} has no inputs {sorted(unknown)} (has {seen})")
        data = {"custom_id": modal.get("custom_id"), "components": components}
        rec = self._interaction_base("modal", 5, user or opened_by.user, opened_by.channel, data)
        rec.custom_id = modal.get("custom_id")
        if opened_by.message is not None:
            rec.message = opened_by.message
            rec.payload["message"] = opened_by.message.payload()
        await self.gateway.dispatch("INTERACTION_CREATE", rec.payload, guild_id=_guild_id(rec.channel))
        self._notify()
        return rec

    # ------------------------------------------------------------------ waiting
    def _mark_action(self) -> None:
        self._action_mark = snowflake()

    async def wait_for_message(self, channel: FakeChannel | None = None,
                               predicate: Callable[[FakeMessage], bool] | None = None, timeout: float = 5.0,
                               since: FakeMessage | int | None = None) -> FakeMessage:
        """First bot message in `channel` created after `since` (default: the last driver action) matching
        `predicate`; edits are re-checked; "thinking..." placeholders are skipped until filled."""
        mark = since.id if isinstance(since, FakeMessage) else (since if since is not None else self._action_mark)

        def find() -> FakeMessage | None:
            for msg in sorted(self.bot_messages(channel), key=lambda m: m.id):
                if msg.id > mark and not msg.loading and (predicate is None or predicate(msg)):
                    return msg
            return None

        where = f"#{channel.name}" if channel else "any channel"

        def what() -> str:
            sent = [m for m in self.bot_messages(channel) if m.id > mark]
            return f"a bot message in {where} matching the predicate (bot messages since the mark: {sent})"

        return await self.wait_for(find, timeout, what)

    async def wait_for_ack(self, record: InteractionRecord, timeout: float = 5.0) -> InteractionRecord:
        return await self.wait_for(lambda: record if record.acked else None, timeout,
                                   f"the bot to acknowledge {record!r}")

    async def wait_for_request(self, method: str, path_regex: str, timeout: float = 5.0,
                               start: int = 0) -> RecordedRequest:
        """First recorded request (from index `start`) with this method whose path matches `path_regex`."""
        pat = re.compile(path_regex)

        def find() -> RecordedRequest | None:
            return next((r for r in self.requests[start:] if r.method == method and pat.search(r.path)), None)

        return await self.wait_for(find, timeout, f"a {method} request matching {path_regex!r}")

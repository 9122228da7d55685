"""Interaction callbacks and the interaction webhook routes (follow-ups, @original), with Discord's timing rules."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .messages import apply_edit, new_bot_message, publish
from .routing import Call, DiscordError, route, unknown_message
from .state import FakeMessage, InteractionRecord

if TYPE_CHECKING:
    from .server import FakeDiscord

# interaction callback types
PONG, MESSAGE, DEFERRED_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE, AUTOCOMPLETE, MODAL = 1, 4, 5, 6, 7, 8, 9
COMPONENT_ONLY = {DEFERRED_UPDATE, UPDATE_MESSAGE}
KIND_TYPE = {"slash": 2, "context_menu": 2, "button": 3, "autocomplete": 4, "modal": 5}
COMMAND_KINDS = {"slash", "context_menu"}


def _interaction_message(fake: FakeDiscord, rec: InteractionRecord, payload: dict[str, Any],
                         files: list[Any], *, loading: bool = False, body_size: int = 0) -> FakeMessage:
    meta = {"id": str(rec.id), "type": KIND_TYPE[rec.kind], "user": rec.user.payload(),
            "authorizing_integration_owners": {"0": str(rec.channel.guild.id)} if rec.channel.guild else {}}
    if rec.name:
        meta["name"] = rec.name
    # interaction responses are webhook messages: the bot's channel permissions (Embed Links...) do not apply
    msg = new_bot_message(fake, rec.channel, payload if not loading else {**payload, "content": "\u200b"}, files,
                          body_size=body_size, interaction_id=rec.id, interaction_meta=meta, webhook_id=fake.application_id,
                          application_id=fake.application_id)
    msg.type = {"slash": 20, "context_menu": 23}.get(rec.kind, 0)
    if loading:
        msg.content = ""
        msg.flags |= FakeMessage.LOADING
    return msg


@route("POST", "/interactions/{interaction_id}/{token}/callback")
async def callback(c: Call) -> Any:
    fake = c.fake
    rec = next((r for r in fake.interactions if r.id == c.int_param("interaction_id")), None)
    if rec is None or rec.token != c.params["token"]:
        raise DiscordError(404, 10062, "Unknown interaction")
    latency = time.monotonic() - rec.created_at
    if rec.ack_type is not None:
        rec.callback_errors.append(40060)
        raise DiscordError(400, 40060, "Interaction has already been acknowledged.")
    if latency > fake.config.ack_deadline:
        rec.callback_errors.append(10062)
        raise DiscordError(404, 10062, "Unknown interaction")
    body = c.json or {}
    rtype = int(body.get("type", 0))
    data = body.get("data") or {}
    if (rtype == AUTOCOMPLETE) != (rec.kind == "autocomplete"):
        # Discord: an autocomplete interaction takes only choices (type 8), and only it may answer with them
        rec.callback_errors.append(50035)
        raise DiscordError(400, 50035, "Invalid Form Body", {"type": {"_errors": [{"code": "INVALID"}]}})
    if rtype in COMPONENT_ONLY and rec.kind in COMMAND_KINDS:
        rec.callback_errors.append(50035)
        raise DiscordError(400, 50035, "Invalid Form Body",
                           {"type": {"_errors": [{"code": "INTERACTION_RESPONSE_TYPE_INVALID",
                                                  "message": f"Type {rtype} is only valid for component interactions"}]}})
    if rtype == MODAL and rec.kind == "modal":
        raise DiscordError(400, 50035, "Invalid Form Body", {"type": {"_errors": [{"code": "INVALID"}]}})
    if rtype not in {MESSAGE, DEFERRED_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE, AUTOCOMPLETE, MODAL}:
        raise DiscordError(400, 50035, "Invalid Form Body", {"type": {"_errors": [{"code": "INVALID"}]}})

    message: FakeMessage | None = None
    if rtype == MESSAGE:
        message = _interaction_message(fake, rec, data, c.files, body_size=_size(c))
        rec.original = message
        await publish(fake, "MESSAGE_CREATE", message)
    elif rtype == DEFERRED_MESSAGE:
        message = _interaction_message(fake, rec, {"flags": data.get("flags", 0)}, [], loading=True)
        rec.original = message
        await publish(fake, "MESSAGE_CREATE", message)
    elif rtype in COMPONENT_ONLY:
        # for component interactions, @original is the message the component sits on
        rec.original = rec.message
        if rtype == UPDATE_MESSAGE and rec.message is not None:
            apply_edit(fake, rec.message, data, c.files, body_size=_size(c))
            message = rec.message
            await publish(fake, "MESSAGE_UPDATE", message)
    elif rtype == MODAL:
        rec.modal = data

    rec.ack_type, rec.ack_latency, rec.ack_json = rtype, latency, body
    fake._notify()
    if c.query.get("with_response") not in ("1", "true", "True"):
        return None
    result: dict[str, Any] = {"interaction": {"id": str(rec.id), "type": KIND_TYPE[rec.kind]}}
    if message is not None:
        result["interaction"].update({"response_message_id": str(message.id),
                                      "response_message_loading": message.loading,
                                      "response_message_ephemeral": message.ephemeral})
        result["resource"] = {"type": rtype, "message": message.payload()}
    elif rtype == MODAL:
        result["resource"] = {"type": rtype}
    return result


def _size(c: Call) -> int:
    return c.record.body_size if c.record is not None else 0


def _webhook_interaction(c: Call) -> InteractionRecord:
    fake = c.fake
    rec = fake.interaction_by_token(c.params["token"])
    if c.int_param("app_id") != fake.application_id or rec is None:
        raise DiscordError(404, 10015, "Unknown Webhook")
    if rec.token_age > fake.config.token_ttl:
        raise DiscordError(401, 50027, "Invalid Webhook Token")
    if rec.ack_type is None:
        # Discord only creates the interaction webhook once the interaction is acknowledged
        raise DiscordError(404, 10015, "Unknown Webhook")
    return rec


def _target(c: Call, rec: InteractionRecord) -> FakeMessage:
    if "message_id" not in c.params:  # @original
        if rec.original is None or rec.original.deleted:
            raise unknown_message()
        return rec.original
    msg = c.fake.messages.get(c.int_param("message_id"))
    if msg is None or msg.deleted or (msg is not rec.original and msg not in rec.followups):
        raise unknown_message()
    return msg


@route("POST", "/webhooks/{app_id}/{token}")
async def followup(c: Call) -> Any:
    fake = c.fake
    rec = _webhook_interaction(c)
    payload = c.json or {}
    if rec.original is not None and rec.original.loading and rec.ack_type == DEFERRED_MESSAGE:
        # Discord fills the "thinking..." placeholder with the first follow-up
        msg = rec.original
        keep = msg.flags & FakeMessage.EPHEMERAL
        apply_edit(fake, msg, payload, c.files, body_size=_size(c))
        msg.flags = (msg.flags & ~FakeMessage.EPHEMERAL) | keep
        await publish(fake, "MESSAGE_UPDATE", msg)
    else:
        msg = _interaction_message(fake, rec, payload, c.files, body_size=_size(c))
        await publish(fake, "MESSAGE_CREATE", msg)
    rec.followups.append(msg)
    fake._notify()
    if c.query.get("wait") in ("1", "true", "True"):
        return msg.payload()
    return None


@route("GET", "/webhooks/{app_id}/{token}/messages/@original")
@route("GET", "/webhooks/{app_id}/{token}/messages/{message_id}")
async def get_webhook_message(c: Call) -> Any:
    rec = _webhook_interaction(c)
    return _target(c, rec).payload()


@route("PATCH", "/webhooks/{app_id}/{token}/messages/@original")
@route("PATCH", "/webhooks/{app_id}/{token}/messages/{message_id}")
async def edit_webhook_message(c: Call) -> Any:
    rec = _webhook_interaction(c)
    msg = _target(c, rec)
    apply_edit(c.fake, msg, c.json or {}, c.files, body_size=_size(c))
    await publish(c.fake, "MESSAGE_UPDATE", msg)
    return msg.payload()


@route("DELETE", "/webhooks/{app_id}/{token}/messages/@original")
@route("DELETE", "/webhooks/{app_id}/{token}/messages/{message_id}")
async def delete_webhook_message(c: Call) -> Any:
    rec = _webhook_interaction(c)
    msg = _target(c, rec)
    msg.deleted = True
    await publish(c.fake, "MESSAGE_DELETE", msg)
    return None

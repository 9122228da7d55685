"""Discord's rules for a message body, as the real API enforces them (limits from the API docs).

Every check adds to one `FormErrors`, so a bad body is answered like Discord answers it: 400 code 50035
"Invalid Form Body" with every problem under its JSON path (``embeds.0.fields.1.value``), which discord.py
flattens into ``In embeds.0.fields.1.value: This field is required``.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from .routing import DiscordError

MAX_CONTENT = 2000
MAX_EMBEDS = 10
MAX_FILES = 10
EMBED_TITLE = 256
EMBED_DESCRIPTION = 4096
EMBED_FIELDS = 25
EMBED_FIELD_NAME = 256
EMBED_FIELD_VALUE = 1024
EMBED_FOOTER = 2048
EMBED_AUTHOR = 256
EMBED_TOTAL = 6000  # title + description + field names/values + footer text + author name, over all embeds
MAX_ACTION_ROWS = 5
MAX_ROW_BUTTONS = 5
MAX_CUSTOM_ID = 100
MAX_BUTTON_LABEL = 80
MAX_ALLOWED_MENTION_IDS = 100
IS_COMPONENTS_V2 = 1 << 15

ACTION_ROW, BUTTON, TEXT_INPUT = 1, 2, 4
SELECTS = {3, 5, 6, 7, 8}
LINK_STYLE, PREMIUM_STYLE = 5, 6
PARSE_TYPES = {"users", "roles", "everyone"}


class FormErrors:
    """Discord's nested ``errors`` object, built up path by path."""

    def __init__(self) -> None:
        self.tree: dict[str, Any] = {}

    def add(self, path: tuple[str | int, ...], code: str, message: str) -> None:
        node = self.tree
        for part in path:
            node = node.setdefault(str(part), {})
        node.setdefault("_errors", []).append({"code": code, "message": message})

    def too_long(self, path: tuple[str | int, ...], limit: int) -> None:
        self.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")

    def required(self, path: tuple[str | int, ...]) -> None:
        self.add(path, "BASE_TYPE_REQUIRED", "This field is required")

    def raise_if_any(self) -> None:
        if self.tree:
            raise DiscordError(400, 50035, "Invalid Form Body", self.tree)


def invalid_form(field: str, code: str, message: str) -> DiscordError:
    errors = FormErrors()
    errors.add((field,), code, message)
    return DiscordError(400, 50035, "Invalid Form Body", errors.tree)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def check_content(errors: FormErrors, content: Any) -> None:
    if content is None:
        return
    if not isinstance(content, str):
        errors.add(("content",), "BASE_TYPE_STRING", "Must be a string.")
    elif len(content) > MAX_CONTENT:
        errors.too_long(("content",), MAX_CONTENT)


def check_embeds(errors: FormErrors, embeds: Any) -> None:
    """Count and per-field limits, no empty field name/value, and 6000 characters over all embeds."""
    if embeds is None:
        return
    if not isinstance(embeds, list):
        errors.add(("embeds",), "BASE_TYPE_ARRAY", "Must be an array.")
        return
    if len(embeds) > MAX_EMBEDS:
        errors.too_long(("embeds",), MAX_EMBEDS)
    total = 0
    for i, embed in enumerate(embeds):
        if not isinstance(embed, dict):
            errors.add(("embeds", i), "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
            continue
        title, description = _text(embed.get("title")), _text(embed.get("description"))
        if len(title) > EMBED_TITLE:
            errors.too_long(("embeds", i, "title"), EMBED_TITLE)
        if len(description) > EMBED_DESCRIPTION:
            errors.too_long(("embeds", i, "description"), EMBED_DESCRIPTION)
        total += len(title) + len(description)
        fields = embed.get("fields") or []
        if len(fields) > EMBED_FIELDS:
            errors.too_long(("embeds", i, "fields"), EMBED_FIELDS)
        for j, fld in enumerate(fields):
            for key, limit in (("name", EMBED_FIELD_NAME), ("value", EMBED_FIELD_VALUE)):
                text = _text(fld.get(key))
                if not text.strip():
                    errors.required(("embeds", i, "fields", j, key))
                elif len(text) > limit:
                    errors.too_long(("embeds", i, "fields", j, key), limit)
                total += len(text)
        footer = _text((embed.get("footer") or {}).get("text"))
        if len(footer) > EMBED_FOOTER:
            errors.too_long(("embeds", i, "footer", "text"), EMBED_FOOTER)
        author = _text((embed.get("author") or {}).get("name"))
        if len(author) > EMBED_AUTHOR:
            errors.too_long(("embeds", i, "author", "name"), EMBED_AUTHOR)
        total += len(footer) + len(author)
        if total > EMBED_TOTAL:
            errors.add(("embeds", i), "BASE_TYPE_MAX_LENGTH", f"Embed size exceeds maximum size of {EMBED_TOTAL}")
            total = -(10**9)  # report the overflow once, at the embed that crossed the line


def check_components(errors: FormErrors, components: Any, *, flags: int = 0) -> None:
    """Action rows (at most 5) of at most 5 buttons or one select; custom_id 1-100 characters and unique."""
    if components is None:
        return
    if not isinstance(components, list):
        errors.add(("components",), "BASE_TYPE_ARRAY", "Must be an array.")
        return
    seen: set[str] = set()

    def check_custom_id(item: dict[str, Any], path: tuple[str | int, ...]) -> None:
        cid = item.get("custom_id")
        if not isinstance(cid, str) or not cid:
            errors.required((*path, "custom_id"))
        elif len(cid) > MAX_CUSTOM_ID:
            errors.too_long((*path, "custom_id"), MAX_CUSTOM_ID)
        elif cid in seen:
            errors.add((*path, "custom_id"), "COMPONENT_CUSTOM_ID_DUPLICATED", "Component custom id cannot be duplicated")
        else:
            seen.add(cid)

    def check_item(item: dict[str, Any], path: tuple[str | int, ...]) -> None:
        kind = item.get("type")
        if kind == BUTTON:
            style = item.get("style")
            if style == LINK_STYLE:
                if not item.get("url"):
                    errors.required((*path, "url"))
                if "custom_id" in item:
                    errors.add((*path, "custom_id"), "BUTTON_COMPONENT_CUSTOM_ID_NOT_ALLOWED",
                               "A custom id cannot be set on link buttons")
            elif style != PREMIUM_STYLE:
                check_custom_id(item, path)
            label = _text(item.get("label"))
            if len(label) > MAX_BUTTON_LABEL:
                errors.too_long((*path, "label"), MAX_BUTTON_LABEL)
            if style != PREMIUM_STYLE and not label and not item.get("emoji"):
                errors.add(path, "BUTTON_COMPONENT_MISSING_LABEL_OR_EMOJI", "A label or an emoji is required")
        elif kind in SELECTS or kind == TEXT_INPUT:
            check_custom_id(item, path)
        for key in ("components", "accessory", "component"):  # containers/sections (components v2), labels
            sub = item.get(key)
            for k, child in ([(key, sub)] if isinstance(sub, dict) else list(enumerate(sub or []))):
                if isinstance(child, dict):
                    check_item(child, (*path, key, k) if isinstance(k, int) else (*path, key))

    v2 = bool(flags & IS_COMPONENTS_V2)
    if not v2 and len(components) > MAX_ACTION_ROWS:
        errors.too_long(("components",), MAX_ACTION_ROWS)
    for i, row in enumerate(components):
        if not isinstance(row, dict):
            errors.add(("components", i), "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
            continue
        if not v2 and row.get("type") != ACTION_ROW:
            errors.add(("components", i, "type"), "COMPONENT_LAYOUT_WIDTH_EXCEEDED" if row.get("type") == BUTTON
                       else "UNION_TYPE_CHOICES", "Top-level components must be action rows")
            continue
        if row.get("type") == ACTION_ROW:
            items = row.get("components") or []
            has_select = any(isinstance(c, dict) and c.get("type") in SELECTS for c in items)
            if not items:
                errors.add(("components", i, "components"), "BASE_TYPE_MIN_LENGTH", "Must be 1 or more in length.")
            elif len(items) > MAX_ROW_BUTTONS:
                errors.too_long(("components", i, "components"), MAX_ROW_BUTTONS)
            elif has_select and len(items) > 1:
                errors.add(("components", i, "components"), "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                           "The specified component exceeds the maximum width")
        check_item(row, ("components", i))


def check_allowed_mentions(errors: FormErrors, allowed: Any) -> None:
    if allowed is None:
        return
    if not isinstance(allowed, dict):
        errors.add(("allowed_mentions",), "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
        return
    parse = allowed.get("parse") or []
    for k, value in enumerate(parse):
        if value not in PARSE_TYPES:
            errors.add(("allowed_mentions", "parse", k), "ENUM_TYPE_COERCE", f"Value \"{value}\" is not a valid enum value.")
    for key in ("users", "roles"):
        ids = allowed.get(key) or []
        if key in parse and ids:
            errors.add(("allowed_mentions",), "ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                       f"parse:[\"{key}\"] and {key}: [ids] are mutually exclusive.")
        if len(ids) > MAX_ALLOWED_MENTION_IDS:
            errors.too_long(("allowed_mentions", key), MAX_ALLOWED_MENTION_IDS)


# ---------------------------------------------------------------------------- mentions
USER_MENTION = re.compile(r"<@!?(\d+)>")
ROLE_MENTION = re.compile(r"<@&(\d+)>")
EVERYONE_MENTION = re.compile(r"@(?:everyone|here)")


def mentioned_ids(content: str) -> tuple[list[int], list[int], bool]:
    """User ids, role ids (in order, once each) and whether @everyone/@here appears in ``content``."""
    users = list(dict.fromkeys(int(m) for m in USER_MENTION.findall(content)))
    roles = list(dict.fromkeys(int(m) for m in ROLE_MENTION.findall(content)))
    return users, roles, bool(EVERYONE_MENTION.search(content))


def allowed_parse(allowed: dict[str, Any] | None) -> tuple[set[str], set[int] | None, set[int] | None, bool]:
    """(parse types, explicit user ids, explicit role ids, replied_user) of an allowed_mentions object.

    Without the object Discord parses everything and pings the author of a replied-to message; with it,
    only what it names is pinged and ``replied_user`` defaults to false.
    """
    if allowed is None:
        return set(PARSE_TYPES), None, None, True
    parse = set(allowed.get("parse") or [])
    users = {int(u) for u in allowed.get("users") or []}
    roles = {int(r) for r in allowed.get("roles") or []}
    return parse, users, roles, bool(allowed.get("replied_user", False))


# ---------------------------------------------------------------------------- attachment filenames
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def clean_filename(name: str) -> str:
    """An uploaded file's name as Discord stores it.

    Discord cleans names the way werkzeug's ``secure_filename`` does (discord-api-docs #4292, #7754): accents
    folded to ASCII, other non-ASCII dropped, path separators and runs of whitespace become one ``_``, anything
    outside ``[A-Za-z0-9_.-]`` removed, leading/trailing dots and underscores stripped. A name with nothing left
    before its extension becomes ``unknown`` + the extension (Discord keeps the original as ``title``).
    """
    cleaned = _secure(name)
    stem, dot, ext = re.split(r"[/\\]", name)[-1].rpartition(".")
    if not dot:
        stem, ext = ext, ""
    if not cleaned or (stem and not _secure(stem)):
        safe_ext = _secure(ext)
        return f"unknown.{safe_ext}" if safe_ext else "unknown"
    return cleaned


def _secure(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    for sep in ("/", "\\"):
        ascii_name = ascii_name.replace(sep, " ")
    return _UNSAFE.sub("", "_".join(ascii_name.split())).strip("._")

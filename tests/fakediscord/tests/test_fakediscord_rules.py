"""The fake Discord refuses what Discord refuses, with Discord's status, code and error paths (one test per rule).

Most checks call the REST API directly (the exact JSON answer matters); a few go through discord.py to show the
client sees the same (its HTTPException text flattens the error paths: ``In embeds.0.title: ...``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import discord
import pytest

from tests.fakediscord import FakeDiscord, Perm, run_discord_client
from tests.fakediscord.rules import clean_filename

pytestmark = pytest.mark.e2e


async def api(fake: FakeDiscord, method: str, path: str, body: Any = None,
              files: list[tuple[str, bytes]] | None = None) -> tuple[int, Any]:
    """One REST call as the bot: (status, parsed JSON or None)."""
    headers = {"Authorization": "Bot test"}
    async with aiohttp.ClientSession() as http:
        kwargs: dict[str, Any] = {"headers": headers}
        if files is not None:
            # as discord.py sends files: names in payload_json's attachments (aiohttp percent-quotes the
            # multipart filename, which Discord would take literally)
            body = {**(body or {}), "attachments": [{"id": i, "filename": name} for i, (name, _) in enumerate(files)]}
            form = aiohttp.FormData()
            form.add_field("payload_json", json.dumps(body), content_type="application/json")
            for i, (name, data) in enumerate(files):
                form.add_field(f"files[{i}]", data, filename=name, content_type="application/octet-stream")
            kwargs["data"] = form
        elif body is not None:
            kwargs["json"] = body
        async with http.request(method, f"{fake.api_base}{path}", **kwargs) as resp:
            text = await resp.text()
            return resp.status, (json.loads(text) if text else None)


def post(fake: FakeDiscord, body: Any, channel: Any = None, files: list[tuple[str, bytes]] | None = None):
    return api(fake, "POST", f"/channels/{(channel or fake.channel).id}/messages", body, files)


def form_error(body: dict[str, Any], *path: str | int) -> str:
    """The first error code at ``path`` of a 50035 answer (KeyError if Discord would not put one there)."""
    assert body["code"] == 50035 and body["message"] == "Invalid Form Body", body
    node = body["errors"]
    for part in path:
        node = node[str(part)]
    return node["_errors"][0]["code"]


# ---------------------------------------------------------------------------------------------- content
async def test_content_over_2000_characters_is_refused(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    status, body = await post(fake, {"content": "x" * 2001})
    assert status == 400 and form_error(body, "content") == "BASE_TYPE_MAX_LENGTH"
    status, body = await post(fake, {"content": "x" * 2000})
    assert status == 200 and len(body["content"]) == 2000


async def test_empty_and_blank_messages_are_refused(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    payloads: list[dict[str, Any]] = [{}, {"content": ""}, {"content": "   \n"}, {"embeds": []}]
    for payload in payloads:
        status, body = await post(fake, payload)
        assert (status, body["code"]) == (400, 50006), payload
        assert body["message"] == "Cannot send an empty message"


# ---------------------------------------------------------------------------------------------- embeds
def _field(name: str = "n", value: str = "v") -> dict[str, Any]:
    return {"name": name, "value": value, "inline": True}


@pytest.mark.parametrize(
    ("embeds", "path", "code"),
    [
        ([{"title": "t" * 257}], ("embeds", 0, "title"), "BASE_TYPE_MAX_LENGTH"),
        ([{"description": "d" * 4097}], ("embeds", 0, "description"), "BASE_TYPE_MAX_LENGTH"),
        ([{"fields": [_field()] * 26}], ("embeds", 0, "fields"), "BASE_TYPE_MAX_LENGTH"),
        ([{"fields": [_field("n" * 257)]}], ("embeds", 0, "fields", 0, "name"), "BASE_TYPE_MAX_LENGTH"),
        ([{"fields": [_field(), _field(value="v" * 1025)]}], ("embeds", 0, "fields", 1, "value"),
         "BASE_TYPE_MAX_LENGTH"),
        ([{"fields": [_field(), _field(value="")]}], ("embeds", 0, "fields", 1, "value"), "BASE_TYPE_REQUIRED"),
        ([{"fields": [_field(value=" ")]}], ("embeds", 0, "fields", 0, "value"), "BASE_TYPE_REQUIRED"),
        ([{"fields": [_field(name="")]}], ("embeds", 0, "fields", 0, "name"), "BASE_TYPE_REQUIRED"),
        ([{"footer": {"text": "f" * 2049}}], ("embeds", 0, "footer", "text"), "BASE_TYPE_MAX_LENGTH"),
        ([{"author": {"name": "a" * 257}}], ("embeds", 0, "author", "name"), "BASE_TYPE_MAX_LENGTH"),
        ([{"title": "x"}] * 11, ("embeds",), "BASE_TYPE_MAX_LENGTH"),
        # 6000 characters over all embeds: each embed alone is within its limits
        ([{"description": "d" * 4000}, {"description": "d" * 2001}], ("embeds", 1), "BASE_TYPE_MAX_LENGTH"),
    ],
    ids=["title", "description", "25-fields", "field-name", "field-value", "empty-value", "blank-value",
         "empty-name", "footer", "author", "10-embeds", "6000-total"],
)
async def test_embed_limits(fake_discord: FakeDiscord, embeds: list[dict[str, Any]], path: tuple[Any, ...],
                            code: str) -> None:
    status, body = await post(fake_discord, {"content": "hi", "embeds": embeds})
    assert status == 400 and form_error(body, *path) == code


async def test_embeds_at_the_limits_are_accepted(fake_discord: FakeDiscord) -> None:
    embed = {"title": "t" * 256, "description": "d" * 4096, "fields": [_field("n" * 256, "v" * 1024)],
             "footer": {"text": "f" * 368}}  # 256 + 4096 + 1280 + 368 = 6000 characters exactly
    status, body = await post(fake_discord, {"embeds": [embed]})
    assert status == 200 and body["embeds"][0]["title"] == "t" * 256
    status, _ = await post(fake_discord, {"embeds": [{"fields": [_field()] * 25}] + [{"title": "x"}] * 9})
    assert status == 200


async def test_discord_py_sees_the_error_path(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    async with run_discord_client(discord.Client(intents=discord.Intents.default()), fake) as client:
        channel = client.get_channel(fake.channel.id)
        assert isinstance(channel, discord.TextChannel)
        with pytest.raises(discord.HTTPException) as info:
            await channel.send(embed=discord.Embed(title="ok").add_field(name="empty", value=""))
        assert info.value.status == 400 and info.value.code == 50035
        assert "In embeds.0.fields.0.value: This field is required" in str(info.value)
        with pytest.raises(discord.HTTPException, match="In content: Must be 2000 or fewer in length"):
            await channel.send("x" * 2001)


# ---------------------------------------------------------------------------------------------- components
def _button(custom_id: str, label: str = "b") -> dict[str, Any]:
    return {"type": 2, "style": 2, "label": label, "custom_id": custom_id}


def _rows(n_rows: int, per_row: int) -> list[dict[str, Any]]:
    return [{"type": 1, "components": [_button(f"r{r}b{b}") for b in range(per_row)]} for r in range(n_rows)]


@pytest.mark.parametrize(
    ("components", "path", "code"),
    [
        (_rows(6, 1), ("components",), "BASE_TYPE_MAX_LENGTH"),
        (_rows(1, 6), ("components", 0, "components"), "BASE_TYPE_MAX_LENGTH"),
        ([{"type": 1, "components": [_button("x" * 101)]}], ("components", 0, "components", 0, "custom_id"),
         "BASE_TYPE_MAX_LENGTH"),
        ([{"type": 1, "components": [_button("same")]}, {"type": 1, "components": [_button("same")]}],
         ("components", 1, "components", 0, "custom_id"), "COMPONENT_CUSTOM_ID_DUPLICATED"),
        ([{"type": 1, "components": [{"type": 2, "style": 1, "label": "no id"}]}],
         ("components", 0, "components", 0, "custom_id"), "BASE_TYPE_REQUIRED"),
        ([{"type": 1, "components": [{"type": 2, "style": 1, "custom_id": "bare"}]}],
         ("components", 0, "components", 0), "BUTTON_COMPONENT_MISSING_LABEL_OR_EMOJI"),
        ([{"type": 1, "components": [_button("b", "l" * 81)]}], ("components", 0, "components", 0, "label"),
         "BASE_TYPE_MAX_LENGTH"),
        ([{"type": 1, "components": [{"type": 3, "custom_id": "s", "options": [{"label": "a", "value": "a"}]},
                                     _button("b")]}], ("components", 0, "components"),
         "COMPONENT_LAYOUT_WIDTH_EXCEEDED"),
        ([_button("top")], ("components", 0, "type"), "COMPONENT_LAYOUT_WIDTH_EXCEEDED"),
    ],
    ids=["6-rows", "6-buttons", "custom-id-101", "duplicate-id", "no-custom-id", "no-label", "label-81",
         "select-and-button", "button-outside-row"],
)
async def test_component_rules(fake_discord: FakeDiscord, components: list[dict[str, Any]],
                               path: tuple[Any, ...], code: str) -> None:
    status, body = await post(fake_discord, {"content": "c", "components": components})
    assert status == 400 and form_error(body, *path) == code


async def test_five_rows_of_five_buttons_are_accepted(fake_discord: FakeDiscord) -> None:
    status, body = await post(fake_discord, {"content": "c", "components": _rows(5, 5)})
    assert status == 200 and len(body["components"]) == 5
    link = {"type": 1, "components": [{"type": 2, "style": 5, "label": "site", "url": "https://example.com"}]}
    status, _ = await post(fake_discord, {"content": "c", "components": [link]})
    assert status == 200


# ---------------------------------------------------------------------------------------------- mentions
async def test_mentions_follow_allowed_mentions(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    role = fake.add_role(fake.guild, "Painters", Perm.DEFAULT)
    role.mentionable = True
    secret_role = fake.add_role(fake.guild, "Staff", Perm.DEFAULT)  # not mentionable
    content = f"{fake.member.mention} <@!{fake.admin.id}> {role.mention} {secret_role.mention} @everyone"

    async def sent(allowed: dict[str, Any] | None) -> Any:
        status, body = await post(fake, {"content": content, **({} if allowed is None else
                                                                 {"allowed_mentions": allowed})})
        assert status == 200, body
        return fake.messages[int(body["id"])]

    # No allowed_mentions: everything is parsed; the non-mentionable role and @everyone need Mention Everyone.
    msg = await sent(None)
    assert msg.mentions == [fake.member, fake.admin] and msg.mention_roles == [role.id]
    assert not msg.mention_everyone
    assert msg.payload()["mentions"][0]["id"] == str(fake.member.id)
    none = await sent({"parse": []})  # discord.AllowedMentions.none()
    assert (none.mentions, none.mention_roles, none.mention_everyone) == ([], [], False)
    only = await sent({"parse": [], "users": [str(fake.admin.id)]})
    assert only.mentions == [fake.admin]
    users = await sent({"parse": ["users"]})
    assert users.mentions == [fake.member, fake.admin] and users.mention_roles == []

    fake.bot_role.permissions |= Perm.MENTION_EVERYONE
    everything = await sent({"parse": ["users", "roles", "everyone"]})
    assert everything.mention_everyone and everything.mention_roles == [role.id, secret_role.id]
    status, body = await post(fake, {"content": content, "allowed_mentions": {"parse": ["users"],
                                                                              "users": [str(fake.member.id)]}})
    assert status == 400 and form_error(body, "allowed_mentions") == "ALLOWED_MENTIONS_PARSE_EXCLUSIVE"


async def test_replied_user_is_pinged_only_when_allowed(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    question = await fake.post_message(content="hello bot")
    ref = {"message_id": str(question.id)}
    for allowed, pinged in [(None, True), ({"parse": ["users"]}, False),
                            ({"parse": ["users"], "replied_user": True}, True)]:
        body: dict[str, Any] = {"content": "a reply", "message_reference": ref}
        if allowed is not None:
            body["allowed_mentions"] = allowed
        status, data = await post(fake, body)
        assert status == 200 and data["type"] == 19
        assert (fake.member in fake.messages[int(data["id"])].mentions) is pinged, allowed
    # Editing never pings the replied-to author anew.
    status, data = await post(fake, {"content": "quiet", "message_reference": ref,
                                     "allowed_mentions": {"parse": []}})
    status, data = await api(fake, "PATCH", f"/channels/{fake.channel.id}/messages/{data['id']}",
                             {"content": "edited", "allowed_mentions": {"parse": [], "replied_user": True}})
    assert status == 200 and data["mentions"] == []


async def test_discord_py_allowed_mentions_none_pings_nobody(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    async with run_discord_client(discord.Client(intents=discord.Intents.default()), fake) as client:
        channel = client.get_channel(fake.channel.id)
        assert isinstance(channel, discord.TextChannel)
        quiet = await channel.send(f"<@{fake.member.id}>", allowed_mentions=discord.AllowedMentions.none())
        loud = await channel.send(f"<@{fake.member.id}>")
    assert fake.messages[quiet.id].mentions == [] and fake.messages[loud.id].mentions == [fake.member]


# ---------------------------------------------------------------------------------------------- replies
async def test_replies_to_deleted_or_foreign_messages(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    gone = await fake.post_message(content="soon deleted")
    await fake.delete_user_message(gone)
    elsewhere = await fake.post_message(fake.other_channel, content="in #art")
    for target in (gone, elsewhere):
        status, body = await post(fake, {"content": "re", "message_reference": {"message_id": str(target.id)}})
        assert status == 400 and form_error(body, "message_reference") == "MESSAGE_REFERENCE_UNKNOWN_MESSAGE"
        # fail_if_not_exists=false: sent as a plain message, not a reply
        status, body = await post(fake, {"content": "re", "message_reference": {
            "message_id": str(target.id), "fail_if_not_exists": False}})
        assert status == 200 and body["type"] == 0 and "message_reference" not in body
    here = await fake.post_message(content="here")
    status, body = await post(fake, {"content": "re", "message_reference": {
        "message_id": str(here.id), "channel_id": str(fake.other_channel.id)}})  # a wrong channel_id
    assert status == 400 and form_error(body, "message_reference") == "MESSAGE_REFERENCE_UNKNOWN_MESSAGE"
    status, body = await post(fake, {"content": "re", "message_reference": {"message_id": str(here.id)}})
    assert status == 200 and body["type"] == 19 and body["message_reference"]["message_id"] == str(here.id)


async def test_replies_need_read_message_history(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    fake.set_permissions(fake.channel, fake.bot_role, deny=Perm.READ_MESSAGE_HISTORY)
    question = await fake.post_message(content="hi")
    status, body = await post(fake, {"content": "re", "message_reference": {"message_id": str(question.id)}})
    assert (status, body["code"]) == (403, 50013)
    status, body = await post(fake, {"content": "not a reply"})
    assert status == 200
    status, body = await api(fake, "GET", f"/channels/{fake.channel.id}/messages/{question.id}")
    assert (status, body["code"]) == (403, 50001)  # fetching a message needs it too


# ---------------------------------------------------------------------------------------------- permissions
async def test_embed_links_missing_drops_embeds(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    fake.set_permissions(fake.channel, fake.guild.everyone_role, deny=Perm.EMBED_LINKS)
    status, body = await post(fake, {"content": "text", "embeds": [{"title": "lost"}]})
    assert status == 200 and body["content"] == "text" and body["embeds"] == []
    status, body = await post(fake, {"embeds": [{"title": "lost"}]})  # nothing left to send
    assert (status, body["code"]) == (400, 50006)
    status, body = await post(fake, {"embeds": [{"title": "kept"}]}, channel=fake.other_channel)
    assert status == 200 and body["embeds"][0]["title"] == "kept"


async def test_channel_overwrites_are_applied_like_discord(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    everyone, bot = fake.guild.everyone_role, fake.bot_user
    fake.set_permissions(fake.channel, everyone, deny=Perm.SEND_MESSAGES)
    status, body = await post(fake, {"content": "x"})
    assert (status, body["code"]) == (403, 50013)
    fake.set_permissions(fake.channel, fake.bot_role, allow=Perm.SEND_MESSAGES)  # a role allow beats @everyone
    assert (await post(fake, {"content": "x"}))[0] == 200
    fake.set_permissions(fake.channel, bot, deny=Perm.SEND_MESSAGES)  # the member's own overwrite beats roles
    assert (await post(fake, {"content": "x"}))[0] == 403
    fake.set_permissions(fake.channel, bot)  # removed
    fake.set_permissions(fake.channel, everyone, deny=Perm.VIEW_CHANNEL)
    status, body = await post(fake, {"content": "x"})
    assert (status, body["code"]) == (403, 50001)  # cannot see the channel: Missing Access
    status, body = await api(fake, "GET", f"/channels/{fake.channel.id}")
    assert (status, body["code"]) == (403, 50001)
    assert (await post(fake, {"content": "x"}, channel=fake.other_channel))[0] == 200  # other channels unaffected
    fake.bot_role.permissions |= Perm.ADMINISTRATOR  # administrators ignore overwrites
    assert (await post(fake, {"content": "x"}))[0] == 200


async def test_overwrites_reach_the_client_and_interactions(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    fake.set_permissions(fake.channel, fake.bot_role, deny=Perm.ATTACH_FILES)
    fake.set_permissions(fake.channel, fake.member, allow=Perm.MANAGE_MESSAGES)
    seen: list[discord.Interaction] = []
    client = discord.Client(intents=discord.Intents.default())
    tree = discord.app_commands.CommandTree(client)

    @tree.command(name="perms", description="x")
    async def perms(interaction: discord.Interaction) -> None:
        seen.append(interaction)
        await interaction.response.send_message("ok")

    async def setup_hook() -> None:
        await tree.sync()

    client.setup_hook = setup_hook  # type: ignore[method-assign]
    async with run_discord_client(client, fake):
        channel = client.get_channel(fake.channel.id)
        assert isinstance(channel, discord.TextChannel)
        assert not channel.permissions_for(channel.guild.me).attach_files
        assert channel.permissions_for(channel.guild.me).send_messages
        await fake.wait_for_ack(await fake.invoke_slash("perms"))
        interaction = seen[0]
        assert interaction.permissions.manage_messages and not interaction.app_permissions.attach_files
        with pytest.raises(discord.Forbidden) as info:
            await channel.send(file=discord.File(__file__))
        assert info.value.code == 50013


# ---------------------------------------------------------------------------------------------- edits
async def test_editing_a_message_to_nothing_is_refused(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    _, text = await post(fake, {"content": "text"})
    path = f"/channels/{fake.channel.id}/messages/{text['id']}"
    status, body = await api(fake, "PATCH", path, {"content": ""})
    assert (status, body["code"]) == (400, 50006)
    assert fake.messages[int(text["id"])].content == "text"  # unchanged
    assert (await api(fake, "PATCH", path, {"content": "", "embeds": [{"title": "e"}]}))[0] == 200
    status, body = await api(fake, "PATCH", path, {"embeds": []})
    assert (status, body["code"]) == (400, 50006)
    _, with_file = await post(fake, {}, files=[("a.txt", b"data")])
    status, body = await api(fake, "PATCH", f"/channels/{fake.channel.id}/messages/{with_file['id']}",
                             {"attachments": []})
    assert (status, body["code"]) == (400, 50006)


async def test_deleted_messages_are_unknown(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    _, sent = await post(fake, {"content": "bye"})
    path = f"/channels/{fake.channel.id}/messages/{sent['id']}"
    assert (await api(fake, "DELETE", path))[0] == 204
    for method, suffix, body in [("GET", "", None), ("PATCH", "", {"content": "x"}), ("DELETE", "", None),
                                 ("PUT", "/reactions/%F0%9F%91%8D/@me", None)]:
        status, answer = await api(fake, method, path + suffix, body)
        assert (status, answer["code"]) == (404, 10008), (method, suffix)


# ---------------------------------------------------------------------------------------------- DMs
async def test_closed_dms_are_refused_with_50007(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    fake.set_dms_open(fake.member, False)
    status, _ = await api(fake, "POST", "/users/@me/channels", {"recipient_id": str(fake.member.id)})
    assert status == 200  # opening the DM channel works; sending does not
    status, body = await post(fake, {"content": "psst"}, channel=fake.dm_channel)
    assert (status, body["code"], body["message"]) == (403, 50007, "Cannot send messages to this user")
    stranger = fake.add_user("stranger")  # shares no server with the bot
    status, body = await post(fake, {"content": "hi"}, channel=fake.add_dm_channel(stranger))
    assert (status, body["code"]) == (403, 50007)
    other_bot = fake.add_user("OtherBot", bot=True)
    fake.add_member(fake.guild, other_bot)
    assert (await post(fake, {"content": "hi"}, channel=fake.add_dm_channel(other_bot)))[1]["code"] == 50007
    fake.set_dms_open(fake.member, True)
    assert (await post(fake, {"content": "psst"}, channel=fake.dm_channel))[0] == 200


async def test_discord_py_user_send_to_closed_dms_raises_forbidden(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    fake.set_dms_open(fake.member, False)
    async with run_discord_client(discord.Client(intents=discord.Intents.default()), fake) as client:
        user = await client.fetch_user(fake.member.id)
        with pytest.raises(discord.Forbidden) as info:
            await user.send("hello")
        assert info.value.code == 50007


# ---------------------------------------------------------------------------------------------- uploads
async def test_per_file_and_per_request_upload_limits(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    fake.guild.upload_limit = 1000
    status, body = await post(fake, {}, files=[("big.bin", b"x" * 1001)])
    assert (status, body["code"], body["message"]) == (413, 40005, "Request entity too large")
    status, body = await post(fake, {}, files=[("a.bin", b"x" * 900), ("b.bin", b"y" * 900)])
    assert status == 200 and [a["size"] for a in body["attachments"]] == [900, 900]  # the limit is per file
    fake.config.request_limit = 2500  # the whole request (every file and the JSON) is capped too
    status, body = await post(fake, {}, files=[("a.bin", b"x" * 900), ("b.bin", b"y" * 900),
                                               ("c.bin", b"z" * 900)])
    assert (status, body["code"]) == (413, 40005)
    # an interaction tells the bot the per-file limit of its channel
    fake.config.strict_commands = False
    record = await fake.invoke_slash("anything")
    assert record.payload["attachment_size_limit"] == 1000
    record = await fake.invoke_slash("anything", channel=fake.dm_channel)
    assert record.payload["attachment_size_limit"] == 10 * 1024 * 1024


@pytest.mark.parametrize(
    ("uploaded", "stored"),
    [("my file (1).png", "my_file_1.png"), ("_bug1.png", "bug1.png"), ("café.jpg", "cafe.jpg"),
     ("привет.png", "unknown.png"), ("../../etc/passwd", "etc_passwd"), ("plain.png", "plain.png")],
)
async def test_attachment_filenames_are_cleaned_like_discord(fake_discord: FakeDiscord, uploaded: str,
                                                             stored: str) -> None:
    fake = fake_discord
    assert clean_filename(uploaded) == stored
    status, body = await post(fake, {"content": "f"}, files=[(uploaded, b"data")])
    assert status == 200
    (att,) = body["attachments"]
    assert att["filename"] == stored and att["url"].endswith("/" + stored)
    assert att.get("title") == (uploaded if uploaded != stored else None)
    user_msg = await fake.post_message(content="mine", attachments=[(uploaded, b"data")])
    assert user_msg.attachments[0].filename == stored  # users' uploads are cleaned too
    async with aiohttp.ClientSession() as http, http.get(user_msg.attachments[0].url) as resp:
        assert resp.status == 200 and await resp.read() == b"data"


# ---------------------------------------------------------------------------------------------- clocks, shards
async def test_backdated_interaction_ages_the_token(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    fake.config.strict_commands = False
    created: list[float] = []
    client = discord.Client(intents=discord.Intents.default())

    @client.event
    async def on_interaction(interaction: discord.Interaction) -> None:
        created.append((discord.utils.utcnow() - interaction.created_at).total_seconds())
        await interaction.response.defer()

    async with run_discord_client(client, fake):
        record = await fake.invoke_slash("anything", age=897)
        await fake.wait_for_ack(record)  # the 3 s acknowledgement clock starts at dispatch
        assert 896 < created[0] < 900 and 896 < record.token_age < 900
        await fake.wait_for(lambda: record.token_age > 900, timeout=15, what="the token to pass 15 minutes")
        status, body = await api(fake, "PATCH", f"/webhooks/{fake.application_id}/{record.token}/messages/@original",
                                 {"content": "late"})
        assert (status, body["code"]) == (401, 50027)


async def test_shards_get_their_guilds_only(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    fake.config.shard_count = 2
    for i in range(50):  # a guild on each shard (shard = (guild_id >> 22) % 2: the id's millisecond)
        if len({(g.id >> 22) % 2 for g in fake.guilds.values()}) == 2:
            break
        guild = fake.add_guild(f"g{i}", fake.owner)
        fake.add_member(guild, fake.bot_user)
        await asyncio.sleep(0.002)  # the next id lands in another millisecond
    status, body = await api(fake, "GET", "/gateway/bot")
    assert status == 200 and body["shards"] == 2
    for shard_id in (0, 1):
        client = discord.Client(intents=discord.Intents.default(), shard_id=shard_id, shard_count=2)
        async with run_discord_client(client, fake):
            want = {g.id for g in fake.guilds.values() if (g.id >> 22) % 2 == shard_id}
            assert {g.id for g in client.guilds} == want and want
    assert [s.shard for s in fake.gateway.sessions.values()] == [(0, 2), (1, 2)]


async def test_invalid_shard_is_closed_with_4010(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    async with aiohttp.ClientSession() as http, http.ws_connect(fake.gateway_url + "?v=10&encoding=json") as ws:
        hello = await ws.receive_json()
        assert hello["op"] == 10
        await ws.send_json({"op": 2, "d": {"token": "x", "intents": 0, "properties": {}, "shard": [2, 2]}})
        msg = await ws.receive()
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4010

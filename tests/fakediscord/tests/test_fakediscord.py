"""Proves the fake Discord test bed with a small real discord.py bot (no mocks of discord.py)."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import aiohttp
import discord
import pytest
from discord.ext import commands
from discord.webhook.async_ import async_context, interaction_response_params
from PIL import Image

from tests.fakediscord import FakeDiscord, FileSpec, run_discord_client

pytestmark = pytest.mark.e2e


def _png(size: tuple[int, int] = (12, 8), color: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


PNG = _png()


class Counter(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=30)
        self.count = 0

    @discord.ui.button(label="+1", custom_id="counter:add")
    async def add(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        self.count += 1
        await interaction.response.edit_message(content=f"count {self.count}", view=self)


class Feedback(discord.ui.Modal, title="Feedback"):
    text: discord.ui.TextInput[Any] = discord.ui.TextInput(label="Your feedback", custom_id="feedback:text")

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"thanks for: {self.text.value}")


def make_bot(*, sleep_before_ack: float = 0.0, sleep_after_defer: float = 0.0) -> commands.Bot:
    intents = discord.Intents.default()
    intents.message_content = True
    intents.members = True
    bot = commands.Bot(command_prefix="!", intents=intents)
    bot.errors: list[Exception] = []  # type: ignore[misc]

    @bot.command()
    async def ping(ctx: commands.Context[commands.Bot]) -> None:
        async with ctx.typing():
            await ctx.message.add_reaction("\N{WHITE HEAVY CHECK MARK}")
            await ctx.reply("pong", file=discord.File(io.BytesIO(PNG), "pong.png"))

    @bot.command()
    async def size(ctx: commands.Context[commands.Bot]) -> None:
        att = ctx.message.attachments[0]
        try:
            data = await att.read()
        except discord.HTTPException as exc:
            await ctx.send(f"error {exc.status}")
        else:
            await ctx.send(f"size {len(data)} {att.content_type} {att.width}x{att.height}")

    @bot.command()
    async def dmme(ctx: commands.Context[commands.Bot]) -> None:
        await ctx.author.send("hello in private")

    @bot.command()
    async def big(ctx: commands.Context[commands.Bot]) -> None:
        try:
            await ctx.send(file=discord.File(io.BytesIO(b"x" * 5000), "big.bin"))
        except discord.HTTPException as exc:
            bot.errors.append(exc)
            await ctx.send(f"too big: {exc.code}")

    @bot.tree.command(name="echo", description="echo an image back, mirrored")
    async def echo(interaction: discord.Interaction, image: discord.Attachment, note: str = "") -> None:
        await asyncio.sleep(sleep_before_ack)
        try:
            await interaction.response.defer(thinking=True)
        except discord.HTTPException as exc:
            bot.errors.append(exc)
            return
        await asyncio.sleep(sleep_after_defer)
        data = await image.read()
        mirrored = bytes(reversed(data))
        try:
            await interaction.edit_original_response(
                content=f"got {image.filename} {image.width}x{image.height} {len(data)} bytes {note}".strip(),
                attachments=[discord.File(io.BytesIO(mirrored), "mirrored.bin")],
            )
            await interaction.followup.send("done", ephemeral=True)
        except discord.HTTPException as exc:
            bot.errors.append(exc)

    @bot.tree.command(name="counter", description="a button counter")
    async def counter(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("count 0", view=Counter(),
                                                file=discord.File(io.BytesIO(PNG), "card.png"))

    @bot.tree.command(name="feedback", description="opens a modal")
    async def feedback(interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(Feedback())

    async def setup_hook() -> None:
        await bot.tree.sync()

    bot.setup_hook = setup_hook  # type: ignore[method-assign]
    return bot


async def test_ready_guild_cache_and_permissions(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    async with run_discord_client(make_bot(), fake) as bot:
        assert bot.user is not None and bot.user.id == fake.bot_user.id
        assert bot.application_id == fake.application_id
        guild = bot.get_guild(fake.guild.id)
        assert guild is not None and guild.name == "Test Guild"
        assert {c.name for c in guild.text_channels} == {"general", "art"}
        # members came through a GUILD_MEMBERS_CHUNK (op 8): only the bot is in GUILD_CREATE without presences
        admin, member, owner = (guild.get_member(u.id) for u in (fake.admin, fake.member, fake.owner))
        assert admin is not None and member is not None and owner is not None
        assert admin.guild_permissions.manage_guild and not member.guild_permissions.manage_guild
        assert owner.guild_permissions.administrator and guild.owner_id == fake.owner.id
        assert [r.name for r in admin.roles] == ["@everyone", "Admin"]
        assert {c.name for c in fake.commands} == {"echo", "counter", "feedback"}  # tree.sync registered them
        assert fake.gateway.identify_count == 1 and fake.gateway.heartbeats >= 1
    assert fake.unknown_routes == []


async def test_prefix_command_reply_with_file_roundtrip(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    async with run_discord_client(make_bot(), fake):
        user_msg = await fake.post_message(fake.channel, fake.member, "!ping")
        reply = await fake.wait_for_message(fake.channel, lambda m: m.content == "pong")
        assert reply.reference_id == user_msg.id and reply.type == 19
        (att,) = reply.attachments
        assert (att.filename, att.data, att.content_type, att.width, att.height) == ("pong.png", PNG, "image/png",
                                                                                     12, 8)
        upload = next(r for r in fake.requests if r.method == "POST" and r.route == "/channels/{channel_id}/messages")
        assert upload.files[0].data == PNG and upload.json["attachments"][0]["filename"] == "pong.png"
        # the stored message is served back (GET) and fetchable through the CDN url
        async with aiohttp.ClientSession() as http, http.get(att.url) as resp:
            assert resp.status == 200 and await resp.read() == PNG
            assert resp.headers["Content-Type"] == "image/png"


async def test_slash_defer_then_edit_original_and_followup(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    async with run_discord_client(make_bot(), fake):
        src = _png((20, 10), "blue")
        rec = await fake.invoke_slash("echo", {"image": FileSpec("in.png", src), "note": "hi"}, fake.member)
        await fake.wait_for_ack(rec)
        assert rec.ack_type == 5 and rec.ack_latency is not None and rec.ack_latency < 3.0
        msg = await fake.wait_for_message(fake.channel, lambda m: m.content.startswith("got"))
        assert msg is rec.original and msg.content == f"got in.png 20x10 {len(src)} bytes hi"
        assert msg.attachments[0].data == bytes(reversed(src))
        followup = await fake.wait_for_message(fake.channel, lambda m: m.content == "done")
        assert followup.ephemeral and rec.followups == [followup]
        # the bot downloaded the option's attachment from the CDN
        assert any(r.route == "/cdn/attachments" and r.status == 200 for r in fake.requests)


async def test_button_view_edits_message(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    async with run_discord_client(make_bot(), fake):
        rec = await fake.invoke_slash("counter", user=fake.admin)
        msg = await fake.wait_for_message(fake.channel, lambda m: m.content == "count 0")
        assert rec.ack_type == 4 and msg.custom_ids() == ["counter:add"] and msg.attachments[0].data == PNG
        assert rec.ack_json["type"] == 4  # multipart callback: payload_json parsed
        for expected in (1, 2):
            click = await fake.click_button(msg, "counter:add", fake.member)
            await fake.wait_for_ack(click)
            assert click.ack_type == 7
            await fake.wait_for(lambda n=expected: msg.content == f"count {n}", what=f"count {expected}")
        assert msg.filenames == ["card.png"]  # edits without `attachments` keep them
        with pytest.raises(AssertionError, match="no component"):
            await fake.click_button(msg, "nope")


async def test_slash_and_button_in_dm(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    async with run_discord_client(make_bot(), fake):
        await fake.invoke_slash("counter", channel=fake.dm_channel)
        msg = await fake.wait_for_message(fake.dm_channel, lambda m: m.content == "count 0")
        click = await fake.wait_for_ack(await fake.click_button(msg, "counter:add"))
        assert click.ack_type == 7 and msg.content == "count 1"
        assert "user" in click.payload and "member" not in click.payload


async def test_modal_submit(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    async with run_discord_client(make_bot(), fake):
        opened = await fake.wait_for_ack(await fake.invoke_slash("feedback"))
        assert opened.ack_type == 9 and opened.modal is not None and opened.modal["title"] == "Feedback"
        submitted = await fake.submit_modal(opened, {"feedback:text": "lovely"})
        await fake.wait_for_message(fake.channel, lambda m: m.content == "thanks for: lovely")
        assert submitted.ack_type == 4


async def test_dm_fetch_edit_delete(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    async with run_discord_client(make_bot(), fake) as bot:
        await fake.post_message(fake.channel, fake.member, "!dmme")
        dm = await fake.wait_for_message(fake.dm_channel, lambda m: m.content == "hello in private")
        assert any(r.route == "/users/@me/channels" for r in fake.requests)
        # fetch/edit/delete through discord.py itself
        channel = bot.get_channel(fake.channel.id)
        assert isinstance(channel, discord.TextChannel)
        await fake.post_message(fake.channel, fake.member, "!ping")
        reply = await fake.wait_for_message(fake.channel, lambda m: m.content == "pong")
        fetched = await channel.fetch_message(reply.id)
        assert fetched.attachments[0].filename == "pong.png" and fetched.author.id == fake.bot_user.id
        assert await fetched.attachments[0].read() == PNG
        await fetched.edit(content="pong!")
        assert reply.content == "pong!" and reply.edits == 1 and reply.filenames == ["pong.png"]
        await fetched.delete()
        assert reply.deleted and not dm.deleted
        with pytest.raises(discord.NotFound):
            await channel.fetch_message(reply.id)
        assert [r.route for r in fake.requests if r.method == "POST" and "typing" in r.path]
        assert fake.reactions and fake.reactions[0][1] == "\N{WHITE HEAVY CHECK MARK}"


async def test_late_ack_gets_10062(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    fake.config.ack_deadline = 0.2  # Discord's 3 s, shrunk to keep the test fast
    bot = make_bot(sleep_before_ack=0.4)
    async with run_discord_client(bot, fake):
        rec = await fake.invoke_slash("echo", {"image": FileSpec("in.png", PNG)})
        await fake.wait_for(lambda: bot.errors, what="the bot to see the late-ack error")
        (err,) = bot.errors
        assert isinstance(err, discord.NotFound) and err.code == 10062
        assert rec.callback_errors == [10062] and not rec.acked


async def test_expired_token_raises_50027(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    fake.config.token_ttl = 0.3  # Discord's 15 min, shrunk
    bot = make_bot(sleep_after_defer=0.5)
    async with run_discord_client(bot, fake):
        rec = await fake.invoke_slash("echo", {"image": FileSpec("in.png", PNG)})
        await fake.wait_for(lambda: bot.errors, what="the bot to see the expired-token error")
        (err,) = bot.errors
        assert isinstance(err, discord.HTTPException) and err.status == 401 and err.code == 50027
        assert rec.ack_type == 5 and rec.original is not None and rec.original.loading


async def test_second_callback_is_rejected(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    bot = make_bot()
    results: list[Any] = []

    @bot.tree.command(name="twice", description="acks twice")
    async def twice(interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        try:  # bypass discord.py's local InteractionResponded guard to hit the server rule directly
            await async_context.get().create_interaction_response(
                interaction.id, interaction.token, session=interaction._session,
                params=interaction_response_params(5))
        except discord.HTTPException as exc:
            results.append(exc)

    async with run_discord_client(bot, fake):
        rec = await fake.invoke_slash("twice")
        await fake.wait_for(lambda: results, what="second callback result")
        assert results[0].status == 400 and results[0].code == 40060
        assert rec.ack_type == 5 and rec.callback_errors == [40060]


async def test_oversize_upload_413(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    fake.guild.upload_limit = 4096
    bot = make_bot()
    async with run_discord_client(bot, fake):
        await fake.post_message(fake.channel, fake.admin, "!big")
        await fake.wait_for_message(fake.channel, lambda m: m.content == "too big: 40005")
        assert bot.errors[0].status == 413
        assert not any(m.filenames == ["big.bin"] for m in fake.bot_messages())


@pytest.mark.parametrize("is_global", [False, True])
async def test_429_is_retried_by_discord_py(fake_discord: FakeDiscord, is_global: bool) -> None:
    fake = fake_discord
    async with run_discord_client(make_bot(), fake):
        fake.rate_limit(r"^POST /channels/\d+/messages$", count=2, retry_after=0.05, is_global=is_global)
        await fake.post_message(fake.channel, fake.member, "!ping")
        await fake.wait_for_message(fake.channel, lambda m: m.content == "pong")
        posts = [r.status for r in fake.requests if r.route == "/channels/{channel_id}/messages"]
        assert posts == [429, 429, 200]


async def test_gateway_drop_resumes(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    async with run_discord_client(make_bot(), fake):
        await fake.gateway.drop()
        await fake.wait_for(lambda: fake.gateway.resume_count == 1, timeout=10, what="a RESUME")
        await fake.post_message(fake.channel, fake.member, "!ping")
        await fake.wait_for_message(fake.channel, lambda m: m.content == "pong")
        assert fake.gateway.identify_count == 1


async def test_message_content_intent_is_enforced(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    seen: list[str] = []
    client = discord.Client(intents=discord.Intents.default())  # no message_content

    @client.event
    async def on_message(message: discord.Message) -> None:
        seen.append(message.content)

    async with run_discord_client(client, fake):
        await fake.post_message(content="secret")
        await fake.post_message(content=f"{fake.bot_user.mention} hello")
        await fake.post_message(fake.dm_channel, fake.member, "dm text")
        await fake.wait_for(lambda: len(seen) == 3, what="three messages")
    assert seen == ["", f"{fake.bot_user.mention} hello", "dm text"]


async def test_cdn_faults(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    data = bytes(range(256)) * 1024  # 256 KiB
    atts = {k: fake.make_attachment(fake.channel, FileSpec(f"{k}.png", data)) for k in
            ("missing", "slow", "cut", "ctype", "huge")}
    fake.cdn_fault(atts["missing"], "404")
    fake.cdn_fault(atts["slow"], "slow", delay=1.0)
    fake.cdn_fault(atts["cut"], "truncated", send_bytes=1000)
    fake.cdn_fault(atts["ctype"], "content_type", content_type="text/html")
    fake.cdn_fault(atts["huge"], "huge", size=50 * 1024 * 1024)
    async with aiohttp.ClientSession() as http:
        async with http.get(atts["missing"].url) as resp:
            assert resp.status == 404
        with pytest.raises(TimeoutError):
            async with http.get(atts["slow"].url, timeout=aiohttp.ClientTimeout(total=0.2)) as resp:
                await resp.read()
        async with http.get(atts["cut"].url) as resp:
            assert resp.content_length == len(data)
            with pytest.raises(aiohttp.ClientPayloadError):
                await resp.read()
        async with http.get(atts["ctype"].url) as resp:
            assert resp.content_type == "text/html" and await resp.read() == data
        async with http.get(atts["huge"].url) as resp:
            assert resp.content_length == 50 * 1024 * 1024
            got = 0
            async for chunk in resp.content.iter_chunked(65536):
                got += len(chunk)
                if got > 1024 * 1024:  # a careful downloader stops at its cap
                    break
            assert got > 1024 * 1024
    assert atts["ctype"].payload()["content_type"] == "image/png"  # the metadata still claims PNG


async def test_user_attachment_metadata_and_cdn_fault(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    async with run_discord_client(make_bot(), fake):
        att = fake.make_attachment(fake.channel, FileSpec("photo.png", PNG))
        fake.cdn_fault(att, "404")
        await fake.post_message(content="!size", attachments=[att])
        await fake.wait_for_message(fake.channel, lambda m: m.content == "error 404")
        fake.clear_cdn_fault(att)
        await fake.post_message(content="!size", attachments=[("again.png", PNG)])
        await fake.wait_for_message(fake.channel, lambda m: m.content == f"size {len(PNG)} image/png 12x8")


async def test_unknown_route_is_recorded(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    async with aiohttp.ClientSession() as http, http.get(f"{fake.api_base}/nope/123",
                                                         headers={"Authorization": "Bot x"}) as resp:
        assert resp.status == 404 and (await resp.json())["code"] == 0
    assert fake.unknown_routes == ["GET /nope/123"]
    fake.unknown_routes.clear()  # the fixture asserts the list is empty at teardown


async def test_tripwire_fires_once_after_discord_did_it_and_before_the_client_hears(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    seen: list[tuple[int, bool]] = []  # (messages the fake holds, whether the client had its answer)
    sent: list[discord.Message] = []

    def trip() -> None:
        seen.append((len(fake.bot_messages(fake.channel)), len(sent)))

    wire = fake.tripwire(r"^POST /channels/\d+/messages$", trip, when=lambda rec: "second" in rec.json["content"],
                         skip=1)
    async with run_discord_client(make_bot(), fake) as client:
        channel = client.get_channel(fake.channel.id)
        assert isinstance(channel, discord.TextChannel)
        for text in ("first", "second a", "second b", "second c"):
            sent.append(await channel.send(text))
    # "first" does not match; "second a" is skipped; at "second b" the message exists, the client has not heard back.
    assert seen == [(3, 2)] and wire.fired is not None and wire.fired.json["content"] == "second b"


async def test_history_after_a_message_starts_right_after_it(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    async with run_discord_client(make_bot(), fake) as client:
        channel = client.get_channel(fake.channel.id)
        assert isinstance(channel, discord.TextChannel)
        first = await channel.send("0")
        for i in range(1, 6):
            await channel.send(str(i))
        # As Discord: with `after`, the page holds the messages right after it (newest first within the page).
        page = await client.http.logs_from(channel.id, 2, after=first.id)
        assert [m["content"] for m in page] == ["2", "1"]
        assert [m.content async for m in channel.history(after=first, limit=None, oldest_first=True)] == \
            ["1", "2", "3", "4", "5"]


async def test_cdn_hold_keeps_a_download_open_until_the_test_lets_it_end(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    att = fake.make_attachment(fake.channel, FileSpec("held.png", PNG))
    hold = asyncio.Event()
    fake.cdn_fault(att, "slow", hold=hold)
    async with aiohttp.ClientSession() as http:
        download = asyncio.create_task(http.get(att.url))
        await fake.wait_for(lambda: any(r.path.endswith("/held.png") for r in fake.requests), what="the download")
        done, _ = await asyncio.wait([download], timeout=0.2)
        assert not done  # held: no answer yet, however long the test waits
        hold.set()
        async with await download as resp:
            assert resp.status == 200 and await resp.read() == PNG

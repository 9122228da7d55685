"""Two gateway shards (SHARD_COUNT=2 and auto): each server's events reach only its shard; both get answers."""

from __future__ import annotations

import discord

from bot.__main__ import make_bot
from bot.ops.health import DiscordGateway
from bot.ops.metrics import BotMetrics
from tests.e2e.bot_harness import E2E, ENGINE_OVERRIDES, fake, is_result, make_settings, png, pool
from tests.fakediscord import FakeDiscord, run_discord_client

pytestmark = E2E
__all__ = ["fake", "pool"]  # fixtures


def second_guild_on_the_other_shard(fake: FakeDiscord, shards: int = 2):
    """A second server whose id puts it on another shard than fake.guild ((id >> 22) % shards)."""
    home = (fake.guild.id >> 22) % shards
    while True:
        guild = fake.add_guild("Second Guild", fake.owner)
        if (guild.id >> 22) % shards != home:
            break
        del fake.guilds[guild.id]
    role = fake.add_role(guild, "StyleBot", fake.bot_role.permissions)
    fake.add_member(guild, fake.bot_user, roles=[role])
    fake.add_member(guild, fake.member)
    return guild, fake.add_channel(guild, "paint")


async def test_two_shards_each_serve_their_servers(fake, tmp_path, pool):
    guild2, channel2 = second_guild_on_the_other_shard(fake)
    bot = make_bot(make_settings(tmp_path, shard_count=2), backend=pool, manage_backend=False,
                   engine_overrides=ENGINE_OVERRIDES)
    assert isinstance(bot, discord.AutoShardedClient)
    metrics = BotMetrics()
    metrics.watch(gateway=DiscordGateway(bot), backend=lambda: pool)
    async with run_discord_client(bot, fake):
        assert sorted(s.shard for s in fake.gateway.sessions.values()) == [(0, 2), (1, 2)]
        assert bot.shard_count == 2 and sorted(bot.shards) == [0, 1]
        assert {g.id: g.shard_id for g in bot.guilds} == {
            fake.guild.id: (fake.guild.id >> 22) % 2, guild2.id: (guild2.id >> 22) % 2}
        health = metrics.health()
        assert health.ok, health.reason
        assert [(shard, up) for shard, up, _ in metrics.gateway_shards()] == [(0, True), (1, True)]

        for channel in (fake.channel, channel2):
            await fake.post_message(channel, fake.member, "!style fast",
                                    attachments=[("c.png", png(seed=1)), ("s.png", png(seed=2))])
            await fake.wait_for_message(channel, is_result, timeout=60)
        # Exactly one result per request: each MESSAGE_CREATE went to one shard only.
        assert len([m for m in fake.bot_messages() if is_result(m)]) == 2
        for session in fake.gateway.sessions.values():
            creates = [p["d"] for p in session.sent if p["t"] == "MESSAGE_CREATE"]
            assert creates and all((int(d["guild_id"]) >> 22) % 2 == session.shard[0] for d in creates)


async def test_auto_takes_discords_recommendation(fake, tmp_path, pool):
    fake.config.shard_count = 2
    bot = make_bot(make_settings(tmp_path, shard_count="auto"), backend=pool, manage_backend=False)
    async with run_discord_client(bot, fake):
        assert bot.shard_count == 2
        assert any(r.path == "/gateway/bot" for r in fake.requests)
        assert sorted(s.shard for s in fake.gateway.sessions.values()) == [(0, 2), (1, 2)]

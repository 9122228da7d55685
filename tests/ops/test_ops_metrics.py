"""/metrics on the running bot after a done, a refused and a cancelled request."""

from __future__ import annotations

import aiohttp

from bot.ops.health import MetricsServer
from bot.ops.metrics import BotMetrics, instrument
from tests.e2e.bot_harness import E2E, fake, is_error, is_result, make_settings, png, pool, running_bot
from tests.ops.metrics_text import sample, total

pytestmark = E2E
__all__ = ["fake", "pool"]  # fixtures


async def scrape(url: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as resp:
        assert resp.status == 200
        return await resp.text()


async def test_counts_after_done_refused_and_cancelled(fake, tmp_path, pool):
    fake.config.heartbeat_interval_ms = 300  # heartbeats (and so a latency reading) within the test
    metrics = BotMetrics()
    server = MetricsServer(metrics, "127.0.0.1:0")
    await server.start()
    try:
        async with running_bot(fake, make_settings(tmp_path), pool) as bot:
            instrument(bot, metrics)
            images = [("c.png", png(seed=1)), ("s.png", png(seed=2))]
            # done (a message command)
            await fake.post_message(fake.channel, fake.member, "!style fast", attachments=images)
            await fake.wait_for_message(fake.channel, is_result, timeout=60)
            # refused (one image only)
            await fake.post_message(fake.channel, fake.member, "!style fast", attachments=images[:1])
            await fake.wait_for_message(fake.channel, is_error, timeout=10)
            # cancelled (a slash command, slowed down so it is still running when Cancel is clicked)
            bot.jobs.engine_overrides = {"size": 48, "iterations": 5000}
            record = await fake.invoke_slash("style", {"content": images[0], "style": images[1], "preset": "fast"})
            await fake.wait_for_ack(record, timeout=3)
            await fake.wait_for(lambda: record.original is not None and "%" in (record.original.content or ""),
                                timeout=60, what="the slow job is running")
            text = await scrape(server.url)
            assert sample(text, "nst_jobs_running") == 1 and sample(text, "nst_queue_depth") == 0
            status = record.original
            assert status is not None
            cid = next(c for c in status.custom_ids() if c.startswith("nst:cancel:"))
            click = await fake.click_button(status, cid)
            await fake.wait_for_ack(click, timeout=3)
            await fake.wait_for(lambda: (status.content or "").startswith("Cancelled by you"), timeout=20,
                                what="the status says cancelled")

            # The final event follows the journal update: wait for the count itself (bounded).
            await fake.wait_for(lambda: sample(metrics.exposition().decode(), "nst_requests_total",
                                               {"outcome": "cancelled"}), timeout=10, what="the cancelled count")
            text = await scrape(server.url)
            assert sample(text, "nst_requests_total", {"kind": "prefix", "outcome": "done"}) == 1
            assert total(text, "nst_requests_total", {"kind": "prefix", "outcome": "refused"}) == 1
            assert sample(text, "nst_requests_total", {"kind": "slash", "outcome": "cancelled"}) == 1
            assert total(text, "nst_requests_total") == 3
            assert sample(text, "nst_job_seconds_count", {"preset": "fast", "device": "cpu"}) == 1
            assert sample(text, "nst_job_wait_seconds_count", {"preset": "fast", "device": "cpu"}) == 1
            assert (sample(text, "nst_engine_iterations_per_second", {"preset": "fast", "device": "cpu"}) or 0) > 0
            # Two images for the done job and two for the cancelled one were downloaded.
            assert (sample(text, "nst_downloaded_bytes_total") or 0) >= 2 * len(images[0][1]) + 2 * len(images[1][1])
            assert (sample(text, "nst_result_bytes_total") or 0) > 0
            assert sample(text, "nst_jobs_running") == 0 and sample(text, "nst_queue_depth") == 0
            latency = sample(text, "nst_gateway_latency_seconds", {"shard": "0"})
            assert latency is not None and 0 <= latency < 5
    finally:
        await server.stop()

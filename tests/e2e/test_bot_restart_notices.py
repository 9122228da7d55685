"""After a restart the bot looks at what Discord shows before it tells anyone a job was lost (bot/ui/restart_notices):
the in-process bot on the fake Discord with the in-memory backend; a kill is played by setting the journal back to
what it held at that instant."""

from __future__ import annotations

import pytest

from bot.config import Settings
from bot.storage.db import Database
from tests.bot.memory_backend import MemoryBackend
from tests.e2e.bot_harness import is_result, make_settings, png, running_bot
from tests.fakediscord import FakeDiscord, FakeMessage, Perm, serving_fake

pytestmark = pytest.mark.e2e


async def set_state(path: object, state: str) -> str:
    """Set the journal's one job to ``state``; returns its id."""
    db = Database(str(path))
    await db.open()
    try:
        ((job_id,),) = await db.conn.execute_fetchall("SELECT job_id FROM jobs")
        await db.set_job_state(job_id, state)
        return str(job_id)
    finally:
        await db.close()


async def deliver_one(fake: FakeDiscord, settings: Settings, backend: MemoryBackend) -> FakeMessage:
    """A request delivered: its result is on Discord (and then the journal is set back, as a kill would leave it)."""
    async with running_bot(fake, settings, backend) as bot:
        request = await fake.post_message(fake.channel, fake.member, "!style fast",
                                          attachments=[("c.png", png(seed=1)), ("s.png", png(seed=2))])
        result = await fake.wait_for_message(fake.channel, lambda m: is_result(m) and m.reference_id == request.id,
                                             timeout=30)
        await fake.wait_for(lambda: not bot.jobs.active, timeout=10, what="the job closed")
    return result


async def journal(path: object) -> list[tuple[str, str]]:
    db = Database(str(path))
    await db.open()
    try:
        return [(r[0], r[1]) for r in await db.conn.execute_fetchall("SELECT job_id, state FROM jobs")]
    finally:
        await db.close()


async def test_a_result_posted_but_not_journaled_is_found_and_nobody_is_told_it_was_lost(tmp_path):
    settings = make_settings(tmp_path)
    async with serving_fake() as fake:
        result = await deliver_one(fake, settings, MemoryBackend())
        job_id = await set_state(settings.database_path, "delivering")  # killed between posting and recording
        async with running_bot(fake, settings, MemoryBackend()) as bot:
            await fake.wait_for(lambda: not bot._background, timeout=10, what="the restart notices are done")
        assert await journal(settings.database_path) == [(job_id, "done")]
        assert not any("lost" in m.shown_text() or "restarted" in m.shown_text() for m in fake.bot_messages())
        assert any(c.endswith(f":{job_id}") for c in result.custom_ids())


async def test_a_delivery_it_cannot_check_gets_a_notice_that_stays_true_either_way(tmp_path):
    settings = make_settings(tmp_path)
    async with serving_fake() as fake:
        await deliver_one(fake, settings, MemoryBackend())
        job_id = await set_state(settings.database_path, "delivering")
        # The bot may no longer read the channel's history: it cannot see whether its result is there.
        fake.set_permissions(fake.channel, fake.bot_role, deny=Perm.READ_MESSAGE_HISTORY)
        async with running_bot(fake, settings, MemoryBackend()) as bot:
            notice = await fake.wait_for_message(fake.channel, lambda m: f"(job {job_id})" in m.content, timeout=10)
            await fake.wait_for(lambda: not bot._background, timeout=10, what="the restart notices are done")
        assert "If it is not above, please send the job again" in notice.content and "lost" not in notice.content
        assert fake.member in notice.mentions
        assert await journal(settings.database_path) == [(job_id, "interrupted")]


async def test_a_user_already_told_is_not_told_again(tmp_path):
    settings = make_settings(tmp_path)
    async with serving_fake() as fake:
        backend = MemoryBackend(auto_finish=False)
        async with running_bot(fake, settings, backend) as bot:
            request = await fake.post_message(fake.channel, fake.member, "!style fast",
                                              attachments=[("c.png", png(seed=1)), ("s.png", png(seed=2))])
            await fake.wait_for(lambda: len(backend.jobs) == 1, timeout=30, what="the job runs")
            await bot.jobs.drain(grace=0)  # told "stopped" in its status, journaled interrupted
        job_id = await set_state(settings.database_path, "running")  # ...killed before the journal heard
        async with running_bot(fake, settings, MemoryBackend()) as bot:
            await fake.wait_for(lambda: not bot._background, timeout=10, what="the restart notices are done")
        answers = [m for m in fake.bot_messages() if m.reference_id == request.id or fake.member in m.mentions]
        assert [f"(job {job_id})" in m.shown_text() for m in answers] == [True]  # the one status, nothing more
        assert await journal(settings.database_path) == [(job_id, "interrupted")]

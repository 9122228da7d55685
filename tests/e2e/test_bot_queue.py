"""Several users at once: fair turns, positions, per-user and queue limits, and the Cancel button."""

from __future__ import annotations

from tests.e2e.bot_harness import (
    E2E,
    embed_text,
    fake,
    images,
    is_error,
    is_result,
    make_settings,
    pool,
    running_bot,
)
from tests.fakediscord import Perm

pytestmark = E2E
__all__ = ["fake", "pool"]  # fixtures

# Long enough jobs (many iterations) that the queue fills up while the first one runs.
SLOW = {"size": 48, "iterations": 400}


async def request(fake, user, seed: int):
    return await fake.post_message(fake.channel, user, "!style fast", attachments=images(seed))


async def status_of(fake, user_msg, predicate, timeout: float = 15.0):
    """The bot's status reply to ``user_msg`` once ``predicate(content)`` holds."""
    return await fake.wait_for_message(
        fake.channel, lambda m: m.reference_id == user_msg.id and predicate(m.content), timeout=timeout,
        since=user_msg,
    )


def cancel_id(msg) -> str:
    return next(cid for cid in msg.custom_ids() if cid.startswith("nst:cancel:"))


async def click(fake, msg, user):
    record = await fake.click_button(msg, cancel_id(msg), user=user)
    await fake.wait_for_ack(record, timeout=3)
    return record.original.content


async def test_fair_queue_limits_and_cancel(fake, tmp_path, pool):
    settings = make_settings(tmp_path, user_max_running=1, user_max_waiting=1, max_queue=2)
    alice, bob, carol = fake.member, fake.admin, fake.add_user("carol")
    fake.add_member(fake.guild, carol)
    # A moderator: Manage Messages through a role, nothing more (not the owner, not an administrator).
    mod = fake.add_user("mod")
    fake.add_member(fake.guild, mod, roles=[fake.add_role(fake.guild, "Mods", Perm.DEFAULT | Perm.MANAGE_MESSAGES)])
    async with running_bot(fake, settings, pool, engine_overrides=SLOW) as bot:
        a1 = await request(fake, alice, 1)
        a1_status = await status_of(fake, a1, lambda c: "%" in c or "Starting" in c)  # running
        a2 = await request(fake, alice, 2)
        await status_of(fake, a2, lambda c: "you are next" in c)

        # Bob has had no turn yet, so his job goes before Alice's second one.
        b1 = await request(fake, bob, 3)
        b1_waiting = await status_of(fake, b1, lambda c: "you are next" in c)
        a2_status = await status_of(fake, a2, lambda c: "position 2" in c)
        job_id = lambda msg: cancel_id(msg).rsplit(":", 1)[1]  # noqa: E731
        assert bot.jobs.queue.order() == [job_id(b1_waiting), job_id(a2_status)]

        # Per-user cap, then the full queue: both refused with the reason.
        await request(fake, alice, 4)
        msg = await fake.wait_for_message(fake.channel, is_error)
        assert "1 job(s) running and 1 waiting; the limit is 1 running + 1 waiting per person" in embed_text(msg)
        await request(fake, carol, 5)
        msg = await fake.wait_for_message(fake.channel, is_error)
        assert "The queue is full (2 jobs waiting)" in embed_text(msg)

        # Only the requester (or a moderator) may cancel; a waiting job is dropped at once.
        assert "Only the person who started this job" in await click(fake, a2_status, carol)
        assert await click(fake, a2_status, alice) == "Cancelled."
        await status_of(fake, a2, lambda c: c.startswith("Cancelled by you"))

        # Cancelling the running job frees the worker for the next in turn (Bob).
        await click(fake, a1_status, alice)
        await status_of(fake, a1, lambda c: c.startswith("Cancelled by you"))
        b1_status = await status_of(fake, b1, lambda c: "%" in c or "Starting" in c)

        # A plain member may not cancel someone else's running job; a moderator with only Manage Messages may.
        assert "Only the person who started this job" in await click(fake, b1_status, carol)
        assert await click(fake, b1_status, mod) in ("Cancelling…", "Cancelled.")
        await status_of(fake, b1, lambda c: c.startswith("Cancelled by mod"))
        await fake.wait_for(lambda: not bot.jobs.active and bot.jobs.queue.running == 0, timeout=10,
                            what="every job finished")

    # The pool still works after the cancellations.
    async with running_bot(fake, settings, pool):
        c1 = await request(fake, carol, 6)
        await fake.wait_for_message(fake.channel, is_result, timeout=60, since=c1)

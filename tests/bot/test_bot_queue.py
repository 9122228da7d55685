import asyncio

import pytest

from bot.requests.fair_queue import FairQueue, QueueFull, UserLimitReached


def make(slots=1, max_queue=10, running=1, waiting=1):
    return FairQueue(slots=slots, max_queue=max_queue, user_max_running=running, user_max_waiting=waiting)


async def test_first_job_runs_at_once_and_position_is_zero():
    q = make()
    t = q.enqueue(1, "a")
    assert t.state == "running"
    assert q.position(t) == 0
    assert await asyncio.wait_for(q.wait_turn(t), 1) is True


async def test_round_robin_across_users():
    q = make(slots=1, waiting=3, running=1)
    first = q.enqueue(1, "a1")  # runs
    a2 = q.enqueue(1, "a2")
    a3 = q.enqueue(1, "a3")
    b1 = q.enqueue(2, "b1")
    c1 = q.enqueue(3, "c1")
    b2 = q.enqueue(2, "b2")
    # User 1 already runs a job, so the others go first; then rounds alternate users.
    assert [t.job_id for t in q.order()] == ["b1", "c1", "a2", "b2", "a3"]
    assert [q.position(t) for t in (b1, c1, a2, b2, a3)] == [1, 2, 3, 4, 5]
    started = []
    running = first
    for _ in range(5):
        q.release(running)
        running = next(t for t in (a2, a3, b1, b2, c1) if t.state == "running")
        started.append(running.job_id)
    assert started == ["b1", "c1", "a2", "b2", "a3"]


async def test_per_user_caps_and_full_queue():
    q = make(slots=1, max_queue=2, running=1, waiting=1)
    q.enqueue(1, "a1")
    q.enqueue(1, "a2")
    with pytest.raises(UserLimitReached, match=r"1 running \+ 1 waiting"):
        q.enqueue(1, "a3")
    q.enqueue(2, "b1")
    with pytest.raises(QueueFull, match="queue is full"):
        q.enqueue(3, "c1")
    # Jobs still downloading count towards the per-user cap.
    q2 = make()
    with pytest.raises(UserLimitReached):
        q2.check_admission(4, pending=2)
    q2.check_admission(4, pending=1)
    # ...and everyone's downloads towards the global cap, so a burst is refused before downloading.
    q3 = make(slots=1, max_queue=2)
    q3.enqueue(5, "e1")  # runs at once: nobody waits yet
    q3.check_admission(6, pending_total=1)
    with pytest.raises(QueueFull, match="queue is full"):
        q3.check_admission(6, pending_total=2)


async def test_user_running_cap_holds_back_a_second_job_even_with_free_slots():
    q = make(slots=2, running=1, waiting=1)
    a1 = q.enqueue(1, "a1")
    a2 = q.enqueue(1, "a2")
    assert (a1.state, a2.state) == ("running", "waiting")
    b1 = q.enqueue(2, "b1")
    assert b1.state == "running"  # the free slot goes to another user
    q.release(a1)
    assert a2.state == "running"


async def test_cancel_waiting_ticket_wakes_its_waiter_with_false():
    q = make()
    q.enqueue(1, "a1")
    b = q.enqueue(2, "b1")
    waiter = asyncio.create_task(q.wait_turn(b))
    await asyncio.sleep(0)
    assert q.cancel(b) is True
    assert await asyncio.wait_for(waiter, 1) is False
    assert q.waiting == 0
    assert q.cancel(b) is False


async def test_wait_changed_fires_on_release():
    q = make()
    a = q.enqueue(1, "a1")
    b = q.enqueue(2, "b1")
    changed = asyncio.create_task(q.wait_changed())
    turn = asyncio.create_task(q.wait_turn(b))
    await asyncio.sleep(0)
    assert not changed.done()
    q.release(a)
    await asyncio.wait_for(changed, 1)
    assert await asyncio.wait_for(turn, 1) is True
    assert q.user_counts(2) == (1, 0)


async def test_slots_follow_a_backend_whose_capacity_changes():
    capacity = [1]
    q = FairQueue(slots=lambda: capacity[0], max_queue=10, user_max_running=1, user_max_waiting=1)
    a, b = q.enqueue(1, "a"), q.enqueue(2, "b")
    assert (a.state, b.state) == ("running", "waiting")
    capacity[0] = 0  # every machine gone: one job may still go to the backend, which holds it until one returns
    assert q.slots == 1
    capacity[0] = 2  # a second machine joined: the next decision uses it
    c = q.enqueue(3, "c")
    assert (b.state, c.state) == ("running", "waiting")

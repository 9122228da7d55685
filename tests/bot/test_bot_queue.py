import asyncio

import pytest

from bot.requests.fair_queue import FairQueue, FairQueueFull, UserLimitReached


def make(slots=1, max_queue=10, running=1, waiting=1):
    return FairQueue(slots=slots, max_queue=max_queue, user_max_running=running, user_max_waiting=waiting)


async def test_first_job_runs_at_once_and_position_is_zero():
    q = make()
    q.enqueue(1, "a")
    assert q.state("a") == "running"
    assert q.position("a") == 0
    assert await asyncio.wait_for(q.wait_turn("a"), 1) is True


async def test_round_robin_across_users():
    q = make(slots=1, waiting=3, running=1)
    for user, job in ((1, "a1"), (1, "a2"), (1, "a3"), (2, "b1"), (3, "c1"), (2, "b2")):
        q.enqueue(user, job)  # a1 runs
    # User 1 already runs a job, so the others go first; then rounds alternate users.
    assert q.order() == ["b1", "c1", "a2", "b2", "a3"]
    assert [q.position(t) for t in ("b1", "c1", "a2", "b2", "a3")] == [1, 2, 3, 4, 5]
    started = []
    running = "a1"
    for _ in range(5):
        q.release(running)
        running = next(t for t in ("a2", "a3", "b1", "b2", "c1") if q.state(t) == "running")
        started.append(running)
    assert started == ["b1", "c1", "a2", "b2", "a3"]


async def test_per_user_caps_and_full_queue():
    q = make(slots=1, max_queue=2, running=1, waiting=1)
    q.enqueue(1, "a1")
    q.enqueue(1, "a2")
    with pytest.raises(UserLimitReached, match=r"1 running \+ 1 waiting"):
        q.enqueue(1, "a3")
    q.enqueue(2, "b1")
    with pytest.raises(FairQueueFull, match="queue is full"):
        q.enqueue(3, "c1")
    # Jobs still downloading (admitted) count towards the per-user cap.
    q2 = make()
    q2.admit(4, "d1")
    q2.admit(4, "d2")
    with pytest.raises(UserLimitReached):
        q2.admit(4, "d3")
    # ...and everyone's downloads towards the global cap, so a burst is refused before downloading.
    q3 = make(slots=1, max_queue=2)
    q3.enqueue(5, "e1")  # runs at once: nobody waits yet
    q3.admit(6, "f1")
    q3.admit(7, "g1")
    with pytest.raises(FairQueueFull, match="queue is full"):
        q3.admit(8, "h1")
    q3.release("g1")  # a download that failed frees its place
    q3.admit(8, "h1")


async def test_user_running_cap_holds_back_a_second_job_even_with_free_slots():
    q = make(slots=2, running=1, waiting=1)
    q.enqueue(1, "a1")
    q.enqueue(1, "a2")
    assert (q.state("a1"), q.state("a2")) == ("running", "waiting")
    q.enqueue(2, "b1")
    assert q.state("b1") == "running"  # the free slot goes to another user
    q.release("a1")
    assert q.state("a2") == "running"


async def test_cancel_waiting_ticket_wakes_its_waiter_with_false():
    q = make()
    q.enqueue(1, "a1")
    q.enqueue(2, "b1")
    waiter = asyncio.create_task(q.wait_turn("b1"))
    await asyncio.sleep(0)
    assert q.cancel("b1") is True
    assert await asyncio.wait_for(waiter, 1) is False
    assert q.waiting == 0
    assert q.cancel("b1") is False


async def test_wait_changed_fires_on_release():
    q = make()
    q.enqueue(1, "a1")
    q.enqueue(2, "b1")
    changed = asyncio.create_task(q.wait_changed())
    turn = asyncio.create_task(q.wait_turn("b1"))
    await asyncio.sleep(0)
    assert not changed.done()
    q.release("a1")
    await asyncio.wait_for(changed, 1)
    assert await asyncio.wait_for(turn, 1) is True
    assert q.user_counts(2) == (1, 0)


async def test_slots_follow_a_backend_whose_capacity_changes():
    capacity = [1]
    q = FairQueue(slots=lambda: capacity[0], max_queue=10, user_max_running=1, user_max_waiting=1)
    q.enqueue(1, "a")
    q.enqueue(2, "b")
    assert (q.state("a"), q.state("b")) == ("running", "waiting")
    capacity[0] = 0  # every machine gone: one job may still go to the backend, which holds it until one returns
    assert q.slots == 1
    capacity[0] = 2  # a second machine joined: the next decision uses it
    q.enqueue(3, "c")
    assert (q.state("b"), q.state("c")) == ("running", "waiting")

"""The answers the bot gave each request of the kill rounds (``benchmarks/kill_points.py``), read from the fake
Discord: a result, a "lost" notice, or another final answer (a refusal or failure); and the checks on them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from tests.e2e.bot_harness import RESULT_TITLE
from tests.fakediscord import FakeChannel, FakeDiscord, FakeMessage, FakeUser, InteractionRecord

LOST_WORDS = ("lost", "stopped before it finished", "stopped before they ran", "If it is not above")


@dataclass(eq=False)
class Request:
    """One request as its user sent it, and where the bot's answers to it can appear."""

    round: int
    role: str  # A, B or C
    user: FakeUser
    channel: FakeChannel
    message: FakeMessage | None = None  # a prefix command: the bot replies to it
    record: InteractionRecord | None = None  # a slash command: its response and follow-ups


def answers_of(fake: FakeDiscord, req: Request) -> list[FakeMessage]:
    """Every bot message meant for this request's user (each round's users are new, so all are theirs)."""
    own = [m for m in fake.messages.values() if m.author is fake.bot_user and not m.deleted]
    roots: list[FakeMessage] = []
    if req.message is not None:
        roots = [m for m in own if m.reference_id == req.message.id]
    if req.record is not None:
        roots = [m for m in own if m.interaction_id == req.record.id]
    ids = {m.id for m in roots}
    rest = [m for m in own if m not in roots and (m.reference_id in ids or req.user in m.mentions
                                                    or req.user.mention in m.content)]
    return roots + rest


def check(fake: FakeDiscord, requests: list[Request]) -> tuple[Counter[str], list[str], list[str]]:
    """Each request's kind of answer, the problems (contradictions, double or silent answers), and a transcript."""
    problems: list[str] = []
    answers: Counter[str] = Counter()
    transcript: list[str] = []
    for req in requests:
        msgs = answers_of(fake, req)
        results = [m for m in msgs if is_result(m)]
        lost = [m for m in msgs if says_lost(m)]
        others = [m for m in msgs if final(m) and not is_result(m) and not says_lost(m)]
        status = msgs[0] if msgs else None
        pings = [m for m in lost if m is not status]
        name = f"round {req.round} {req.role} ({'prefix' if req.message else 'slash'})"
        if results and lost:
            problems.append(f"{name}: contradiction, a result and a 'lost' notice")
        if len(results) > 1:
            problems.append(f"{name}: {len(results)} results")
        if len(pings) > 1:
            problems.append(f"{name}: told {len(pings)} times it was lost")
        if not results and not lost and not others:
            problems.append(f"{name}: silent ({' | '.join(m.shown_text()[:60] for m in msgs) or 'nothing'})")
        kind = "result" if results else "lost" if lost else "other" if others else "silent"
        answers[kind] += 1
        transcript.append(f"{name}: {kind}: " + " | ".join(m.shown_text().replace(chr(10), " / ")[:90]
                                                         for m in msgs))
    return answers, problems, transcript


def is_result(msg: FakeMessage) -> bool:
    return any(name.startswith("styled.") for name in msg.filenames)


def says_lost(msg: FakeMessage) -> bool:
    text = msg.shown_text()
    return any(w in text for w in LOST_WORDS)


def final(msg: FakeMessage) -> bool:
    """An answer that ends the request: a result, a 'lost' notice, or a refusal or failure (an error embed)."""
    return is_result(msg) or says_lost(msg) or any(e.get("title") not in (None, "", RESULT_TITLE) for e in msg.embeds)

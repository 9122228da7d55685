"""Kill points: the real bot killed with SIGKILL at seeded points of a request's life and of the drain, started
again on the same database each time, and every user's answers read back from the fake Discord.

    python -m benchmarks.kill_points              # the long form (a phase of make soak): every point, many times
    python -m benchmarks.kill_points --short      # the short seeded form (tests/e2e/test_bot_kills.py)

The bot is ``python -m bot`` (``tests/e2e/bot_process.py``) with one real worker process, random weights, tiny
images and the ``fast`` preset. Each round sends three requests, one after another (prefix commands or slash
commands, seeded), from three new users: A runs, B waits behind it, C's picture comes from a CDN that never finishes.
The kill lands where the round's point says, found by what the bot sends (the fake's tripwires: the moment Discord
has done what the bot asked, before the bot hears back), not by timing:

    before-download   the status "Downloading N images…" of the n-th request has reached Discord
    during-download   the n-th picture download has begun
    queued            B's status says it is queued
    starting          A's status says "Starting…"
    running           the n-th progress update of A
    posting           Discord has A's result; the bot has not heard back, so never wrote it down
    after-posting     A's status says "Done" (the result is posted and journaled)
    drain-notices     SIGTERM while A runs; killed at the n-th "stopped" notice to B or C
    drain-grace       SIGTERM while A runs; killed once the waiting users were told, in the grace
    drain-posting     SIGTERM while A runs; A finishes in the grace and is killed as Discord takes the result

Some rounds also kill the next start at its first restart notice (``notices`` in the round), then start again.
After the last round the bot stops gracefully. Checked for every request: exactly one true answer, i.e. zero
contradictions (a result and a "lost" notice), zero double results or double "lost" pings, zero silent requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.kill_answers import Request, answers_of, check, final
from tests.e2e.bot_harness import png
from tests.e2e.bot_process import BotProcess, start_bot_process
from tests.fakediscord import FakeChannel, FakeDiscord, FakeMessage, FakeUser, FileSpec
from tests.fakediscord.state import RecordedRequest

POINTS = ("before-download", "during-download", "queued", "starting", "running", "posting", "after-posting",
          "drain-notices", "drain-grace", "drain-posting")
SHORT_POINTS = ("posting", "drain-posting", "queued", "during-download", "drain-notices")
READY = "ready; invite the bot with"
LONG_JOB = {"size": 48, "iterations": 3000}  # still running when the kill comes
SHORT_JOB = {"size": 48, "iterations": 8}  # finishes in a few seconds
KILL_WAIT = 60.0  # seconds a round waits for its kill point before it kills anyway (counted as a miss)
SETTLE_WAIT = 60.0  # seconds every request of a round has to get its answer after the restart


@dataclass(frozen=True)
class Round:
    point: str
    nth: int  # matching events let through before the kill
    vias: tuple[str, str, str]  # how A, B and C ask: "prefix" or "slash"
    notices: bool  # the next start is killed too, at its first restart notice


def make_rounds(points: tuple[str, ...], count: int, seed: int, *, notice_share: float = 0.3) -> list[Round]:
    """``count`` rounds covering ``points`` in a seeded order (each point once before any point twice)."""
    rng = random.Random(seed)
    order: list[str] = []
    while len(order) < count:
        batch = list(points)
        rng.shuffle(batch)
        order += batch
    rounds = []
    for point in order[:count]:
        nth = rng.randrange(3) if point in ("before-download", "running") else \
            rng.randrange(2) if point == "drain-notices" else 0
        vias = tuple(rng.choice(("prefix", "slash")) for _ in range(3))
        rounds.append(Round(point, nth, vias, rng.random() < notice_share))  # type: ignore[arg-type]
    return rounds


def sent_text(rec: RecordedRequest) -> str:
    """What a REST call asks Discord to show: the content and the embeds' descriptions."""
    body = rec.json if isinstance(rec.json, dict) else {}
    parts = [str(body.get("content") or "")]
    parts += [str(e.get("description") or "") for e in body.get("embeds") or [] if isinstance(e, dict)]
    return "\n".join(parts)


def says(*words: str) -> Any:
    return lambda rec: any(w in sent_text(rec) for w in words)


def is_result_upload(rec: RecordedRequest) -> bool:
    return rec.method == "POST" and any(f.filename.startswith("styled.") for f in rec.files)


MESSAGES = r"^(POST|PATCH) /(channels|webhooks)/"


class KillRun:
    """The rounds against one fake Discord and one database."""

    def __init__(self, rounds: list[Round], workdir: Path, *, log: Any = print) -> None:
        self.rounds = rounds
        self.workdir = workdir
        self.say = log
        self.fake = FakeDiscord()
        self.requests: list[Request] = []
        self.users = [self.fake.add_user(f"kill{i:03d}") for i in range(3 * len(rounds))]
        for user in self.users:
            self.fake.add_member(self.fake.guild, user)
        self.bot: BotProcess | None = None
        self.kills: Counter[str] = Counter()  # what each kill landed on
        self.misses: list[str] = []
        self.starts = 0
        self.draining = False  # SIGTERM was sent in this round
        self.killed = False  # the current bot was sent SIGKILL
        self.round_requests: list[Request] = []
        self.settle_wait = SETTLE_WAIT

    # -- the bot ---------------------------------------------------------------------------------------

    async def start(self, job: dict[str, Any]) -> BotProcess:
        self.bot = await start_bot_process(self.workdir, self.fake.base_url, overrides=job, SHUTDOWN_GRACE=30,
                                           DOWNLOAD_TIMEOUT=120, LOG_LEVEL="INFO")
        self.starts += 1
        self.killed = False
        try:
            await self.bot.wait_for_line(READY, timeout=120)
            await self.fake.wait_for(lambda: self.killed or self.fake.find_command("style") is not None, timeout=30,
                                     what="the slash commands")
        except AssertionError:
            if not self.killed:  # killed at a restart notice before it said it was ready: expected
                raise
        return self.bot

    def kill_now(self, what: str) -> None:
        bot = self.bot
        if bot is not None and bot.proc.returncode is None and not self.killed:
            self.killed = True  # at once: the process's exit status comes only when asyncio reaps it
            os.kill(bot.proc.pid, signal.SIGKILL)
            self.kills[what + (" (in the drain)" if self.draining and not what.startswith("drain-") else "")] += 1

    async def dead(self, timeout: float = KILL_WAIT, what: str = "") -> None:
        """Wait for the kill; past ``timeout`` kill anyway and count a miss."""
        bot = self.bot
        assert bot is not None
        try:
            await asyncio.wait_for(bot.proc.wait(), timeout)
        except TimeoutError:
            self.misses.append(what)
            self.kill_now(f"{what} (missed; killed at the timeout)")
        await bot.kill()
        (self.workdir / f"bot-{self.starts}.log").write_text(bot.output)

    # -- one round -------------------------------------------------------------------------------------

    async def play(self, index: int, rnd: Round) -> list[Request]:
        fake = self.fake
        self.draining = False
        self.round_requests = []
        self.arm(rnd)
        users = self.users[3 * index:3 * index + 3]
        # The downloads are held until all three requests are sent and journaled; then A's ends, and B's once A
        # runs (for the during-download point none ends); C's picture never comes.
        holds = {"A": asyncio.Event(), "B": asyncio.Event(), "C": asyncio.Event()}
        for role, user, via in zip("ABC", users, rnd.vias, strict=True):
            channel = fake.channel if (index + ord(role)) % 2 else fake.other_channel
            req = await self.send(index, role, user, channel, via, hold=holds[role])
            if not await self.accepted(req):
                break  # the bot is gone (or the kill came): the rest are not sent
        mine = list(self.round_requests)
        if rnd.point != "during-download" and self.alive():
            holds["A"].set()  # A first, so A runs and B waits behind it
            await self.wait_running(mine[0])
            holds["B"].set()
        if rnd.point == "during-download" and self.alive():
            await fake.wait_for(lambda: not self.alive() or self.downloading(mine), timeout=30,
                                what="every download begun")
            self.kill_now("during-download")
        if rnd.point.startswith("drain-") and self.alive():
            assert self.bot is not None
            self.draining = True
            self.bot.signal(signal.SIGTERM)
            if rnd.point == "drain-grace":
                try:
                    await self.bot.wait_for_line("waiting or downloading job(s) they were stopped", timeout=30)
                except AssertionError:
                    pass
                self.kill_now("drain-grace")
        await self.dead(what=f"round {index}: {rnd.point}")
        for hold in holds.values():  # the fake's held downloads end (into closed connections)
            hold.set()
        self.draining = False
        return mine

    def downloading(self, mine: list[Request]) -> bool:
        """Every request's content download has begun (the CDN holds them all)."""
        paths = [r.path for r in self.fake.requests if r.route == "/cdn/attachments"]
        return all(any(f"/c{r.round}{r.role}.png" in p for p in paths) for r in mine)

    def all_accepted(self) -> bool:
        """Every request sent this round shows a status (so is journaled): a kill before that would land in the
        moment between a request's arrival and its journal entry, which no restart can know of (docs/reliability)."""
        return all(any(not m.loading and m.shown_text().strip() for m in self.answers_of(r))
                   for r in self.round_requests)

    def arm(self, rnd: Round) -> None:
        fake = self.fake
        point, nth = rnd.point, rnd.nth

        def kill() -> None:
            self.kill_now(point)

        wires: dict[str, Any] = {
            "before-download": says("Downloading"),
            "queued": says("Queued:"),
            "starting": says("Starting…"),
            "running": says("Step "),
            "posting": is_result_upload,
            "drain-posting": is_result_upload,
            "after-posting": says("Done: the result is below."),
            "drain-notices": says("stopped before it finished"),
        }
        if point in wires:  # during-download and drain-grace are killed from here instead
            what = wires[point]
            fake.tripwire(MESSAGES, kill, when=lambda rec: what(rec) and self.all_accepted(), skip=nth)

    async def send(self, index: int, role: str, user: FakeUser, channel: FakeChannel, via: str, *,
                   hold: asyncio.Event) -> Request:
        fake = self.fake
        content = fake.make_attachment(channel, FileSpec(f"c{index}{role}.png", png(seed=index)))
        style = fake.make_attachment(channel, FileSpec(f"s{index}{role}.png", png(seed=index + 1)))
        fake.cdn_fault(content, "slow", hold=hold)
        req = Request(index, role, user, channel)
        self.requests.append(req)
        self.round_requests.append(req)
        if via == "prefix":
            req.message = await fake.post_message(channel, user, "!style fast", attachments=[content, style])
        else:
            req.record = await fake.invoke_slash("style", {"content": content, "style": style, "preset": "fast"},
                                                 user=user, channel=channel)
        return req

    def alive(self) -> bool:
        return self.bot is not None and not self.killed and self.bot.proc.returncode is None

    async def accepted(self, req: Request) -> bool:
        """Wait until the request's status shows (the job is journaled by then), or the bot is gone."""

        def shown() -> bool:
            if not self.alive():
                return True
            return any(not m.loading and m.shown_text().strip() for m in self.answers_of(req))

        await self.fake.wait_for(shown, timeout=30, what=f"round {req.round} {req.role}: a status")
        return self.alive()

    async def wait_running(self, req: Request) -> None:
        def running() -> bool:
            return not self.alive() or any("Step " in m.content or "Starting" in m.content
                                           for m in self.answers_of(req))

        try:
            await self.fake.wait_for(running, timeout=60, what=f"round {req.round} A running")
        except AssertionError:
            self.misses.append(f"round {req.round}: A never ran")

    async def arm_notice_kill(self) -> Any:
        return self.fake.tripwire(MESSAGES, lambda: self.kill_now("restart-notices"),
                                  when=says("restarted while", "the bot restarted before"))

    # -- answers ---------------------------------------------------------------------------------------

    def answers_of(self, req: Request) -> list[FakeMessage]:
        return answers_of(self.fake, req)

    def settled(self, req: Request) -> bool:
        return any(final(m) for m in self.answers_of(req))

    async def settle(self, mine: list[Request]) -> None:
        try:
            await self.fake.wait_for(lambda: all(self.settled(r) for r in mine), timeout=self.settle_wait,
                                     what="every request of the round answered")
        except AssertionError:
            pass  # reported as silent below

    # -- the run ---------------------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        t0 = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        await self.fake.start()
        try:
            rounds = self.rounds
            await self.start(job_for(rounds[0]))
            for i, rnd in enumerate(rounds):
                t_round = time.monotonic()
                mine = await self.play(i, rnd)
                after = job_for(rounds[i + 1]) if i + 1 < len(rounds) else SHORT_JOB
                if rnd.notices:
                    wire = await self.arm_notice_kill()
                    await self.start(after)
                    await self.fake.wait_for(lambda w=wire, m=mine: w.fired is not None or all(self.settled(r) for r in m),
                                             timeout=SETTLE_WAIT, what="a restart notice or every answer")
                    if wire.fired is not None:
                        await self.dead(what="restart-notices")
                        await self.start(after)
                    else:
                        self.fake.tripwires.remove(wire)
                else:
                    await self.start(after)
                await self.settle(mine)
                self.fake.tripwires.clear()
                self.say(f"round {i + 1}/{len(rounds)}: {rnd.point} (n={rnd.nth}, {'/'.join(rnd.vias)}"
                         f"{', notices killed too' if rnd.notices else ''}) in {time.monotonic() - t_round:.1f} s")
            assert self.bot is not None
            self.bot.signal(signal.SIGTERM)
            code = await self.bot.wait(timeout=120)
        finally:
            if self.bot is not None:
                await self.bot.kill()
                (self.workdir / f"bot-{self.starts}.log").write_text(self.bot.output)
            await self.fake.stop()
        return self.verdict(code, time.monotonic() - t0)

    def verdict(self, exit_code: int, wall: float) -> dict[str, Any]:
        answers, problems, transcript = check(self.fake, self.requests)
        return {
            "rounds": len(self.rounds),
            "kills": sum(self.kills.values()),
            "kill_points": dict(sorted(self.kills.items())),
            "missed": self.misses,
            "starts": self.starts,
            "requests": len(self.requests),
            "answers": dict(sorted(answers.items())),
            "problems": problems,
            "final_exit": exit_code,
            "wall_s": round(wall, 1),
            "transcript": transcript,
        }


def job_for(rnd: Round) -> dict[str, Any]:
    return SHORT_JOB if rnd.point in ("posting", "after-posting", "drain-posting") else LONG_JOB


async def run_kills(rounds: list[Round], workdir: Path, *, log: Any = print) -> dict[str, Any]:
    return await KillRun(rounds, workdir, log=log).run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="the short seeded form (make test)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default: 6 short, 30 long)")
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (the database, each bot's log)")
    args = parser.parse_args(argv)
    points = SHORT_POINTS if args.short else POINTS
    count = args.rounds or (len(SHORT_POINTS) if args.short else 3 * len(POINTS))
    rounds = make_rounds(points, count, args.seed, notice_share=0.34 if args.short else 0.3)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        figures = asyncio.run(run_kills(rounds, args.keep))
    else:
        with tempfile.TemporaryDirectory(prefix="nst-kills-") as tmp:
            figures = asyncio.run(run_kills(rounds, Path(tmp)))
    figures["seed"] = args.seed
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 1 if figures["problems"] or figures["final_exit"] != 0 else 0


if __name__ == "__main__":
    sys.exit(main())

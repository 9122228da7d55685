"""Soak run: the real bot, in its own process, against the fake Discord, under load and faults at once.

    python -m benchmarks.soak            # the full plan (make soak): 200+ requests, 25 users, 3 servers
    python -m benchmarks.soak --short    # a smaller plan with every fault (inside make test)

The bot runs as a subprocess (``benchmarks/soak_bot.py``: the real entry point, pointed at the fake) with the real
worker pool, random weights and tiny images. A seeded random plan sends prefix and slash requests with 1-3 styles
and every preset; a share of them hostile (corrupt, oversized, decompression bombs, wrong types, stalled and
truncated downloads); users cancel and press re-run buttons; two workers are killed, one 429 storm is thrown, one
interaction token expires, one upload goes over the server's limit, and the bot is stopped with SIGTERM in the
middle and started again on the same database. The full run then has a kill phase (``benchmarks/kill_points.py``):
the bot killed with SIGKILL at seeded points of a request's life and of the drain, 30 times, each user's answers
checked (``--no-kills`` skips it).

Checked and printed: every request answered exactly once (a result, a clear refusal, a cancellation or a failure
with its reason; 0 lost, 0 answered twice, 0 tracebacks or "something went wrong" shown to users); the bot alive
throughout apart from the planned restart; its memory after warm-up growing < 50 MB; open file descriptors,
threads and child processes back to their baseline; event-loop lag p50/p99; jobs per minute; queue fairness (no
user waits behind more than one job of any other user). Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import itertools
import json
import logging
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from PIL import Image

from benchmarks.kill_points import POINTS as KILL_POINTS
from benchmarks.kill_points import make_rounds, run_kills
from tests.fakediscord import (
    FakeChannel,
    FakeDiscord,
    FakeGuild,
    FakeMessage,
    FakeUser,
    FileSpec,
    InteractionRecord,
    Perm,
)
from tests.fakediscord.state import snowflake

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ("fast", "balanced", "quality")
HOSTILE = ("corrupt", "oversized", "bomb", "wrong_type", "stalled", "truncated")
RESULT_TITLE = "Style transfer done"
ERROR_TITLES = ("Can't do that", "Queue")
GENERIC = "Something went wrong"
MAX_FILE_MB = 1.0
MAX_MEGAPIXELS = 4.0
DOWNLOAD_TIMEOUT = 3.0
MEMORY_GROWTH_LIMIT_MB = 50.0
KILL_ROUNDS = 30  # the kill phase: each of the ten kill points three times (benchmarks/kill_points.py)


@dataclass(frozen=True)
class PlanConfig:
    requests: int
    users: int
    guilds: int = 3
    workers: int = 2
    hostile_share: float = 0.25
    cancel_share: float = 0.08
    rerun_share: float = 0.12
    burst_share: float = 0.1  # requests sent together with the user's next one (the per-user cap answers)
    answer_timeout: float = 240.0  # seconds one request may take to be answered before it counts as lost


FULL = PlanConfig(requests=210, users=25)
SHORT = PlanConfig(requests=36, users=9, hostile_share=0.3, cancel_share=0.1, rerun_share=0.12, answer_timeout=90)


@dataclass
class Spec:
    """One planned request."""

    index: int
    user: int
    channel: int
    via: str  # "prefix" | "slash"
    styles: int
    preset: str | None
    hostile: str | None = None
    cancel: bool = False
    rerun: bool = False
    burst: bool = False
    expire_token: bool = False
    over_upload_limit: bool = False


@dataclass
class Plan:
    specs: list[Spec]
    kills_after: list[int]  # worker kills once this many requests were answered
    storm_after: int
    restart_after: int


def make_plan(config: PlanConfig, seed: int) -> Plan:
    rng = random.Random(seed)
    n = config.requests
    specs: list[Spec] = []
    for i in range(n):
        hostile = rng.choice(HOSTILE) if rng.random() < config.hostile_share else None
        specs.append(Spec(
            index=i, user=rng.randrange(config.users), channel=rng.randrange(config.guilds * 2),
            via=rng.choice(("prefix", "slash")), styles=rng.choice((1, 1, 2, 3)),
            preset=PRESETS[i % len(PRESETS)] if rng.random() < 0.8 else None, hostile=hostile,
            cancel=hostile is None and rng.random() < config.cancel_share,
            rerun=hostile is None and rng.random() < config.rerun_share,
            burst=rng.random() < config.burst_share,
        ))
    # Every hostile kind at least once, every preset at least once, both ways of asking.
    for kind, spec in zip(HOSTILE, specs[3::max(1, n // (len(HOSTILE) + 2))], strict=False):
        spec.hostile, spec.cancel, spec.rerun = kind, False, False
    # And each of the rarer things at least once, on requests that otherwise ask for nothing odd.
    clean = [s for s in specs if s.hostile is None]
    for spec in clean:
        spec.cancel = spec.cancel and not spec.rerun
    clean[1].via, clean[1].expire_token, clean[1].cancel = "slash", True, False
    clean[2].rerun, clean[2].cancel = True, False
    clean[3].cancel, clean[3].rerun = True, False
    clean[-2].rerun, clean[-2].cancel = True, False
    clean[len(clean) * 2 // 3].over_upload_limit = True
    clean[len(clean) * 2 // 3].cancel = False
    specs[5].burst = True
    return Plan(specs=specs, kills_after=[n // 4, n * 4 // 5], storm_after=n * 2 // 5, restart_after=n // 2)


# -- images --------------------------------------------------------------------------------------------------


def noisy_png(seed: int, width: int = 64, height: int = 48) -> bytes:
    rng = random.Random(seed)
    im = Image.frombytes("RGB", (width, height), bytes(rng.randrange(256) for _ in range(width * height * 3)))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def bomb_png() -> bytes:
    """A tiny file that decodes to 64 megapixels."""
    buf = io.BytesIO()
    Image.new("1", (8000, 8000)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


class Images:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.pool = [noisy_png(seed * 1000 + i, 64 + 8 * (i % 3), 56 + 8 * (i % 2)) for i in range(12)]
        self.bomb = bomb_png()

    def good(self) -> bytes:
        return self.rng.choice(self.pool)

    def hostile(self, kind: str) -> tuple[str, bytes]:
        if kind == "corrupt":
            data = bytearray(self.good())
            data[40:] = bytes(self.rng.randrange(256) for _ in range(len(data) - 40))
            return "broken.png", bytes(data)
        if kind == "oversized":
            return "huge.png", b"\x89PNG\r\n\x1a\n" + os.urandom(int(MAX_FILE_MB * 1024 * 1024) + 50_000)
        if kind == "bomb":
            return "bomb.png", self.bomb
        if kind == "wrong_type":
            return self.rng.choice((("notes.txt", b"not a picture\n" * 20), ("clip.mp4", os.urandom(4000))))
        return "photo.png", self.good()  # stalled / truncated: a good file, the CDN misbehaves


# -- the bot process -----------------------------------------------------------------------------------------


@dataclass
class Sample:
    t: float
    rss_mb: float
    threads: int
    fds: int
    children: int
    sockets: int = 0  # of the fds: aiohttp keeps a few idle keep-alive connections pooled for a while


def proc_children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                out += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
    return out


def sample(pid: int) -> Sample | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        links = []
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        return Sample(
            t=time.monotonic(), rss_mb=int(fields["VmRSS"].split()[0]) / 1024, threads=int(fields["Threads"]),
            fds=len(links), children=len(proc_children(pid)), sockets=sum(1 for x in links if x.startswith("socket:")),
        )
    except (OSError, KeyError, ValueError):
        return None


def cpu_ticks(pid: int) -> int:
    try:
        parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(parts[11]) + int(parts[12])
    except (OSError, IndexError, ValueError):
        return 0


class BotProcess:
    """``python -m benchmarks.soak_bot`` with the soak's environment; one instance per start."""

    def __init__(self, fake: FakeDiscord, workdir: Path, phase: int, config: PlanConfig, engine: dict[str, Any]):
        self.fake = fake
        self.phase = phase
        self.stats_path = workdir / f"stats-{phase}.json"
        self.log_path = workdir / f"bot-{phase}.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "NST_", "MAX_", "USER_"))},
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "DISCORD_TOKEN": "soak-token",
            "DATABASE_PATH": str(workdir / "bot.sqlite3"),
            "NST_WEIGHTS": "random",
            "NST_DEVICE": "cpu",
            "NST_WORKERS": str(config.workers),
            "NST_JOB_TIMEOUT": "60",
            "PROGRESS_EDIT_INTERVAL": "0.5",
            "DOWNLOAD_TIMEOUT": str(DOWNLOAD_TIMEOUT),
            "MAX_FILE_MB": str(MAX_FILE_MB),
            "MAX_MEGAPIXELS": str(MAX_MEGAPIXELS),
            "LOG_LEVEL": "INFO",
            "SHUTDOWN_GRACE": "5",  # a graceful stop (where the bot has one) drains for at most this long
            "USER_COOLDOWN": "0",  # the soak's users send back to back to load the fair queue; the cooldown is tested alone
            "SOAK_FAKE_URL": fake.base_url,
            "SOAK_ENGINE_OVERRIDES": json.dumps(engine),
            "SOAK_STATS": str(self.stats_path),
        }
        self.proc: asyncio.subprocess.Process | None = None
        self.samples: list[Sample] = []
        self.started_at = 0.0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, *, timeout: float = 120.0) -> None:
        identified = self.fake.gateway.identify_count
        self.started_at = time.monotonic()
        log = self.log_path.open("wb")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.soak_bot", cwd=self.log_path.parent, env=self.env,
            stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
        )
        log.close()

        def ready() -> bool:
            if self.proc is not None and self.proc.returncode is not None:
                raise RuntimeError(f"the bot exited during start-up ({self.proc.returncode}); see {self.log_path}")
            return self.fake.gateway.identify_count > identified and self.fake.find_command("style") is not None

        await self.fake.wait_for(ready, timeout=timeout, what="the bot to connect")
        await asyncio.sleep(0.5)  # GUILD_CREATEs processed

    def sample(self) -> Sample | None:
        s = sample(self.pid) if self.proc is not None and self.proc.returncode is None else None
        if s is not None:
            self.samples.append(s)
        return s

    def workers(self) -> list[int]:
        out = []
        for child in proc_children(self.pid):
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
                if b"spawn_main" in cmdline:
                    out.append(child)
        return out

    async def stop(self, *, timeout: float = 90.0) -> tuple[int | None, float]:
        """SIGTERM, then wait (bounded); returns (exit status, seconds it took)."""
        assert self.proc is not None
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            return None, time.monotonic() - t0
        return self.proc.returncode, time.monotonic() - t0

    def stats(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.stats_path.read_text()))
        except (OSError, ValueError):
            return {"lag": [], "queue": []}

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


# -- requests and their answers ------------------------------------------------------------------------------


@dataclass(eq=False)
class Sent:
    """A request as sent, and where its answers can appear."""

    label: str
    user: FakeUser
    channel: FakeChannel
    t_sent: float
    phase: int
    message: FakeMessage | None = None  # prefix: the user's message (the bot replies to it)
    record: InteractionRecord | None = None  # slash or button
    hostile: str | None = None
    mark: int = field(default_factory=snowflake)  # messages created after the request have larger ids
    answers: list[FakeMessage] = field(default_factory=list)
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    t_settled: float | None = None


def classify(msg: FakeMessage) -> str:
    """What a bot message finally says: result, error, cancelled, restart, refusal (ephemeral), or progress."""
    if msg.deleted:
        return "deleted"
    titles = [e.get("title") for e in msg.embeds]
    if RESULT_TITLE in titles and msg.attachments:
        return "result"
    if any(t in ERROR_TITLES for t in titles):
        return "error"
    text = msg.shown_text()
    if "Cancelled by" in text:
        return "cancelled"
    if "restart" in text.lower() or "interrupted" in text.lower():
        return "restart"
    if msg.loading:
        return "thinking"
    if msg.ephemeral and msg.content and not msg.components:
        return "refusal"  # a button's short answer ("I no longer have the images...")
    return "progress"


TERMINAL = {"result", "error", "cancelled", "restart", "refusal"}


class Tracker:
    """Links the fake's messages to the requests; a request is settled at its first terminal answer."""

    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.sent: list[Sent] = []
        self.replies: dict[int, list[FakeMessage]] = defaultdict(list)
        self.unlinked: list[FakeMessage] = []
        self.strays: list[FakeMessage] = []
        self._seen = 0

    def add(self, sent: Sent) -> Sent:
        self.sent.append(sent)
        return sent

    def _index(self) -> None:
        messages = self.fake.messages
        if len(messages) == self._seen:
            return
        for msg in itertools.islice(messages.values(), self._seen, None):
            if msg.author is not self.fake.bot_user:
                continue
            if msg.reference_id is not None:
                self.replies[msg.reference_id].append(msg)
            elif msg.interaction_id is None and msg.webhook_id is None:
                self.unlinked.append(msg)
        self._seen = len(messages)

    def linked(self, sent: Sent) -> list[FakeMessage]:
        if sent.message is not None:
            return list(self.replies.get(sent.message.id, ()))
        if sent.record is not None:
            out = [sent.record.original] if sent.record.original is not None else []
            return out + [m for m in sent.record.followups if m not in out]
        return []

    def update(self) -> None:
        """Recompute every request's answers (messages are edited in place, so from scratch)."""
        self._index()
        for sent in self.sent:
            sent.answers = [m for m in self.linked(sent) if classify(m) in TERMINAL]
        # Messages linked to nothing (a result after the token expired, a restart notice) name the user:
        # give each to that user's oldest request still without an answer, sent before it.
        self.strays = []
        for msg in self.unlinked:
            if classify(msg) not in TERMINAL:
                continue
            owner = next((s for s in self.sent if s.user.mention in msg.content and not s.answers
                          and s.mark < msg.id), None)
            if owner is None:
                self.strays.append(msg)
            else:
                owner.answers.append(msg)
        for sent in self.sent:
            if sent.answers and not sent.settled.is_set():
                sent.t_settled = time.monotonic()
                sent.settled.set()

    async def run(self) -> None:
        while True:
            self.update()
            await asyncio.sleep(0.2)


# -- the run -------------------------------------------------------------------------------------------------


@dataclass
class World:
    guilds: list[FakeGuild]
    channels: list[FakeChannel]
    users: list[FakeUser]
    latecomer: FakeUser  # sends the request still downloading when the bot is stopped (no other job of theirs)


def build_world(fake: FakeDiscord, config: PlanConfig) -> World:
    guilds: list[FakeGuild] = []
    channels: list[FakeChannel] = []
    users = [fake.add_user(f"user{i:02d}") for i in range(config.users)]
    latecomer = fake.add_user("latecomer")
    for g in range(config.guilds):
        guild = fake.guild if g == 0 else fake.add_guild(f"Server {g}", fake.owner)
        if g:
            role = fake.add_role(guild, "StyleBot", Perm.DEFAULT)
            fake.add_member(guild, fake.bot_user, roles=[role])
        for user in [*users, latecomer]:
            fake.add_member(guild, user)
        guilds.append(guild)
        existing = [c for c in guild.channels if c.name in ("general", "art")]
        while len(existing) < 2:
            existing.append(fake.add_channel(guild, f"art-{len(existing)}"))
        channels += existing[:2]
    return World(guilds, channels, users, latecomer)


@dataclass
class Report:
    figures: dict[str, Any]
    failures: list[str]


class Soak:
    def __init__(self, config: PlanConfig, seed: int, workdir: Path, engine: dict[str, Any], log: Callable[[str], None]):
        self.config = config
        self.seed = seed
        self.workdir = workdir
        self.engine = engine
        self.say = log
        self.plan = make_plan(config, seed)
        self.images = Images(seed)
        self.rng = random.Random(seed + 1)
        self.fake = FakeDiscord()
        self.world: World
        self.tracker = Tracker(self.fake)
        self.bots: list[BotProcess] = []
        self.bot_up = asyncio.Event()
        self.restarting = False
        self.sent_count = 0
        self.events: dict[str, Any] = {"worker_kills": 0, "storms": 0, "expired_tokens": 0, "upload_over_limit": 0,
                                       "cancel_clicks": 0, "rerun_clicks": 0}
        self.failures: list[str] = []
        self.t_load_start = 0.0
        self.t_load_end = 0.0
        self.warm: dict[int, Sample] = {}
        self.restart_status: tuple[int | None, float] | None = None
        self.settle_seconds = 0.0
        self.downloading_at_stop: Sent | None = None

    @property
    def bot(self) -> BotProcess:
        return self.bots[-1]

    # -- orchestration -------------------------------------------------------------------------------------

    async def run(self) -> Report:
        self.world = build_world(self.fake, self.config)
        self.fake.allow_unknown_routes = True  # reported below, not raised
        await self.fake.start()
        tracker = asyncio.create_task(self.tracker.run())
        monitor = asyncio.create_task(self._monitor())
        try:
            await self._start_bot()
            await self._warm_up()
            self.bot_up.set()
            self.t_load_start = time.monotonic()
            actors = [asyncio.create_task(self._actor(u)) for u in range(self.config.users)]
            chaos = asyncio.create_task(self._chaos())
            await asyncio.gather(*actors)
            await chaos
            self.say("all requests sent; waiting for the last answers")
            await self._settle_all(self.config.answer_timeout)
            self.t_load_end = time.monotonic()
            await self._quiet()
            end = await self._back_to_baseline()
            rc, took = await self.bot.stop()
            return self._report(end, rc, took)
        finally:
            monitor.cancel()
            tracker.cancel()
            for b in self.bots:
                if b.proc is not None and b.proc.returncode is None:
                    b.proc.kill()
                    await b.proc.wait()
            await self.fake.stop()

    async def _start_bot(self) -> None:
        bot = BotProcess(self.fake, self.workdir, len(self.bots) + 1, self.config, self.engine)
        self.bots.append(bot)
        t0 = time.monotonic()
        await bot.start()
        self.say(f"bot #{bot.phase} (pid {bot.pid}) connected in {time.monotonic() - t0:.1f} s")

    async def _monitor(self) -> None:
        """The bot must stay alive, apart from the planned restart; sample its resources every second."""
        while True:
            await asyncio.sleep(0.5)
            if not self.bots:
                continue
            bot = self.bot
            if bot.proc is not None and bot.proc.returncode is not None and not self.restarting:
                self.failures.append(f"bot #{bot.phase} exited unexpectedly with {bot.proc.returncode}")
                self.say(f"!! bot #{bot.phase} died ({bot.proc.returncode}); see {bot.log_path}")
                return
            bot.sample()

    async def _warm_up(self) -> None:
        """A concurrent burst from eight users (enough to grow the bot's thread pool to its size), then quiet: the
        baseline is taken warm and idle."""
        n = min(8, len(self.world.users))
        specs = [Spec(index=-1 - i, user=len(self.world.users) - n + i, channel=i % len(self.world.channels),
                      via="prefix" if i % 2 else "slash", styles=3, preset=PRESETS[i % 3])
                 for i in range(n)]
        sent = await asyncio.gather(*(self._send(spec, label=f"warm-up {i}") for i, spec in enumerate(specs)))
        await asyncio.gather(*(self._wait(s) for s in sent))
        await self._quiet()
        warm = self.bot.sample()
        if warm is not None:
            self.warm[self.bot.phase] = warm
            self.say(f"warm: {warm.rss_mb:.0f} MB, {warm.threads} threads, {warm.fds} fds, {warm.children} children")

    async def _back_to_baseline(self, timeout: float = 20.0) -> Sample | None:
        """The bot's resources once idle: sampled until fds and threads are back to the baseline or ``timeout``
        (idle keep-alive connections close after aiohttp's 15 s); the seconds it took go into the figures."""
        warm = self.warm.get(self.bot.phase)
        t0 = time.monotonic()
        end = self.bot.sample()
        while warm is not None and end is not None and time.monotonic() - t0 < timeout:
            if not resource_growth(warm, end):
                break
            await asyncio.sleep(1.0)
            end = self.bot.sample()
        self.settle_seconds = time.monotonic() - t0
        return end

    async def _quiet(self, seconds: float = 1.0) -> None:
        """Wait until the bot sent nothing for ``seconds`` (bounded)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            n = len(self.fake.requests)
            await asyncio.sleep(seconds)
            if len(self.fake.requests) == n:
                return

    async def _settle_all(self, timeout: float) -> None:
        pending = [s.settled.wait() for s in self.tracker.sent if not s.settled.is_set()]
        if pending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*pending), timeout)

    async def _wait(self, sent: Sent, timeout: float | None = None) -> bool:
        try:
            await asyncio.wait_for(sent.settled.wait(), timeout or self.config.answer_timeout)
        except TimeoutError:
            return False
        return True

    # -- users ---------------------------------------------------------------------------------------------

    async def _actor(self, user: int) -> None:
        mine = [s for s in self.plan.specs if s.user == user]
        await asyncio.sleep(self.rng.uniform(0, 2.0))
        i = 0
        while i < len(mine):
            group = [mine[i]]
            while group[-1].burst and i + len(group) < len(mine):
                group.append(mine[i + len(group)])
            i += len(group)
            sent = []
            for spec in group:
                await self.bot_up.wait()
                sent.append(await self._send(spec))
            await asyncio.gather(*(self._follow_up(spec, s) for spec, s in zip(group, sent, strict=True)))
            await asyncio.sleep(self.rng.uniform(0.0, 1.5))

    async def _send(self, spec: Spec, *, label: str | None = None) -> Sent:
        user = self.world.users[spec.user]
        channel = self.world.channels[spec.channel]
        files: list[tuple[str, bytes]] = [(f"content-{spec.index}.png", self.images.good())]
        files += [(f"style-{spec.index}-{k}.png", self.images.good()) for k in range(spec.styles)]
        if spec.hostile:
            slot = self.rng.randrange(len(files))
            files[slot] = self.images.hostile(spec.hostile)
        atts = [self.fake.make_attachment(channel, FileSpec(name, data)) for name, data in files]
        if spec.hostile == "stalled":
            self.fake.cdn_fault(atts[slot], "slow", delay=DOWNLOAD_TIMEOUT * 4)
        elif spec.hostile == "truncated":
            self.fake.cdn_fault(atts[slot], "truncated")
        if spec.over_upload_limit:
            self.events["upload_over_limit"] += 1
            assert channel.guild is not None
            channel.guild.upload_limit = 9000  # discord.py believes more: the first upload gets a 413
        phase = self.bot.phase
        sent = Sent(label=label or f"#{spec.index} {spec.via} {spec.hostile or ''}".strip(), user=user,
                    channel=channel, t_sent=time.monotonic(), phase=phase, hostile=spec.hostile)
        if label is None:
            self.sent_count += 1
        self.tracker.add(sent)
        if spec.via == "prefix":
            words = ["!style"] + ([spec.preset] if spec.preset else [])
            sent.message = await self.fake.post_message(channel, user, " ".join(words), attachments=atts)
        else:
            options: dict[str, Any] = {"content": atts[0], "style": atts[1]}
            for k, att in enumerate(atts[2:], start=2):
                options[f"style{k}"] = att
            if spec.preset:
                options["preset"] = spec.preset
            sent.record = await self.fake.invoke_slash("style", options, user=user, channel=channel)
        return sent

    async def _follow_up(self, spec: Spec, sent: Sent) -> None:
        if spec.expire_token and sent.record is not None:
            with contextlib.suppress(AssertionError):
                await self.fake.wait_for_ack(sent.record, timeout=10)
            sent.record.created_at -= 3600  # from now on Discord answers 401 to this token
            self.events["expired_tokens"] += 1
        if spec.cancel:
            await self._cancel(sent)
        answered = await self._wait(sent)
        if spec.over_upload_limit and sent.channel.guild is not None:
            sent.channel.guild.upload_limit = None
        if answered and spec.rerun:
            result = next((m for m in sent.answers if classify(m) == "result"), None)
            if result is not None:
                await self._rerun(sent, result)

    async def _cancel(self, sent: Sent) -> None:
        def status() -> FakeMessage | None:
            if sent.settled.is_set():
                return None
            for msg in self.tracker.linked(sent):
                if any(c.startswith("nst:cancel:") for c in msg.custom_ids()):
                    return msg
            return None

        try:
            msg = await self.fake.wait_for(lambda: status() or sent.settled.is_set(), timeout=60, what="a Cancel button")
        except AssertionError:
            return
        if not isinstance(msg, FakeMessage):
            return
        await asyncio.sleep(self.rng.uniform(0.0, 1.0))
        custom_id = next((c for c in msg.custom_ids() if c.startswith("nst:cancel:")), None)
        if custom_id is None:
            return
        with contextlib.suppress(AssertionError):  # the job ended meanwhile and the button went away
            click = await self.fake.click_button(msg, custom_id, user=sent.user)
            self.events["cancel_clicks"] += 1
            await self.fake.wait_for_ack(click, timeout=10)

    async def _rerun(self, sent: Sent, result: FakeMessage) -> None:
        reruns = [c for c in result.custom_ids() if c.startswith("nst:rerun:")]
        if not reruns:
            return
        await self.bot_up.wait()
        if result.deleted:
            return
        custom_id = self.rng.choice(reruns)
        try:
            record = await self.fake.click_button(result, custom_id, user=sent.user)
        except AssertionError:
            return
        self.events["rerun_clicks"] += 1
        rerun = self.tracker.add(Sent(label=f"re-run of {sent.label}", user=sent.user, channel=sent.channel,
                                      t_sent=time.monotonic(), phase=self.bot.phase, record=record))
        await self._wait(rerun)

    # -- faults --------------------------------------------------------------------------------------------

    async def _chaos(self) -> None:
        """Worker kills, the 429 storm and the restart, each once enough requests were answered."""
        events = sorted([(n, "kill") for n in self.plan.kills_after] + [(self.plan.storm_after, "storm"),
                                                                         (self.plan.restart_after, "restart")])
        for after, kind in events:
            await self.fake.wait_for(partial(self._answered_at_least, after), timeout=self.config.answer_timeout * 4,
                                     what=f"{after} requests answered")
            if kind == "kill":
                await self._kill_worker()
            elif kind == "storm":
                await self._storm()
            else:
                await self._restart()

    def _answered_at_least(self, n: int) -> bool:
        return sum(1 for s in self.tracker.sent if s.settled.is_set() and not s.label.startswith("warm-up")) >= n

    async def _kill_worker(self) -> None:
        bot = self.bot
        deadline = time.monotonic() + 30
        victim = None
        while time.monotonic() < deadline and victim is None:
            workers = bot.workers()
            before = {pid: cpu_ticks(pid) for pid in workers}
            await asyncio.sleep(0.3)
            busy = [pid for pid in workers if cpu_ticks(pid) > before[pid] + 5]
            victim = busy[0] if busy else None
        if victim is None:
            workers = bot.workers()
            victim = workers[0] if workers else None
        if victim is None:
            self.failures.append("no worker process to kill")
            return
        os.kill(victim, signal.SIGKILL)
        self.events["worker_kills"] += 1
        self.say(f"killed worker {victim}")

    async def _storm(self) -> None:
        """Three seconds of 429s on the bot's posts and edits (each answered request is retried by discord.py)."""
        self.events["storms"] += 1
        self.say("429 storm")
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            if not any(rule.remaining for rule in self.fake.rate_limits):
                self.fake.rate_limit(r"^(POST|PATCH) /(channels|webhooks)/", count=2, retry_after=0.3)
            await asyncio.sleep(0.25)

    async def _restart(self) -> None:
        """SIGTERM with a download still in flight, then a new bot on the same database."""
        self.bot_up.clear()
        user = self.world.latecomer
        channel = self.world.channels[0]
        stalled = self.fake.make_attachment(channel, FileSpec("stalled-at-stop.png", self.images.good()))
        self.fake.cdn_fault(stalled, "slow", delay=60)
        style = self.fake.make_attachment(channel, FileSpec("style-at-stop.png", self.images.good()))
        sent = self.tracker.add(Sent(label="downloading at the stop", user=user, channel=channel,
                                     t_sent=time.monotonic(), phase=self.bot.phase))
        sent.message = await self.fake.post_message(channel, user, "!style", attachments=[stalled, style])
        self.downloading_at_stop = sent
        with contextlib.suppress(AssertionError):
            await self.fake.wait_for(lambda: any(stalled.url.split("/cdn")[-1] in r.path for r in self.fake.requests),
                                     timeout=10, what="the stalled download to start")
        await asyncio.sleep(0.3)
        self.restarting = True
        before = self.bot.sample()
        rc, took = await self.bot.stop()
        self.restart_status = (rc, took)
        self.say(f"bot #{self.bot.phase} stopped by SIGTERM: exit {rc} after {took:.1f} s")
        if before is not None:
            self.bot.samples.append(before)
        self.fake.clear_cdn_fault(stalled)
        await self._start_bot()
        self.restarting = False
        await self._warm_up()  # before the users come back: the baseline is taken warm and idle
        self.bot_up.set()

    # -- the verdict ---------------------------------------------------------------------------------------

    def _report(self, end: Sample | None, rc: int | None, took: float) -> Report:
        self.tracker.update()
        sent = self.tracker.sent
        with (self.workdir / "requests.txt").open("w") as out:
            for s in sent:
                took_s = f"{s.t_settled - s.t_sent:6.1f}s" if s.t_settled else "  never"
                first = s.answers[0].shown_text().replace("\n", " / ")[:160] if s.answers else ""
                kinds = ",".join(classify(m) for m in s.answers) or "lost"
                out.write(f"{s.label:40} phase {s.phase} {took_s} {kinds:12} {first}\n")
        lost = [s for s in sent if not s.answers]
        twice = [s for s in sent if len(s.answers) > 1]
        shown = [m for m in self.fake.bot_messages() if not m.deleted]
        tracebacks = [m for m in shown if "Traceback" in m.shown_text() or GENERIC in m.shown_text()]
        outcomes: dict[str, int] = defaultdict(int)
        for s in sent:
            outcomes[classify(s.answers[0]) if s.answers else "lost"] += 1
        results = sum(1 for s in sent if s.answers and classify(s.answers[0]) == "result")
        minutes = max(1e-9, (self.t_load_end - self.t_load_start) / 60)
        lag = [x for b in self.bots for x in b.stats().get("lag", [])]
        waits = self._fairness()
        hostile_sent: dict[str, int] = defaultdict(int)
        for s in sent:
            if s.hostile:
                hostile_sent[s.hostile] += 1
        growth = {}
        for b in self.bots:
            warm = self.warm.get(b.phase)
            last = b.samples[-1] if b.samples else None
            if warm and last:
                growth[b.phase] = last.rss_mb - warm.rss_mb
        final_warm = self.warm.get(self.bot.phase)
        tracebacks_in_log = sum(b.log_text().count("Traceback") for b in self.bots)
        figures: dict[str, Any] = {
            "requests": len(sent),
            "users": len({s.user.id for s in sent}),
            "servers": len({s.channel.guild.id for s in sent if s.channel.guild}),
            "outcomes": dict(sorted(outcomes.items())),
            "hostile": dict(sorted(hostile_sent.items())),
            "lost": len(lost),
            "answered_twice": len(twice) + len(self.tracker.strays),
            "tracebacks_to_users": len(tracebacks),
            "tracebacks_in_bot_log": tracebacks_in_log,
            "events": self.events,
            "restart": {"exit": self.restart_status[0] if self.restart_status else None,
                        "stop_s": round(self.restart_status[1], 1) if self.restart_status else None,
                        "downloading_at_stop_answered": bool(self.downloading_at_stop and
                                                             self.downloading_at_stop.answers)},
            "memory_growth_mb": {k: round(v, 1) for k, v in growth.items()},
            "rss_mb": {b.phase: round(max(s.rss_mb for s in b.samples), 1) for b in self.bots if b.samples},
            "baseline": vars(final_warm) if final_warm else None,
            "end": vars(end) if end else None,
            "back_to_baseline_s": round(self.settle_seconds, 1),
            "loop_lag_ms": {"p50": round(_pct(lag, 50) * 1000, 1), "p99": round(_pct(lag, 99) * 1000, 1),
                            "max": round(max(lag, default=0) * 1000, 1), "samples": len(lag)},
            "results": results,
            "jobs_per_minute": round(results / minutes, 1),
            "load_minutes": round(minutes, 2),
            "fairness_max_jobs_ahead_from_one_user": max(waits, default=0),
            "final_stop": {"exit": rc, "seconds": round(took, 1)},
            "unknown_routes": sorted(set(self.fake.unknown_routes)),
        }
        failures = list(self.failures)
        if lost:
            failures.append(f"{len(lost)} request(s) never answered: " + ", ".join(s.label for s in lost[:8]))
        if twice or self.tracker.strays:
            failures.append(f"{len(twice)} request(s) answered twice, {len(self.tracker.strays)} stray answer(s): "
                            + ", ".join(s.label for s in twice[:8]))
        if tracebacks:
            failures.append(f"{len(tracebacks)} message(s) showed a traceback or 'something went wrong': "
                            + " | ".join(m.shown_text()[:120] for m in tracebacks[:3]))
        for phase, mb in growth.items():
            if mb >= MEMORY_GROWTH_LIMIT_MB:
                failures.append(f"bot #{phase} memory grew {mb:.0f} MB after warm-up (limit {MEMORY_GROWTH_LIMIT_MB:g})")
        if final_warm and end:
            failures += resource_growth(final_warm, end)
        elif not end:
            failures.append("the bot was not running at the end")
        if max(waits, default=0) > 1:
            failures.append(f"queue unfair: a job waited behind {max(waits)} jobs of one other user")
        if self.events["worker_kills"] < 2:
            failures.append("fewer than two workers were killed")
        return Report(figures, failures)

    def _fairness(self) -> list[int]:
        """For each job: the most jobs of any one other user that started while it waited, its owner idle."""
        out = []
        for b in self.bots:
            events = b.stats().get("queue", [])
            enq: dict[str, tuple[float, int]] = {}
            starts: list[tuple[float, int, str]] = []
            ends: dict[int, list[float]] = defaultdict(list)
            for kind, t, user, job in events:
                if kind == "enqueue":
                    enq[job] = (t, user)
                elif kind == "start":
                    starts.append((t, user, job))
                elif kind == "end":
                    ends[user].append(t)
            started = {job: t for t, _, job in starts}
            for job, (t_enq, user) in enq.items():
                t_start = started.get(job)
                if t_start is None:
                    continue
                # The owner's own previous job holds its turn until it ends (one running job per person).
                eligible = max([t_enq] + [t for t in ends[user] if t <= t_start])
                ahead: dict[int, int] = defaultdict(int)
                for t, other, _ in starts:
                    if other != user and eligible < t < t_start:
                        ahead[other] += 1
                out.append(max(ahead.values(), default=0))
        return out


SOCKET_SLACK = 4  # idle keep-alive connections aiohttp may still pool (they close after 15 s idle); more is a leak


def resource_growth(warm: Sample, end: Sample) -> list[str]:
    """What did not come back to the warm baseline: files and pipes exactly, threads and children exactly,
    sockets within the keep-alive slack."""
    out = []
    for name, now, then in (("file descriptors other than sockets", end.fds - end.sockets, warm.fds - warm.sockets),
                            ("threads", end.threads, warm.threads), ("child processes", end.children, warm.children)):
        if now > then:
            out.append(f"{name} not back to baseline: {then} -> {now}")
    if end.sockets > warm.sockets + SOCKET_SLACK:
        out.append(f"sockets not back to baseline: {warm.sockets} -> {end.sockets}")
    return out


def _pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[min(98, max(0, int(p) - 1))]


def print_report(report: Report, config: PlanConfig, seed: int, wall: float) -> None:
    f = report.figures
    lines = [
        f"soak: {f['requests']} requests from {f['users']} users in {f['servers']} servers "
        f"(seed {seed}, {config.workers} workers), {wall:.0f} s wall",
        f"  outcomes: {f['outcomes']}",
        f"  hostile requests: {f['hostile']}",
        f"  faults: {f['events']}; restart: {f['restart']}",
        f"  lost {f['lost']}, answered twice {f['answered_twice']}, tracebacks to users {f['tracebacks_to_users']} "
        f"(tracebacks in the bot's log: {f['tracebacks_in_bot_log']})",
        f"  memory growth after warm-up (MB, per bot process): {f['memory_growth_mb']}; peak RSS {f['rss_mb']}",
        f"  baseline -> end: {_res(f['baseline'])} -> {_res(f['end'])} ({f['back_to_baseline_s']} s after the last "
        "answer)",
        f"  event-loop lag: p50 {f['loop_lag_ms']['p50']} ms, p99 {f['loop_lag_ms']['p99']} ms, "
        f"max {f['loop_lag_ms']['max']} ms ({f['loop_lag_ms']['samples']} samples)",
        f"  throughput: {f['results']} results in {f['load_minutes']} min = {f['jobs_per_minute']} jobs/min",
        f"  fairness: at most {f['fairness_max_jobs_ahead_from_one_user']} job(s) of one other user ahead of a "
        "waiting job",
        f"  final stop: {f['final_stop']}",
    ]
    if f["unknown_routes"]:
        lines.append(f"  routes the fake does not know: {f['unknown_routes']}")
    if "kills" in f:
        k = f["kills"]
        lines.append(f"  kill phase: {k['kills']} SIGKILLs over {k['rounds']} rounds ({k['kill_points']}), "
                     f"{k['requests']} requests answered {k['answers']}, {len(k['problems'])} problems, "
                     f"{k['wall_s']} s")
    lines.append("PASS" if not report.failures else "FAIL:\n  - " + "\n  - ".join(report.failures))
    print("\n".join(lines), flush=True)


def markdown(f: dict[str, Any], config: PlanConfig, seed: int, wall: float) -> str:
    """The figures as the table in docs/reliability.md."""
    lag = f["loop_lag_ms"]
    rows = [
        ("requests", f"{f['requests']} from {f['users']} users in {f['servers']} servers (seed {seed}), "
                     f"{sum(f['hostile'].values())} hostile; {config.workers} workers, {wall:.0f} s in all"),
        ("answers", ", ".join(f"{v} {k}" for k, v in f["outcomes"].items())),
        ("lost / answered twice / tracebacks shown", f"{f['lost']} / {f['answered_twice']} / "
                                                      f"{f['tracebacks_to_users']}"),
        ("faults survived", f"{f['events']['worker_kills']} worker kills, {f['events']['storms']} 429 storm, "
                            f"{f['events']['expired_tokens']} expired token, {f['events']['upload_over_limit']} "
                            f"upload over the limit, 1 restart (SIGTERM: exit {f['restart']['exit']} in "
                            f"{f['restart']['stop_s']} s)"),
        ("bot memory growth after warm-up", " and ".join(f"{v:+.1f} MB" for v in f["memory_growth_mb"].values())
         + f" (peak RSS {max(f['rss_mb'].values(), default=0):.0f} MB)"),
        ("bot process, warm baseline → end", _res(f["baseline"]) + " → " + _res(f["end"])
         + f" ({f['back_to_baseline_s']} s after the last answer)"),
        ("event-loop lag", f"p50 {lag['p50']} ms, p99 {lag['p99']} ms (max {lag['max']} ms)"),
        ("jobs per minute", f"{f['jobs_per_minute']} ({f['results']} results in {f['load_minutes']} min, "
                            "paced by the users of the plan)"),
        ("queue fairness", f"at most {f['fairness_max_jobs_ahead_from_one_user']} job of any other user ahead of "
                           "a waiting job"),
    ]
    if "kills" in f:
        k = f["kills"]
        rows.append(("killed with SIGKILL", f"{k['kills']} kills at {len(k['kill_points'])} kinds of point over "
                                            f"{k['rounds']} rounds, {k['starts']} starts on one database; "
                                            f"{k['requests']} requests: "
                                            + ", ".join(f"{v} {n}" for n, v in k["answers"].items())
                                            + f"; {len(k['problems'])} contradictions, double or silent answers"))
    return "\n".join(["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])


def _res(s: dict[str, Any] | None) -> str:
    if not s:
        return "?"
    return (f"{s['rss_mb']:.0f} MB, {s['threads']} threads, {s['fds']} fds ({s.get('sockets', 0)} sockets), "
            f"{s['children']} children")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="the smaller plan (inside make test)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--requests", type=int, help="override the plan's number of requests")
    parser.add_argument("--users", type=int, help="override the plan's number of users")
    parser.add_argument("--workers", type=int, help="worker processes (default 2)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--markdown", action="store_true", help="also print the figures as the table in docs/reliability.md")
    parser.add_argument("--keep", type=Path, help="keep the bot's logs, stats and database in this folder")
    parser.add_argument("--no-kills", action="store_true", help="skip the kill phase (benchmarks/kill_points.py)")
    args = parser.parse_args(argv)
    config = SHORT if args.short else FULL
    overrides = {k: v for k, v in (("requests", args.requests), ("users", args.users), ("workers", args.workers))
                 if v is not None}
    if overrides:
        config = PlanConfig(**{**vars(config), **overrides})
    engine = {"size": 48, "iterations": 2}
    t0 = time.monotonic()
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)  # the fake's CDN, when the bot hangs up

    def say(text: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f}s] {text}", flush=True)

    with contextlib.ExitStack() as stack:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            workdir = args.keep
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nst-soak-")))
        report = asyncio.run(Soak(config, args.seed, workdir, engine, say).run())
        if not args.short and not args.no_kills:
            say("kill phase: the bot killed with SIGKILL at seeded points of a request's life and of the drain")
            rounds = make_rounds(KILL_POINTS, KILL_ROUNDS, args.seed)
            kills = asyncio.run(run_kills(rounds, workdir / "kills", log=say))
            report.figures["kills"] = {k: v for k, v in kills.items() if k != "transcript"}
            report.failures += [f"kill phase: {p}" for p in kills["problems"]]
            if kills["final_exit"] != 0:
                report.failures.append(f"kill phase: the last bot exited with {kills['final_exit']} on SIGTERM")
        if report.failures and not args.keep:
            for log in sorted(workdir.glob("bot-*.log")):
                tail = log.read_text(errors="replace").splitlines()[-40:]
                print(f"--- last lines of {log.name} ---\n" + "\n".join(tail))
    wall = time.monotonic() - t0
    print_report(report, config, args.seed, wall)
    if args.markdown:
        print(markdown(report.figures, config, args.seed, wall))
    if args.json:
        args.json.write_text(json.dumps(report.figures, indent=2, default=str))
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())

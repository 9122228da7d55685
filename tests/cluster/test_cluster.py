"""The README's Ray cluster on four separate hosts (network + mount namespaces on a private bridge): a head, two
worker hosts (CPU, one slot each) and the bot's host, set up with ``scripts/cluster-node.sh`` exactly as
docs/scaling-out.md says, the bot against the fake Discord (served on the bridge).

One cluster for the module, one test walking through what the docs promise, in order: the bot's host is refused
until it joins; a result is computed on a worker host; a late-joining host gets an actor (``NST_WORKERS=auto``); a
worker host switched off mid-job fails only that job and the next runs on the other host; SIGTERM drains and exits
0 with the cluster still up; losing the head ends the bot with exit code 1, and a bot started without a head is one
line and exit code 1. Skipped, with one line, where namespaces cannot be made (not root, no ``ip netns``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.cluster.hosts import Host, Network, links, namespaces, why_no_namespaces
from tests.e2e.bot_harness import embed_text, images, is_error, is_result
from tests.e2e.bot_process import BotProcess, bot_env
from tests.fakediscord import FakeDiscord

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "scaling-out.md"
READY = "ready; invite the bot with"
QUICK = {"size": 48, "iterations": 4}
LONG = {"size": 48, "iterations": 5000}  # minutes: its host is switched off long before it ends
SHORT = {"size": 48, "iterations": 150}  # seconds: a job the drain (60 s) lets finish, even on a busy machine
HEAD_LOSS_SECONDS = 10  # Ray's own wait for a lost head, shortened for the test (60 s by default)

# Its own xdist group (tests/conftest.py: a module-wide set-up), started early with the Ray tests.
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(420)]


DOC_HEAD = "10.0.0.1"  # the head's address in the docs' commands
DOC_ADDRESS = re.compile(r"10\.0\.0\.\d+")


def doc_lines(start: str) -> list[str]:
    """The lines of docs/scaling-out.md's cluster commands that begin with ``start``, as written there."""
    return [line.strip() for line in DOCS.read_text().splitlines() if line.strip().startswith(start)]


def as_here(text: str, host: Host, head: Host) -> str:
    """A docs command with this test's addresses: the docs' head's is the head's, any other is ``host``'s own."""
    return DOC_ADDRESS.sub(lambda m: head.ip if m.group() == DOC_HEAD else host.ip, text)


def bot_command_env(head: Host) -> dict[str, str]:
    """The settings of the docs' line that starts the bot (step 5), as environment variables."""
    [line] = [x for x in doc_lines("RAY_AUTH_MODE=") if x.endswith(" nst-bot")]
    return dict(word.split("=", 1) for word in as_here(line, head, head).split()[:-1])


@pytest.fixture(scope="module")
def cluster() -> Iterator[Network]:
    """Four hosts; the token made on the head and copied to the others' ~/.ray, the head and one worker up."""
    reason = why_no_namespaces()
    if reason is not None:
        pytest.skip(reason)
    net = Network(["head", "w1", "w2", "bot"])
    try:
        path = f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}"
        for host in net.hosts.values():
            # Ray's wait for a lost head, shortened on every host so the head-loss step takes seconds, not a minute.
            host.env = {"PATH": path, "LANG": "C.UTF-8", "RAY_gcs_rpc_server_reconnect_timeout_s": str(HEAD_LOSS_SECONDS)}
        head = net.hosts["head"]
        node(head, head, "token")
        for host in net.hosts.values():
            if host is not head:
                (host.home / ".ray").mkdir()
                (host.home / ".ray" / "auth_token").write_bytes((head.home / ".ray" / "auth_token").read_bytes())
        node(head, head, "head", "--num-cpus=0")  # the test's hosts have no GPU: keep actors off the head
        node(net.hosts["w1"], head, "worker", "--num-cpus=1")
        yield net
    finally:
        left = net.close()
        assert not left, f"left behind: {left}"
        names = [h.netns for h in net.hosts.values()]
        assert not [n for n in names if n in namespaces().split()], "a namespace of the test remains"
        assert net.bridge not in links() and f"nv{net.tag}h" not in links(), "a link of the test remains"


def node(host: Host, head: Host, role: str, *options: str) -> None:
    """Run the docs' ``scripts/cluster-node.sh ROLE …`` line on ``host`` (this test's addresses, ``options`` added)."""
    [line] = [x for x in doc_lines("scripts/cluster-node.sh ") if x.split()[1] == role]
    argv = as_here(line, host, head).split()
    done = host.sh([str(ROOT / argv[0]), *argv[1:], *options], timeout=120)
    assert done.returncode == 0, f"{role} on {host.name} failed:\n{done.stdout}\n{done.stderr}"


@contextlib.asynccontextmanager
async def bot_on(host: Host, head: Host, fake: FakeDiscord, overrides_file: Path, *args: str
                 ) -> AsyncIterator[BotProcess]:
    """The bot (``args``: ``doctor``) on ``host`` as docs/scaling-out.md starts it, pointed at the fake Discord;
    killed if left running."""
    env = bot_env(host.home, fake.base_url, NST_CLUSTER_RESCAN=1, NST_JOB_TIMEOUT=300, SHUTDOWN_GRACE=60,
                  PROGRESS_EDIT_INTERVAL=0.5, **bot_command_env(head))
    env |= {"NST_TEST_ENGINE_OVERRIDES": json.dumps(QUICK), "NST_TEST_OVERRIDES_FILE": str(overrides_file)}
    proc = await asyncio.create_subprocess_exec(
        *host.command([sys.executable, "-m", "tests.e2e.bot_process", *args]), cwd=ROOT, env=host.environment(env),
        stdout=asyncio.subprocess.PIPE, stderr=subprocess.STDOUT)
    bot = BotProcess(proc)
    try:
        yield bot
    except BaseException:
        print(f"the bot's output on {host.name}:\n{bot.output}")
        raise
    finally:
        await bot.kill()


async def use_overrides(bot: BotProcess, path: Path, values: dict[str, int]) -> None:
    """The engine options of the bot's next jobs (tests.e2e.bot_process reloads them on SIGUSR1)."""
    await asyncio.to_thread(path.write_text, json.dumps(values))
    seen = len(bot.lines)
    bot.signal(signal.SIGUSR1)
    text = f"test engine overrides now {json.dumps(values, sort_keys=True)}"
    for _ in range(200):
        if any(text in line for line in bot.lines[seen:]):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the bot did not take the overrides {values}")


def raylets(host: Host) -> list[int]:
    """The raylet processes (a Ray node's own) running on ``host``."""
    found = []
    for pid in host.pids():
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].endswith(b"/raylet"):
                found.append(pid)
    return found


def job_lines(bot: BotProcess) -> list[str]:
    return [line for line in bot.lines if re.search(r"\bjob \S+ owner=", line)]


async def test_the_documented_cluster(cluster: Network) -> None:
    head, w1, w2, bot_host = (cluster.hosts[n] for n in ("head", "w1", "w2", "bot"))
    overrides = bot_host.home / "overrides.json"  # where the bot can read it (its /tmp is its own)
    shown: list[str] = []  # the log lines this test proves things with
    fake = FakeDiscord()
    fake.host = cluster.bridge_ip  # reachable from every host, over the bridge
    async with fake:
        # 1. The bot's host has not joined: one line naming the fix, exit code 2 (Ray alone would abort in C++).
        async with bot_on(bot_host, head, fake, overrides) as bot:
            assert await bot.wait(timeout=120) == 2, bot.output
            [line] = [x for x in bot.lines if "no Ray node runs on this machine" in x]
            assert f"ray start --address={head.ip}:6379 --num-cpus=0 --num-gpus=0" in line
            assert "Traceback" not in bot.output and "raylet" not in bot.output
            shown.append(line)

        await asyncio.to_thread(node, bot_host, head, "bot")
        async with bot_on(bot_host, head, fake, overrides, "doctor") as doctor:
            await doctor.wait(timeout=120)  # (its token check fails: the fake's token is not shaped like Discord's)
            shown.append(await doctor.wait_for_line("ray cluster:"))
            assert shown[-1] == f"[  ok] ray cluster: the head at {head.ip}:6379 answers; this machine's node is " \
                                f"{bot_host.ip}"
        async with bot_on(bot_host, head, fake, overrides) as bot:
            await bot.wait_for_line(READY, timeout=180)
            shown.append(await bot.wait_for_line("Ray backend ready"))

            # 2. A real result, computed on the worker host w1 (the only one with room for an actor).
            await fake.post_message(fake.channel, fake.member, "!style", attachments=images(1))
            first = await fake.wait_for_message(fake.channel, is_result, timeout=120)
            assert first.attachments[0].size > 0
            [done] = job_lines(bot)
            assert "outcome=done" in done and f"on {w1.ip} (w1," in done
            shown.append(done)

            # 3. A host that joins later gets an actor.
            await asyncio.to_thread(node, w2, head, "worker", "--num-cpus=1")
            shown.append(await bot.wait_for_line("the Ray cluster now has 2 CPU(s) (was 1)", timeout=60))
            shown.append(await bot.wait_for_line(f"on {w2.ip} (w2,", timeout=120))

            # 4. w1 switched off mid-job (every process in its namespace): only that job fails, clearly.
            await use_overrides(bot, overrides, LONG)
            victim = await fake.post_message(fake.channel, fake.member, "!style", attachments=images(2))
            await fake.wait_for_message(fake.channel, lambda m: m.reference_id == victim.id and "%" in m.content,
                                        timeout=120)
            killed = await asyncio.to_thread(w1.kill_all)
            shown.append(f"(test) switched off host w1: SIGKILL to {len(killed)} processes {sorted(set(killed))}")
            failure = await fake.wait_for_message(fake.channel, is_error, timeout=120)
            assert "crashed" in embed_text(failure)
            lost = await bot.wait_for_line("outcome=failed (WorkerCrashedError", timeout=30)
            assert "its machine left the cluster or died" in lost and f"on {w1.ip} (w1," in lost
            shown.append(lost)

            # 5. The next request runs on the other host.
            await use_overrides(bot, overrides, QUICK)
            await fake.post_message(fake.channel, fake.admin, "!style", attachments=images(3))
            await fake.wait_for_message(fake.channel, lambda m: is_result(m) and m is not first, timeout=120)
            done = job_lines(bot)[-1]
            assert "outcome=done" in done and f"on {w2.ip} (w2," in done
            shown.append(done)

            # 6. SIGTERM while a job runs on w2: it is delivered, the bot exits 0, the cluster stays up.
            await use_overrides(bot, overrides, SHORT)
            request = await fake.post_message(fake.channel, fake.member, "!style", attachments=images(4))
            await fake.wait_for_message(fake.channel, lambda m: m.reference_id == request.id and "%" in m.content,
                                        timeout=60)
            bot.signal(signal.SIGTERM)
            stopping = await bot.wait_for_line("SIGTERM: stopping", timeout=30)
            assert "1 job(s) running" in stopping
            shown.append(stopping)
            await fake.wait_for_message(fake.channel, is_result, timeout=120)
            assert await bot.wait(timeout=90) == 0, bot.output
            drained = job_lines(bot)[-1]
            assert "outcome=done" in drained and f"on {w2.ip} (w2," in drained
            shown += [drained, "(test) the bot exited with code 0"]
        assert all(h.pids() for h in (head, w2, bot_host)), "a host's Ray went down with the bot"
        status = await asyncio.to_thread(head.sh, ["ray", "status", f"--address={head.ip}:6379"], timeout=60,
                                         extra={"RAY_AUTH_MODE": "token"})
        assert status.returncode == 0 and "Active:" in status.stdout, status.stdout + status.stderr
        shown.append(f"(test) ray status on the head after the bot's exit: {status.stdout.count('node_')} nodes active")

        # 7. Losing the head (docs: running jobs fail, the bot ends with exit code 1 for its supervisor to restart
        #    it, and until the head is back it does not start).
        async with bot_on(bot_host, head, fake, overrides) as bot:
            await bot.wait_for_line(READY, timeout=180)
            await use_overrides(bot, overrides, LONG)
            victim = await fake.post_message(fake.channel, fake.member, "!style", attachments=images(5))
            await fake.wait_for_message(fake.channel, lambda m: m.reference_id == victim.id and "%" in m.content,
                                        timeout=120)
            await asyncio.to_thread(head.kill_all)
            shown.append(await bot.wait_for_line("does not answer", timeout=60))
            assert await bot.wait(timeout=120) == 1, bot.output
            shown += [bot.lines[-1], "(test) the bot exited with code 1"]
            for _ in range(600):  # the Ray nodes on the other hosts stop too (bounded: 60 s)
                if not (raylets(w2) or raylets(bot_host)):
                    break
                await asyncio.sleep(0.1)
            assert not (raylets(w2) or raylets(bot_host)), "a Ray node outlived its head"
            shown.append("(test) the raylets of hosts w2 and bot have stopped")
        async with bot_on(bot_host, head, fake, overrides) as bot:
            assert await bot.wait(timeout=120) == 1, bot.output
            [line] = [x for x in bot.lines if "does not answer" in x]
            shown.append(line)
    print("\n".join(["", "cluster test, the lines it proves things with:", *shown]))

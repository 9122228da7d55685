"""Separate machines made on one Linux host: network + mount (+ hostname) namespaces on a private bridge.

Each ``Host`` has its own network namespace with its own address on the bridge, and every command run on it gets a
private mount namespace in which the host's own folder is mounted over /tmp and its own HOME is set, so Ray's
sockets and session files (under /tmp/ray) and the token (~/.ray) of one host are invisible to the others, as on
real machines. The process list is shared (no PID namespace), as Ray sees it in many containers. Needs root.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HOSTS_FOLDER = "/var/tmp"  # not under /tmp, which each host replaces with its own
# The command runs with the host's folder over /tmp and its name as hostname; "$@" is the command itself. A checkout
# that lies under /tmp itself (a CI clone, say) is held aside first and mounted back at its own path, so every host
# still runs the same installed project, as the docs' machines do.
ENTER = ('if [ -n "$NST_HOST_KEEP" ]; then mount --bind "$NST_HOST_KEEP" "$NST_HOST_HOLD"; fi'
         ' && mount --bind "$NST_HOST_TMP" /tmp'
         ' && if [ -n "$NST_HOST_KEEP" ]; then mkdir -p "$NST_HOST_KEEP" && mount --bind "$NST_HOST_HOLD" "$NST_HOST_KEEP"; fi'
         ' && hostname "$NST_HOST_NAME" && exec "$@"')
# The folder that holds the checkout and ../shared (or the checkout alone, when that folder is /tmp), when /tmp
# would hide it.
ROOT, CHECKOUT = Path(__file__).resolve().parents[2], Path(__file__).resolve().parents[3]
KEEP = "" if not ROOT.is_relative_to("/tmp") else str(ROOT if CHECKOUT == Path("/tmp") else CHECKOUT)


def run(*argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=timeout)


def why_no_namespaces() -> str | None:
    """None when this machine can make the hosts (root, ip, unshare, network namespaces), else why not."""
    if os.geteuid() != 0:
        return "the cluster test makes network namespaces and needs root"
    for tool in ("ip", "unshare", "mount"):
        if shutil.which(tool) is None:
            return f"the cluster test needs the {tool!r} command"
    probe = f"nstprobe{os.getpid()}"
    try:
        run("ip", "netns", "add", probe)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        return f"network namespaces are not available here ({(getattr(exc, 'stderr', '') or str(exc)).strip()})"
    try:
        run("ip", "netns", "exec", probe, "unshare", "--mount", "--uts", "--propagation", "private", "true")
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        return f"mount namespaces are not available here ({(getattr(exc, 'stderr', '') or str(exc)).strip()})"
    finally:
        run("ip", "netns", "del", probe, check=False)
    return None


@dataclass
class Host:
    """One machine: its namespace, address, folder (tmp/ and home/) and hostname."""

    name: str
    netns: str
    ip: str
    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.root / "home"

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` as a command that runs on this host."""
        return ["ip", "netns", "exec", self.netns, "unshare", "--mount", "--uts", "--propagation", "private",
                "sh", "-c", ENTER, "sh", *argv]

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The host's environment: its own HOME and /tmp win over anything in ``extra``."""
        env = dict(self.env) | (extra or {})
        return env | {"HOME": str(self.home), "NST_HOST_TMP": str(self.root / "tmp"), "NST_HOST_NAME": self.name,
                      "TMPDIR": "/tmp", "NST_HOST_KEEP": KEEP, "NST_HOST_HOLD": str(self.root / "hold")}

    def sh(self, argv: list[str], *, timeout: float = 120, extra: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` on this host and wait for it (bounded)."""
        return subprocess.run(self.command(argv), env=self.environment(extra), capture_output=True, text=True,
                              timeout=timeout, cwd=self.home)

    def pids(self) -> list[int]:
        out = run("ip", "netns", "pids", self.netns, check=False).stdout
        return [int(p) for p in out.split()]

    def kill_all(self, timeout: float = 20) -> list[int]:
        """SIGKILL every process of this host until none is left (the machine is switched off); their pids."""
        killed: list[int] = []
        deadline = time.monotonic() + timeout
        while pids := self.pids():
            if time.monotonic() > deadline:
                raise AssertionError(f"host {self.name}: processes {pids} survived SIGKILL")
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        return killed


class Network:
    """A bridge and hosts on it; ``close`` removes every process, namespace, link and folder it made."""

    def __init__(self, names: list[str], tag: str | None = None) -> None:
        self.tag = tag or f"{os.getpid() % 100000}"
        subnet = 10 + os.getpid() % 200  # 10.200.N.0/24: one per test process, away from common networks
        self.prefix = f"10.200.{subnet}"
        self.bridge = f"nstbr{self.tag}"
        self.bridge_ip = f"{self.prefix}.254"  # the test's own side (the fake Discord listens here)
        self.folder = Path(tempfile.mkdtemp(prefix="nstcluster-", dir=HOSTS_FOLDER))
        self.hosts: dict[str, Host] = {}
        self.veths: list[str] = []  # the hosts' cables on the bridge, by their outside names
        try:
            run("ip", "link", "add", self.bridge, "type", "bridge")
            run("ip", "addr", "add", f"{self.bridge_ip}/24", "dev", self.bridge)
            run("ip", "link", "set", self.bridge, "up")
            for number, name in enumerate(names, start=1):
                self._add(name, f"{self.prefix}.{number}", number)
        except BaseException:
            self.close()
            raise

    def _add(self, name: str, ip: str, number: int) -> None:
        netns, outside = f"nst{self.tag}-{name}"[:15], f"nv{self.tag}h{number}"[:15]
        root = self.folder / name
        for sub in ("tmp", "home", "hold"):
            (root / sub).mkdir(parents=True)
        os.chmod(root / "tmp", 0o1777)
        self.hosts[name] = Host(name, netns, ip, root)
        run("ip", "netns", "add", netns)
        run("ip", "link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", netns)
        self.veths.append(outside)
        run("ip", "link", "set", outside, "master", self.bridge, "up")
        run("ip", "-n", netns, "addr", "add", f"{ip}/24", "dev", "eth0")
        run("ip", "-n", netns, "link", "set", "eth0", "up")
        run("ip", "-n", netns, "link", "set", "lo", "up")

    def close(self) -> list[str]:
        """Kill every process on every host, delete the namespaces and the bridge; what could not be removed."""
        left = []
        for host in self.hosts.values():
            try:
                host.kill_all()
            except AssertionError as exc:
                left.append(str(exc))
        # Each cable is deleted from outside, which takes both its ends at once; left to the namespace's deletion,
        # the outside end goes only when the kernel gets round to destroying the namespace, after this returns.
        for veth in self.veths:
            run("ip", "link", "del", veth, check=False)
        for host in self.hosts.values():
            if run("ip", "netns", "del", host.netns, check=False).returncode != 0:
                left.append(f"namespace {host.netns}")
        run("ip", "link", "del", self.bridge, check=False)
        names = [self.bridge, *self.veths]
        deadline = time.monotonic() + 10
        while any(name in links() for name in names) and time.monotonic() < deadline:
            time.sleep(0.1)
        left += [f"link {name}" for name in names if name in links()]
        shutil.rmtree(self.folder, ignore_errors=True)
        return left


def links() -> str:
    return run("ip", "-br", "link", check=False).stdout


def namespaces() -> str:
    return run("ip", "netns", "list", check=False).stdout

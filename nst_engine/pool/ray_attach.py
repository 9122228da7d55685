"""Checks before this process attaches to a Ray cluster, so that a wrong set-up is one clear line, never a crash.

A Ray driver talks to the cluster through the raylet of its own machine (a Unix socket), so the bot's machine must
have joined the cluster with ``ray start --address=HEAD:6379 --num-cpus=0 --num-gpus=0`` (a node that offers nothing
to run). Given only a remote address, Ray would pick another machine's raylet and abort the whole process in C++
when that socket is not there. So before ``ray.init`` the backend checks that the head answers, finds this machine's
raylet among the running processes (as Ray itself does; here from /proc) with its socket file present here, and
tells Ray which node that is. No torch here.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

from nst_engine.errors import ClusterSetupError, PoolError

HEAD_CONNECT_TIMEOUT = 5.0  # seconds to open a TCP connection to the head's GCS port
HEAD_CHECK_TIMEOUT = 2.0  # the same, for the check of a running bot


@dataclass(frozen=True)
class LocalNode:
    """A raylet running on this machine: the cluster it belongs to, its address and its socket."""

    gcs_address: str
    node_ip: str
    socket_path: str


def join_command(address: str) -> str:
    """The command that makes this machine a node of the cluster at ``address`` that runs nothing."""
    return f"ray start --address={address} --num-cpus=0 --num-gpus=0"


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` as a pair; ClusterSetupError for anything else (Ray Client's ``ray://``, a missing port)."""
    if address.startswith("ray://"):
        raise ClusterSetupError(
            f"RAY_ADDRESS={address}: Ray Client (ray://) is not supported; join this machine to the cluster with "
            f"`{join_command('HEAD:6379')}` and set RAY_ADDRESS=HEAD:6379"
        )
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterSetupError(f"RAY_ADDRESS={address} is not host:port (the head's GCS port, e.g. 10.0.0.1:6379)")
    return host.strip("[]"), int(port)


def check_head_reachable(address: str, timeout: float = HEAD_CONNECT_TIMEOUT) -> None:
    """PoolError naming ``address`` when its GCS port does not accept a connection within ``timeout`` seconds."""
    host, port = split_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PoolError(
            f"the Ray head at {address} (RAY_ADDRESS) does not answer ({reason}): start it there "
            "(scripts/cluster-node.sh head), or correct the address or the firewall between the machines"
        ) from None


def local_nodes(proc: Path = Path("/proc")) -> list[LocalNode]:
    """The raylets of this machine: their address is one of its own and their socket file is here (a process list
    shared with other machines, as in some containers, shows theirs too, and the nodes of one cluster share the
    socket's path). Read from /proc: Ray clusters run on Linux."""
    found = []
    for cmdline_file in proc.glob("[0-9]*/cmdline"):
        try:
            args = cmdline_file.read_bytes().decode(errors="replace").split("\0")
        except OSError:  # the process ended meanwhile, or is not ours to read
            continue
        if not args or os.path.basename(args[0]) != "raylet":
            continue
        flags = dict(arg.split("=", 1) for arg in args[1:] if arg.startswith("--") and "=" in arg)
        path = flags.get("--raylet_socket_name", "")
        ip = flags.get("--node_ip_address", "")
        if path and _is_socket(path) and _is_local_address(ip) and flags.get("--gcs-address"):
            found.append(LocalNode(flags["--gcs-address"], ip, path))
    return found


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def _is_local_address(ip: str) -> bool:
    """True when ``ip`` is one of this machine's addresses (only those can be bound)."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((ip, 0))
    except (OSError, ValueError):
        return False
    return True


def _same_endpoint(a: str, b: str) -> bool:
    """True when two host:port addresses name the same host and port (names resolved, so a name matches its IP)."""
    (host_a, port_a), (host_b, port_b) = split_address(a), split_address(b)
    if port_a != port_b:
        return False
    try:
        return socket.gethostbyname(host_a) == socket.gethostbyname(host_b)
    except OSError:
        return host_a == host_b


def node_ip_for(address: str, proc: Path = Path("/proc")) -> str:
    """The address of this machine's Ray node in the cluster at ``address`` (for ``ray.init(_node_ip_address=)``).

    ClusterSetupError naming the fix when this machine has not joined that cluster.
    """
    nodes = local_nodes(proc)
    mine = [n for n in nodes if _same_endpoint(n.gcs_address, address)]
    if mine:
        return mine[0].node_ip
    if nodes:
        raise ClusterSetupError(
            f"this machine's Ray node belongs to the cluster at {nodes[0].gcs_address}, not to RAY_ADDRESS={address}: "
            f"run `ray stop`, then `{join_command(address)}`, or correct RAY_ADDRESS"
        )
    raise ClusterSetupError(
        f"RAY_ADDRESS={address}, but no Ray node runs on this machine, and the bot reaches the cluster through one: "
        f"join it first with `{join_command(address)}` (docs/scaling-out.md)"
    )


def head_lost_report(address: str, was_lost: bool, log: logging.Logger) -> bool:
    """Whether the head at ``address`` is lost now; logs the change (a blocking call: run it in a helper thread).

    Without its head a cluster cannot go on (no new actors, no cluster state), and Ray ends every process of it,
    this one included, when the head stays away for ``gcs_rpc_server_reconnect_timeout_s`` (60 s by default); this
    line says why before that happens.
    """
    try:
        check_head_reachable(address, HEAD_CHECK_TIMEOUT)
    except PoolError:
        if not was_lost:
            log.error("the Ray head at %s (RAY_ADDRESS) does not answer: jobs already running may finish, but Ray "
                      "ends this bot (exit code 1) unless the head is back within a minute; then start the head, "
                      "rejoin every machine, and start the bot (docs/scaling-out.md)", address)
        return True
    if was_lost:
        log.warning("the Ray head at %s answers again", address)
    return False

"""The checks before the bot attaches to a Ray cluster: the head must answer, and this machine must run a Ray node
of that cluster (its raylet in the process list, its socket file here, its address one of this machine's)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from nst_engine.errors import ClusterSetupError, PoolError
from nst_engine.pool.ray_attach import check_head_reachable, local_nodes, node_ip_for, split_address
from nst_engine.pool.ray_connection import init_failure


def fake_raylet(proc: Path, pid: int, *, gcs: str, ip: str, sock: Path) -> None:
    """A /proc entry as a raylet's looks: its command line, NUL-separated."""
    (proc / str(pid)).mkdir(parents=True)
    args = ["/venv/lib/ray/core/src/ray/raylet/raylet", f"--raylet_socket_name={sock}", f"--node_ip_address={ip}",
            f"--gcs-address={gcs}", "--node_manager_port=0"]
    (proc / str(pid) / "cmdline").write_bytes("\0".join(args).encode() + b"\0")


@pytest.fixture
def raylet_socket(tmp_path: Path):
    path = tmp_path / "raylet"
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(path))
        yield path


def test_a_local_raylet_is_found_by_its_socket_and_address(tmp_path: Path, raylet_socket: Path) -> None:
    proc = tmp_path / "proc"
    fake_raylet(proc, 10, gcs="127.0.0.1:6379", ip="127.0.0.1", sock=raylet_socket)
    fake_raylet(proc, 11, gcs="127.0.0.1:6379", ip="127.0.0.1", sock=tmp_path / "elsewhere")  # socket not here
    fake_raylet(proc, 12, gcs="127.0.0.1:6379", ip="192.0.2.200", sock=raylet_socket)  # another machine's address
    (proc / "13").mkdir()
    (proc / "13" / "cmdline").write_bytes(b"python\0-m\0bot\0")
    [node] = local_nodes(proc)
    assert (node.gcs_address, node.node_ip) == ("127.0.0.1:6379", "127.0.0.1")
    assert node_ip_for("localhost:6379", proc) == "127.0.0.1"  # names resolve to the raylet's address


def test_no_node_here_is_refused_with_the_command_that_joins(tmp_path: Path, raylet_socket: Path) -> None:
    proc = tmp_path / "proc"
    proc.mkdir()
    with pytest.raises(ClusterSetupError, match=r"no Ray node runs on this machine.*"
                       r"`ray start --address=10\.0\.0\.1:6379 --num-cpus=0 --num-gpus=0`"):
        node_ip_for("10.0.0.1:6379", proc)
    fake_raylet(proc, 10, gcs="127.0.0.1:6380", ip="127.0.0.1", sock=raylet_socket)
    with pytest.raises(ClusterSetupError, match=r"belongs to the cluster at 127\.0\.0\.1:6380, not to "
                       r"RAY_ADDRESS=127\.0\.0\.1:6379: run `ray stop`"):
        node_ip_for("127.0.0.1:6379", proc)


def test_addresses_that_are_not_host_and_port_are_refused() -> None:
    assert split_address("[::1]:6379") == ("::1", 6379)
    with pytest.raises(ClusterSetupError, match=r"Ray Client \(ray://\) is not supported"):
        split_address("ray://10.0.0.1:10001")
    with pytest.raises(ClusterSetupError, match="is not host:port"):
        split_address("10.0.0.1")


def test_a_head_that_does_not_answer(unused_tcp_port: int) -> None:
    with pytest.raises(PoolError, match=rf"the Ray head at 127\.0\.0\.1:{unused_tcp_port} \(RAY_ADDRESS\) does not "
                       r"answer \(Connection refused\)"):
        check_head_reachable(f"127.0.0.1:{unused_tcp_port}")
    with socket.socket() as head:
        head.bind(("127.0.0.1", 0))
        head.listen()
        check_head_reachable(f"127.0.0.1:{head.getsockname()[1]}")


def test_ray_refusing_the_token_is_named_with_the_fix() -> None:
    # As Ray 2.60 raises it: a plain ConnectionError, raised while handling the authentication error.
    try:
        try:
            raise RuntimeError("ray.exceptions.AuthenticationError: RPC error: InvalidAuthToken: Authentication token "
                               "is missing or incorrect.")
        except RuntimeError:
            raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379") from None
    except ConnectionError as exc:
        refused = init_failure("10.0.0.1:6379", exc)
    assert isinstance(refused, ClusterSetupError)
    assert str(refused).startswith("the Ray cluster at 10.0.0.1:6379 refused this machine's token: copy "
                                   "~/.ray/auth_token from the head")
    other = init_failure("10.0.0.1:6379", TimeoutError("GCS did not answer\nin time"))
    assert type(other) is PoolError and str(other).endswith(": GCS did not answer")

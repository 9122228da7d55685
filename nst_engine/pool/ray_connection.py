"""Connecting to Ray, or starting a private local Ray and stopping it again without leaving anything behind."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import sys
import tempfile
from typing import Literal

from nst_engine.errors import ClusterSetupError, PoolError
from nst_engine.pool.ray_attach import check_head_reachable, node_ip_for

log = logging.getLogger("nst_engine.pool.ray")

LOCAL_OBJECT_STORE_BYTES = 256 * 1024 * 1024  # jobs move a few MB of PNG each; Ray's default is 30% of the RAM


def use_process_token() -> None:
    """Token authentication for a local Ray, with a token that lives only in this process's environment.

    Ray's services listen on the machine's network address even when started by ``ray.init()``, so they must not be
    open. Left to itself Ray would write a token to ~/.ray/auth_token; one random token per process (inherited by the
    Ray processes it starts) protects the same and leaves nothing on disk. An operator's own RAY_AUTH_* settings win.
    Ray reads these settings when it is imported, so this runs only before that (else Ray's default applies).
    """
    if "RAY_AUTH_MODE" not in os.environ and "RAY_AUTH_TOKEN" not in os.environ:
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)


def prepare_driver_environment() -> None:
    """Ray settings for this process, before Ray is imported (an operator's own values win).

    Ray installs abseil's failure handler for SIGTERM too, in every driver: it prints a stack, passes the signal on,
    and aborts the process 3 s later, cutting short the bot's graceful shutdown (``bot.ops.shutdown``) with a core
    dump; the bot handles SIGTERM itself. And Ray's C++ side would log a warning a second while it retries something
    that fails (a wrong token: for 20 s); the bot says in one line what failed, so only Ray's errors are kept.
    """
    os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")


def init_failure(address: str, exc: BaseException) -> PoolError:
    """What ``ray.init`` failing to join the cluster at ``address`` means, in one line (Ray's reason is often in the
    error that led to the one it raises)."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    text = "\n".join(f"{type(e).__name__}: {e}" for e in chain)
    if "AuthenticationError" in text or "Authentication token" in text:
        return ClusterSetupError(
            f"the Ray cluster at {address} refused this machine's token: copy ~/.ray/auth_token from the head to "
            "this machine, and start the bot with RAY_AUTH_MODE=token in its environment (docs/scaling-out.md)"
        )
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    version = next((line for line in lines if "version mismatch" in line.lower()), None)
    if version is not None:
        return ClusterSetupError(f"could not join the Ray cluster at {address}: {version}")
    first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    return PoolError(f"could not connect to the Ray cluster at {address}: {first.strip()}")


class RayConnection:
    """This process's link to Ray (blocking calls: run them in a helper thread).

    With an ``address`` it connects to that cluster through this machine's own Ray node (``ray_attach``: a machine
    that has not joined is refused with the command that joins it) and later only disconnects; without one it starts a private local
    Ray (dashboard off, small object store, its own temporary folder, token authentication) and later stops it and
    removes the folder. A Ray this process is already connected to is used as it is and left alone.
    """

    def __init__(self, address: str | None, *, local_cpus: int | None = None, local_gpus: int | None = None) -> None:
        self.address = address
        self.local_cpus = local_cpus
        self.local_gpus = local_gpus
        self.owns: Literal["no", "connected", "local"] = "no"
        self.temp_dir: str | None = None

    def connect(self) -> None:
        if "ray" not in sys.modules:  # Ray reads these settings once, at import
            prepare_driver_environment()
            if not self.address:
                use_process_token()
        import ray

        if ray.is_initialized():
            self.owns = "no"
            log.info("using the Ray this process is already connected to")
            return
        if self.address:
            # Checked first: Ray itself would abort the process in C++ without a raylet of its own here.
            check_head_reachable(self.address)
            node_ip = node_ip_for(self.address)
            log.info("connecting to the Ray cluster at %s through this machine's node %s", self.address, node_ip)
            self.owns = "connected"
            try:
                ray.init(address=self.address, _node_ip_address=node_ip, logging_level=logging.WARNING)
            except Exception as exc:  # Ray's own refusals (versions, authentication) come as long texts
                raise init_failure(self.address, exc) from None
            return
        # A private temporary folder (Ray's default, /tmp/ray, is shared by every Ray of the machine's user), so
        # close() can remove all of it; the short prefix keeps Ray's socket paths under the 107-byte limit.
        self.temp_dir = tempfile.mkdtemp(prefix="nstray-")
        log.info("starting a local Ray (no RAY_ADDRESS given)")
        self.owns = "local"  # from here on: even a failed start may have left processes for disconnect() to stop
        ray.init(
            num_cpus=self.local_cpus,
            num_gpus=self.local_gpus,
            object_store_memory=LOCAL_OBJECT_STORE_BYTES,
            include_dashboard=False,
            logging_level=logging.WARNING,
            _temp_dir=self.temp_dir,
        )

    def disconnect(self) -> None:
        import ray

        if self.owns == "connected" or self.owns == "local":
            ray.shutdown()  # a local Ray's processes stop (also after a failed start); a cluster is disconnected from
        self.owns = "no"
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            self.temp_dir = None

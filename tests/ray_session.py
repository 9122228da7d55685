"""One local Ray for the whole test session (a ``ray.cluster_utils.Cluster``, so tests can add and remove nodes).

Small object store, no dashboard, a private temporary folder: the fixture starts it on first use and stops exactly
what it started (never ``ray stop``, which would hit every Ray of the machine's user).
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

HEAD_CPUS = 4  # logical CPUs: two 1-CPU slots for a backend under test, with room for one being replaced


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """The session's Ray cluster (head node only; tests add nodes and remove them again), connected to."""
    temp_dir = tempfile.mkdtemp(prefix="nstray-t-")
    # Ray's files (and its "current cluster" note) go to our folder, not to /tmp/ray; and token authentication with a
    # token that lives only in the environment, so Ray writes none to ~/.ray (it reads these when first imported).
    settings = {"RAY_TMPDIR": temp_dir}
    if "ray" not in sys.modules:
        settings |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    previous = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        pytest.fail("Ray was already initialised before the session's Ray fixture")
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": HEAD_CPUS,
            "num_gpus": 0,
            "object_store_memory": 80 * 1024 * 1024,
            "include_dashboard": False,
        },
    )
    try:
        ray.init(address=cluster.address, logging_level=logging.WARNING, log_to_driver=False)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(temp_dir, ignore_errors=True)

"""One local Ray for the whole test session (a ``ray.cluster_utils.Cluster``, so tests can add and remove nodes).

Small object store, no dashboard, a private temporary folder: the fixture starts it on first use and stops exactly
what it started (never ``ray stop``, which would hit every Ray of the machine's user).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

HEAD_CPUS = 4  # logical CPUs: two 1-CPU slots for a backend under test, with room for one being replaced


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """The session's Ray cluster (head node only; tests add nodes and remove them again), connected to."""
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        pytest.fail("Ray was already initialised before the session's Ray fixture")
    temp_dir = tempfile.mkdtemp(prefix="nstray-t-")
    previous = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = temp_dir  # Ray's files (and its "current cluster" note) go here, not to /tmp/ray
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
        ray.init(address=cluster.address, logging_level="WARNING", log_to_driver=False)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        if previous is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = previous
        shutil.rmtree(temp_dir, ignore_errors=True)

"""Running style jobs outside the event loop: the ``StyleBackend`` protocol and its process-pool implementation.

    async with ProcessPoolBackend.from_env() as pool:
        job = pool.submit(StyleRequest(content, [style], StyleOptions(preset="fast")))
        async for event in job.events():
            ...
        result = await job.result()

The environment variables the pool reads are listed in ``nst_engine.pool.backend``.
"""

from nst_engine.pool.backend import ProcessPoolBackend, WorkerInfo, describe_exit
from nst_engine.pool.job import PoolJob
from nst_engine.pool.protocol import JobHandle, JobState, StyleBackend, StyleRequest

__all__ = [
    "JobHandle",
    "JobState",
    "PoolJob",
    "ProcessPoolBackend",
    "StyleBackend",
    "StyleRequest",
    "WorkerInfo",
    "describe_exit",
]

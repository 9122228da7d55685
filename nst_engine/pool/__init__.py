"""Running style jobs outside the event loop: the ``StyleBackend`` protocol and its two implementations.

    async with backend_from_env() as pool:      # NST_BACKEND=process (default) or ray
        job = pool.submit(StyleRequest(content, [style], StyleOptions(preset="fast")))
        async for event in job.events():
            ...
        result = await job.result()

``ProcessPoolBackend`` runs worker processes on this machine; ``RayBackend`` runs Ray actors on this machine or on a
cluster of GPU machines. Both hand out the same ``PoolJob`` handles. Importing this package imports neither torch nor
ray: the workers and actors do. The environment variables are listed in ``nst_engine.pool.backend`` and
``nst_engine.pool.ray_backend``.
"""

from nst_engine.pool.backend import ProcessPoolBackend, describe_exit
from nst_engine.pool.factory import backend_from_env, backend_kind
from nst_engine.pool.job import PoolJob
from nst_engine.pool.protocol import JobHandle, JobState, StyleBackend, StyleRequest, WorkerInfo
from nst_engine.pool.ray_backend import RayBackend

__all__ = [
    "JobHandle",
    "JobState",
    "PoolJob",
    "ProcessPoolBackend",
    "RayBackend",
    "StyleBackend",
    "StyleRequest",
    "WorkerInfo",
    "backend_from_env",
    "backend_kind",
    "describe_exit",
]

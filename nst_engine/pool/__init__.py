"""Running style jobs outside the event loop: the ``StyleBackend`` protocol and its two implementations.

    async with backend_from_env() as pool:      # NST_BACKEND=process (default) or ray
        job = pool.submit(StyleRequest(content, [style], StyleOptions(preset="fast")))
        async for event in job.events():
            ...
        result = await job.result()

``ProcessPoolBackend`` runs worker processes on this machine; ``RayBackend`` runs Ray actors on this machine or on a
cluster of GPU machines; both are transports under one job lifecycle (``core.BackendCore``) and hand out the same
``PoolJob``. Importing this package imports neither torch nor ray: the workers and actors do. The settings (NST_*,
from the environment and ``.env``) are ``settings.PoolSettings``.

May import the engine (``nst_engine``); the bot imports the pool, never the other way round.
"""

from nst_engine.pool.factory import backend_from_env, backend_from_settings
from nst_engine.pool.job import PoolJob
from nst_engine.pool.process_backend import ProcessPoolBackend
from nst_engine.pool.protocol import JobHandle, JobState, StyleBackend, StyleRequest, WorkerInfo
from nst_engine.pool.ray_backend import RayBackend
from nst_engine.pool.settings import PoolSettings, load_pool_settings
from nst_engine.pool.worker_process import describe_exit

__all__ = [
    "JobHandle",
    "JobState",
    "PoolJob",
    "PoolSettings",
    "ProcessPoolBackend",
    "RayBackend",
    "StyleBackend",
    "StyleRequest",
    "WorkerInfo",
    "backend_from_env",
    "backend_from_settings",
    "describe_exit",
    "load_pool_settings",
]

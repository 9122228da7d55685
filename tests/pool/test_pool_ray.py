"""What is particular to the Ray backend: placement on GPUs, following machines that join and leave, a local Ray
started and stopped without leftovers, choosing the backend from the environment, and no torch on the bot's side.
(What every backend must do is in test_backend_contract.py.)"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from nst_engine.errors import ClusterSetupError, PoolClosedError, WeightsError, WorkerCrashedError
from nst_engine.pool import ProcessPoolBackend, RayBackend, backend_from_env
from nst_engine.pool.versions import running_versions
from tests.pool.helpers import LONG_JOB, SHARED_ENV, request, wait_running

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_pool_and_the_ray_backend_needs_neither_torch_nor_ray() -> None:
    """The bot's side of a Ray cluster needs no GPU stack: only the actors import torch (and ray loads on start).

    ``nst_engine/__init__`` re-exports the engine (torch) for library users, so the check loads the pool's modules
    under a bare ``nst_engine`` package: it holds the pool's own imports to the rule."""
    code = textwrap.dedent(
        f"""
        import sys, types
        package = types.ModuleType("nst_engine")
        package.__path__ = [{str(ROOT / "nst_engine")!r}]
        sys.modules["nst_engine"] = package
        import nst_engine.pool, nst_engine.pool.ray_backend, nst_engine.pool.ray_actor, nst_engine.pool.factory
        backend = nst_engine.pool.backend_from_env("ray", workers=2, device="cpu")
        print(type(backend).__name__, "torch" in sys.modules, "ray" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["RayBackend", "False", "False"]


def test_backend_from_env_chooses_and_configures_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NST_BACKEND", "NST_WORKERS", "NST_DEVICE", "RAY_ADDRESS", "NST_CPUS_PER_WORKER"):
        monkeypatch.delenv(name, raising=False)
    assert isinstance(backend_from_env(device="cpu"), ProcessPoolBackend)  # the default
    monkeypatch.setenv("NST_BACKEND", "Ray")
    monkeypatch.setenv("NST_WORKERS", "auto")
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    monkeypatch.setenv("NST_CPUS_PER_WORKER", "2")
    ray_backend = backend_from_env(job_timeout=30.0, max_queue=None)
    assert isinstance(ray_backend, RayBackend)
    assert ray_backend.fixed_workers is None and ray_backend.address == "10.0.0.5:6379"
    assert ray_backend.cpus_per_worker == 2.0 and ray_backend.job_timeout == 30.0 and ray_backend.max_queue == 32
    explicit = backend_from_env("ray", workers=3, ray_address="head:6379", cpus_per_worker=4.0)
    assert isinstance(explicit, RayBackend)
    assert (explicit.fixed_workers, explicit.address, explicit.cpus_per_worker) == (3, "head:6379", 4.0)
    process = backend_from_env("process", workers="auto", device="cpu", ray_address="ignored:1")
    assert isinstance(process, ProcessPoolBackend) and process.capacity == 1
    with pytest.raises(ValueError, match="NST_BACKEND must be one of process, ray, got 'dask'"):
        backend_from_env("dask")
    with pytest.raises(ValueError, match="not for a Ray cluster"):
        RayBackend(device="cuda:1")


@pytest.mark.parametrize("backend", [ProcessPoolBackend, RayBackend])
def test_both_backends_read_the_shared_settings_and_refuse_the_same_nonsense(
    backend: type[ProcessPoolBackend] | type[RayBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SHARED_ENV.items():
        monkeypatch.setenv(name, value)
    configured = backend.from_env(max_queue=1)  # an override wins over NST_MAX_QUEUE
    assert configured.weights == "random"
    assert (configured.job_timeout, configured.max_queue, configured.progress_interval) == (12.5, 1, 0.25)
    assert (configured.start_timeout, configured.stop_grace) == (30.0, 1.0)
    monkeypatch.setenv("NST_STOP_GRACE", "soon")
    with pytest.raises(ValueError, match="NST_STOP_GRACE must be a number of seconds, got 'soon'"):
        backend.from_env()
    for name in SHARED_ENV:
        monkeypatch.delenv(name)
    for bad, message in (
        ({"job_timeout": 0.0}, "job_timeout must be a positive number of seconds, got 0.0"),
        ({"start_timeout": float("nan")}, "start_timeout must be a positive number of seconds, got nan"),
        ({"stop_grace": -1.0}, "stop_grace must be >= 0 seconds, got -1.0"),
        ({"progress_interval": float("inf")}, "progress_interval must be >= 0 seconds, got inf"),
        ({"max_queue": -1}, "max_queue must be >= 0, got -1"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            backend(device="cpu", **bad)  # type: ignore[arg-type]


async def test_one_actor_per_gpu_and_slots_follow_machines_joining_and_leaving(
    ray_cluster: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Fake GPUs: a 2-GPU machine, then a 1-GPU machine joins, then leaves in the middle of a job."""
    caplog.set_level(logging.INFO, logger="nst_engine.pool.ray")
    small = 80 * 1024 * 1024
    gpu_machine = ray_cluster.add_node(num_cpus=2, num_gpus=2, object_store_memory=small)
    backend = RayBackend(workers="auto", device="auto", weights="random", rescan=1.0, progress_interval=0.1)
    extra = None
    try:
        await backend.start()
        await backend.wait_slots(2, timeout=120)
        assert backend.gpu_slots
        placed = backend.placements
        assert sorted(p.gpu_ids for p in placed) == [("0",), ("1",)]  # one actor per GPU, each its own
        assert {p.node_id for p in placed} == {gpu_machine.node_id}
        assert all(p.device == "cpu" for p in placed)  # fake GPUs: CUDA is not usable, the actor says so and runs

        extra = ray_cluster.add_node(num_cpus=1, num_gpus=1, object_store_memory=small)
        joined = time.monotonic()
        await backend.wait_slots(3, timeout=60)
        assert time.monotonic() - joined < 60
        assert "the Ray cluster now has 3 GPU(s) (was 2): style actor slots 2 -> 3" in caplog.text
        assert extra.node_id in {p.node_id for p in backend.placements}

        jobs = [backend.submit(request(LONG_JOB)) for _ in range(3)]
        await asyncio.gather(*(wait_running(j, step=0) for j in jobs))
        [lost] = [j for j in jobs if j.worker is not None and f"node {extra.node_id[:8]}" in j.worker]
        await asyncio.to_thread(ray_cluster.remove_node, extra)
        left = time.monotonic()
        with pytest.raises(WorkerCrashedError, match="its machine left the cluster or died") as crashed:
            await asyncio.wait_for(lost.result(), 60)
        assert extra.node_id[:8] in str(crashed.value)
        await backend.wait_slots(2, timeout=60)
        assert time.monotonic() - left < 60
        assert "the Ray cluster now has 2 GPU(s) (was 3)" in caplog.text
        others = [j for j in jobs if j is not lost]
        assert all(j.state == "running" for j in others)  # the other machine's jobs went on
    finally:
        await backend.close()
        if extra is not None and extra in ray_cluster.worker_nodes:
            ray_cluster.remove_node(extra)
        ray_cluster.remove_node(gpu_machine)


LOCAL_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, os, sys, time
    sys.path.insert(0, {root!r})
    from nst_engine.pool import RayBackend
    from tests.pool.helpers import process_gone, request

    def descendants(root):
        children = {{}}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = open(f"/proc/{{entry}}/stat").read()
                except OSError:
                    continue
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
        found, todo = [], [root]
        while todo:
            for child in children.get(todo.pop(), []):
                found.append(child)
                todo.append(child)
        return found

    async def main():
        backend = RayBackend(workers=1, device="cpu", weights="random", local_cpus=1)
        await backend.start()
        result = await backend.submit(request(2)).result()
        ray_pids, temp_dir = descendants(os.getpid()), backend.temp_dir
        await backend.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all(process_gone(p) for p in ray_pids):
            time.sleep(0.1)
        print(json.dumps({{
            "size": list(result.image.size), "ray_pids": len(ray_pids), "temp_dir": temp_dir,
            "left": [p for p in ray_pids if not process_gone(p)], "temp_left": os.path.exists(temp_dir),
        }}))

    asyncio.run(main())
    """
)


def test_a_local_ray_is_started_and_close_leaves_no_process_and_no_files(tmp_path: Path) -> None:
    script = tmp_path / "local_ray.py"
    script.write_text(LOCAL_SCRIPT.format(root=str(ROOT)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    home = tmp_path / "home"  # Ray writes its token to ~/.ray unless told otherwise: nothing may land here
    home.mkdir()
    env["HOME"] = str(home)
    shared_ray_dir = Path("/tmp/ray")
    before = sorted(shared_ray_dir.rglob("*")) if shared_ray_dir.exists() else None
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=240, cwd=tmp_path, env=env
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["size"] == [48, 40]
    assert report["ray_pids"] >= 3  # Ray's own processes and the actor really ran under this script
    assert report["left"] == [] and report["temp_left"] is False  # close() itself cleaned up
    assert not Path(report["temp_dir"]).exists()
    after = sorted(shared_ray_dir.rglob("*")) if shared_ray_dir.exists() else None
    assert after == before  # nothing written to Ray's shared /tmp/ray
    assert list(home.iterdir()) == []


async def test_weights_that_do_not_load_make_start_fail_clearly(ray_cluster: Any, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-weights.pth"
    backend = RayBackend(workers=1, device="cpu", weights=str(missing), start_timeout=120)
    with pytest.raises(WeightsError) as caught:
        await backend.start()
    message = str(caught.value)
    assert re.match(r"actor 0 \(pid \d+ on .*node [0-9a-f]{8}\)\) could not load the VGG19 weights: ", message)
    assert str(missing) in message and "does not exist" in message
    assert backend.workers == []  # the actor was removed
    with pytest.raises(PoolClosedError):
        backend.submit(request(2))


async def test_an_actor_of_another_version_is_refused(ray_cluster: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # The actor reports its own versions (another process); this bot pretends to be another release.
    ours = running_versions()
    theirs = dataclasses.replace(ours, project="0.0.1")
    monkeypatch.setattr("nst_engine.pool.ray_backend.running_versions", lambda: theirs)
    backend = RayBackend(workers=1, device="cpu", weights="random", start_timeout=60)
    with pytest.raises(ClusterSetupError) as caught:
        await backend.start()
    assert str(caught.value).startswith("the style actor on ")
    assert f" runs nst-discord-bot {ours.project} (engine code {ours.code}), Ray {ours.ray}, " in str(caught.value)
    assert f"but this bot runs nst-discord-bot 0.0.1 (engine code {ours.code}), Ray {ours.ray}" in str(caught.value)
    assert [w.state for w in backend.workers] == ["broken"]  # refused before it loaded anything; start closed it

"""Starting and stopping the process pool: failed starts, shutdown with work in flight, killed stuck workers, and
workers outliving a dead parent. Each test owns its pool, since each ends it."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nst_engine.errors import PoolClosedError, WeightsError
from nst_engine.pool import ProcessPoolBackend
from tests.pool.helpers import process_gone, request

ROOT = Path(__file__).resolve().parents[2]


def our_children(pids: set[int]) -> list[multiprocessing.process.BaseProcess]:
    return [p for p in multiprocessing.active_children() if p.pid in pids]


async def test_bad_weights_path_makes_start_fail_clearly(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-weights.pth"
    pool = ProcessPoolBackend(workers=1, device="cpu", weights=str(missing), start_timeout=60)
    with pytest.raises(WeightsError) as caught:
        await pool.start()
    message = str(caught.value)
    assert "worker 0 (cpu) could not load the VGG19 weights" in message
    assert str(missing) in message and "does not exist" in message
    pids = {w.pid for w in pool.workers if w.pid is not None}
    assert pids and all(process_gone(pid) for pid in pids)
    assert our_children(pids) == []
    with pytest.raises(PoolClosedError):
        pool.submit(request(2))


PARENT_SCRIPT = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    sys.path.insert(0, {root!r})
    from nst_engine.pool import ProcessPoolBackend

    async def main():
        pool = ProcessPoolBackend(workers=1, device="cpu", weights="random", threads_per_worker=1)
        await pool.start()
        print(pool.workers[0].pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # die without closing anything

    if __name__ == "__main__":
        asyncio.run(main())
    """
)


def test_workers_exit_when_their_parent_dies(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(PARENT_SCRIPT.format(root=str(ROOT)))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == -9, proc.stderr
    worker_pid = int(proc.stdout.split()[0])
    deadline = time.monotonic() + 10
    while not process_gone(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert process_gone(worker_pid), f"worker {worker_pid} outlived its parent"

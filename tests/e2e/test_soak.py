"""The short soak run (``python -m benchmarks.soak --short``) inside ``make test``: every check must pass.

It runs the real bot as a process against the fake Discord with the real worker pool; on a quiet 2-core machine it
takes about 90 s (the bound below is generous, for a machine shared with other work).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.soak import HOSTILE, PRESETS, SHORT, make_plan

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.soak, pytest.mark.e2e]


def test_the_plan_covers_every_kind_of_request():
    plan = make_plan(SHORT, seed=13)
    specs = plan.specs
    assert {s.hostile for s in specs} >= set(HOSTILE)
    assert {s.preset for s in specs} >= set(PRESETS)
    assert {s.via for s in specs} == {"prefix", "slash"}
    assert {s.styles for s in specs} == {1, 2, 3}
    assert any(s.cancel for s in specs) and any(s.rerun for s in specs) and any(s.burst for s in specs)
    assert sum(s.expire_token for s in specs) == 1 and sum(s.over_upload_limit for s in specs) == 1
    assert len(plan.kills_after) == 2 and 0 < plan.storm_after < len(specs)
    assert make_plan(SHORT, seed=13) == plan  # seeded: the same plan every time


@pytest.mark.timeout(540)  # the run's own limit (480 s) and time to read its report
def test_short_soak_run(tmp_path):
    out = tmp_path / "soak.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.soak", "--short", "--json", str(out)], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=480,
    )
    report = proc.stdout[-6000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, report
    figures = json.loads(out.read_text())
    assert figures["lost"] == 0 and figures["answered_twice"] == 0 and figures["tracebacks_to_users"] == 0, report
    events = figures["events"]
    assert events["worker_kills"] == 2 and events["storms"] == 1 and events["expired_tokens"] == 1, report
    assert events["upload_over_limit"] == 1 and events["cancel_clicks"] >= 1, report
    assert set(figures["hostile"]) == set(HOSTILE), report
    assert figures["restart"]["downloading_at_stop_answered"], report
    assert figures["outcomes"].get("result", 0) >= 5, report
    assert max(figures["memory_growth_mb"].values()) < 50, report
    assert figures["fairness_max_jobs_ahead_from_one_user"] <= 1, report

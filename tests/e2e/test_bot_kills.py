"""The bot killed with SIGKILL at seeded points of a request's life and of the drain (``benchmarks/kill_points.py``,
short form): after each restart on the same database, every request has exactly one true answer on the fake Discord.
The long form is a phase of ``make soak``."""

from __future__ import annotations

import pytest

from benchmarks.kill_points import POINTS, SHORT_POINTS, make_rounds, run_kills

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("kills")]
SEED = 21


def test_the_rounds_cover_every_point_and_are_seeded():
    rounds = make_rounds(POINTS, 2 * len(POINTS), seed=SEED)
    assert {r.point for r in rounds[:len(POINTS)]} == set(POINTS)  # each point once before any twice
    assert any(r.notices for r in rounds) and any(v == "slash" for r in rounds for v in r.vias)
    assert make_rounds(POINTS, 2 * len(POINTS), seed=SEED) == rounds
    assert make_rounds(POINTS, 2 * len(POINTS), seed=SEED + 1) != rounds
    short = make_rounds(SHORT_POINTS, len(SHORT_POINTS), seed=SEED, notice_share=0.34)
    assert {r.point for r in short} == set(SHORT_POINTS) and any(r.notices for r in short)


@pytest.mark.timeout(280)
async def test_every_request_has_one_true_answer_whenever_the_bot_is_killed(tmp_path):
    rounds = make_rounds(SHORT_POINTS, len(SHORT_POINTS), seed=SEED, notice_share=0.34)
    figures = await run_kills(rounds, tmp_path, log=lambda line: None)
    report = "\n".join([str({k: v for k, v in figures.items() if k != "transcript"}), *figures["transcript"]])
    assert figures["problems"] == [], report
    assert figures["missed"] == [] and figures["final_exit"] == 0, report
    hit = {point.split(" (")[0] for point in figures["kill_points"]}
    assert hit >= set(SHORT_POINTS) | {"restart-notices"}, report
    answers = figures["answers"]
    assert answers.get("result", 0) >= 2 and answers.get("lost", 0) >= 6, report  # both kinds of answer were checked
    assert sum(answers.values()) == figures["requests"] == 3 * len(rounds), report

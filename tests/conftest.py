"""Fixtures shared by the whole suite: sample images and the real VGG19 weights beside the checkout.

Tests that need ``../shared`` never pass quietly without it: locally they are skipped and the terminal summary
says so in a red banner, with the reason; in CI (``CI=true``) they fail, because CI must run them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.ray_session import ray_cluster

__all__ = ["ray_cluster"]  # the session's Ray, for the tests that use it (tests/ray_session.py)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REAL_WEIGHTS = SHARED / "weights" / "vgg19_features_fp16.pth"
SAMPLE_IMAGES = SHARED / "images"

#: every skip for a missing ../shared starts with this, so the summary hook can find them
SHARED_MISSING = "NEEDS ../shared:"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def shared_missing(what: str) -> None:
    """Skip (locally) or fail (in CI) a test whose ``../shared`` input is absent."""
    message = f"{SHARED_MISSING} {what}"
    if in_ci():
        pytest.fail(f"{message}; CI=true, so the real-weight tests must run: provide ../shared", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def real_weights_path() -> Path:
    """Path of the real (Caffe-origin) VGG19 weights; skipped (failed in CI), saying why, when they are absent."""
    if not REAL_WEIGHTS.is_file():
        shared_missing(f"real VGG19 weights not found at {REAL_WEIGHTS} (see ../shared/weights/README.md)")
    return REAL_WEIGHTS


@pytest.fixture(scope="session")
def sample_images() -> Path:
    """Folder with content/ and style/ sample pictures; skipped (failed in CI), saying why, when absent."""
    if not (SAMPLE_IMAGES / "content").is_dir() or not (SAMPLE_IMAGES / "style").is_dir():
        shared_missing(f"sample images not found at {SAMPLE_IMAGES} (content/ and style/)")
    return SAMPLE_IMAGES


def _uses_ray(item: pytest.Item) -> bool:
    """The session's Ray as a fixture, or a backend parametrised as "ray" (which asks for that fixture itself)."""
    callspec = getattr(item, "callspec", None)
    return "ray_cluster" in getattr(item, "fixturenames", ()) or (
        callspec is not None and "ray" in list(callspec.params.values())
    )


def _shares_a_module_fixture(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    definitions = info.name2fixturedefs.values() if info is not None else ()
    return any(d.scope in ("module", "package") for defs in definitions for d in defs)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which turns the marks into groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Groups for pytest-xdist's ``--dist loadgroup``: every test that uses the session's Ray runs on one worker, so
    the machine holds one local Ray (tests/ray_session.py), never one per worker; the tests of a module that share a
    module-wide set-up (a worker pool, a model) stay together, so that set-up is made once. The Ray tests come first:
    together they are the longest group, and started first they run beside everything else instead of after it."""
    for item in items:
        if _uses_ray(item):
            item.add_marker(pytest.mark.xdist_group("ray"))
        elif _shares_a_module_fixture(item):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))
    # stable: the rest keep their order; the cluster test (tests/cluster/, minutes, its own group) starts early too
    items.sort(key=lambda item: not (_uses_ray(item) or item.get_closest_marker("cluster") is not None))


def _skip_reason(report: Any) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple | list) and len(longrepr) == 3:  # a list once it has crossed from an xdist worker
        return str(longrepr[2])
    return str(longrepr)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """A loud banner when tests that need ../shared (real weights, sample images) did not run, and why."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if SHARED_MISSING in _skip_reason(r)]
    if not skipped:
        return
    reasons = sorted({_skip_reason(r).split(SHARED_MISSING, 1)[1].strip() for r in skipped})
    terminalreporter.write_sep("=", f"{len(skipped)} REAL-WEIGHT/SAMPLE TESTS DID NOT RUN", red=True, bold=True)
    for reason in reasons:
        terminalreporter.write_line(f"  skipped because: {reason}", red=True)
    terminalreporter.write_line("  These tests check real pictures with the real VGG19 weights; in CI (CI=true) "
                                "they fail instead of skipping.", red=True)
    for report in skipped:
        terminalreporter.write_line(f"    {report.nodeid}")

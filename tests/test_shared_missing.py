"""Without ../shared, real-weight tests are skipped loudly (a red banner in the summary) and fail in CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

CONFTEST = """
from pathlib import Path

import tests.conftest as suite

suite.REAL_WEIGHTS = Path("/nonexistent/shared/weights/vgg19_features_fp16.pth")
suite.SAMPLE_IMAGES = Path("/nonexistent/shared/images")
from tests.conftest import pytest_terminal_summary, real_weights_path, sample_images  # noqa: E402,F401
"""

TESTS = """
def test_uses_weights(real_weights_path):
    pass


def test_uses_images(sample_images):
    pass


def test_plain():
    pass
"""


def run_pytest(tmp_path: Path, *, ci: bool, workers: int = 0) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_needs_shared.py").write_text(TESTS)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("CI", None)
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path),
         *(["-n", str(workers)] if workers else [])],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False,
    )


@pytest.mark.parametrize("workers", [0, 2], ids=["in-process", "xdist"])
def test_missing_shared_is_a_loud_skip_locally(tmp_path: Path, workers: int) -> None:
    result = run_pytest(tmp_path, ci=False, workers=workers)
    out = result.stdout
    assert result.returncode == 0, out
    assert "1 passed, 2 skipped" in out
    assert "2 REAL-WEIGHT/SAMPLE TESTS DID NOT RUN" in out
    assert "skipped because: real VGG19 weights not found at /nonexistent/shared/weights" in out
    assert "skipped because: sample images not found at /nonexistent/shared/images" in out
    assert "test_needs_shared.py::test_uses_weights" in out


@pytest.mark.parametrize("workers", [0, 2], ids=["in-process", "xdist"])
def test_missing_shared_fails_in_ci(tmp_path: Path, workers: int) -> None:
    result = run_pytest(tmp_path, ci=True, workers=workers)
    out = result.stdout
    assert result.returncode == 1, out
    assert "2 errors" in out and "CI=true, so the real-weight tests must run" in out

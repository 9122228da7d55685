"""Fixtures shared by the whole suite: sample images and the real VGG19 weights beside the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ray_session import ray_cluster

__all__ = ["ray_cluster"]  # the session's Ray, for the tests that use it (tests/ray_session.py)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REAL_WEIGHTS = SHARED / "weights" / "vgg19_features_fp16.pth"
SAMPLE_IMAGES = SHARED / "images"


@pytest.fixture(scope="session")
def real_weights_path() -> Path:
    """Path of the real (Caffe-origin) VGG19 weights; the test is skipped, saying why, when they are absent."""
    if not REAL_WEIGHTS.is_file():
        pytest.skip(f"real VGG19 weights not found at {REAL_WEIGHTS} (see ../shared/weights/README.md)")
    return REAL_WEIGHTS


@pytest.fixture(scope="session")
def sample_images() -> Path:
    """Folder with content/ and style/ sample pictures; skipped, saying why, when absent."""
    if not (SAMPLE_IMAGES / "content").is_dir():
        pytest.skip(f"sample images not found at {SAMPLE_IMAGES}")
    return SAMPLE_IMAGES

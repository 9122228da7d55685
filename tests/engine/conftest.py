"""The engine's tests share one VGG19 with random weights per module (building it takes a moment)."""

from __future__ import annotations

from typing import Any

import pytest

from nst_engine import load_vgg


@pytest.fixture(scope="module")
def model() -> Any:
    """VGG19 features with random weights on the CPU: the real network's shapes, no download."""
    return load_vgg("random", "cpu")

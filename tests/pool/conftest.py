"""The pool's tests: the engine's random-weight model for the worker's own code (tests/engine/conftest.py); tiny
images and requests in tests/pool/helpers.py."""

from __future__ import annotations

from tests.engine.conftest import model

__all__ = ["model"]  # fixtures

"""What a process runs, so the bot and its Ray actors on other machines can refuse to work together across versions.

The project's version alone would let two checkouts of one release with different code meet (the bot and its actors
exchange pickled wire messages), so a digest of the ``nst_engine`` sources goes with it; Ray's version too. No torch.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import platform
from dataclasses import dataclass
from pathlib import Path

DISTRIBUTION = "nst-discord-bot"
ENGINE_ROOT = Path(__file__).resolve().parents[1]  # nst_engine/


@dataclass(frozen=True)
class Versions:
    """The project's version, a digest of its engine code, and the Ray and Python versions."""

    project: str
    code: str
    ray: str
    python: str

    def __str__(self) -> str:
        return f"{DISTRIBUTION} {self.project} (engine code {self.code}), Ray {self.ray}, Python {self.python}"


def _installed(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


@functools.cache
def code_digest(root: Path = ENGINE_ROOT) -> str:
    """The first 12 hex digits of a SHA-256 over the engine's Python files, in path order."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def running_versions() -> Versions:
    """The versions of this process."""
    return Versions(_installed(DISTRIBUTION), code_digest(), _installed("ray"), platform.python_version())


def mismatch(where: str, theirs: Versions, ours: Versions) -> str | None:
    """One line naming both sides' versions when they differ, else None."""
    if theirs == ours:
        return None
    return (
        f"the style actor on {where} runs {theirs}, but this bot runs {ours}: install the same version of the project "
        "and of Ray on every machine of the cluster"
    )

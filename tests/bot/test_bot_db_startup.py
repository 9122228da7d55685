"""The database as an operator gets it wrong: one clear line naming the path and the fix, exit 2, before login.

Each case runs the real entry point (``python -m bot``) in a subprocess. Root ignores file modes, so when the
tests run as root the permission cases run the bot without the capabilities that let it (``setpriv``).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.storage.db import preflight

ROOT = Path(__file__).resolve().parents[2]
DROP_DAC = "-dac_override,-dac_read_search"


@pytest.fixture
def place() -> Iterator[Path]:
    """A scratch folder every user can enter (pytest's tmp_path is private to root)."""
    base = Path(tempfile.mkdtemp(prefix="nst-db-"))
    base.chmod(0o777)
    try:
        yield base
    finally:
        subprocess.run(["chattr", "-R", "-i", str(base)], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)


def run_bot(db_path: Path, cwd: Path, *, unprivileged: bool = False) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
        "DISCORD_TOKEN": "not-a-real-token",  # Discord is unreachable: a login attempt would not end like this
        "DATABASE_PATH": str(db_path),
        "HOME": str(cwd),
    }
    command = [sys.executable, "-m", "bot"]
    if unprivileged and os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv (util-linux): file modes cannot be made to apply")
        command = [setpriv, f"--bounding-set={DROP_DAC}", f"--inh-caps={DROP_DAC}", *command]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def assert_one_clear_line(proc: subprocess.CompletedProcess[str], path: Path, *phrases: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    line = lines[0]
    assert str(path) in line, line
    for phrase in phrases:
        assert phrase in line, line
    return line


def test_read_only_parent_folder(place):
    folder = place / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    path = folder / "bot.sqlite3"
    assert_one_clear_line(run_bot(path, place, unprivileged=True), path, "not writable", "DATABASE_PATH")
    assert not path.exists()


def test_missing_parent_folder_that_cannot_be_created(place):
    locked = place / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    path = locked / "data" / "bot.sqlite3"
    assert_one_clear_line(run_bot(path, place, unprivileged=True), path, "Cannot create the folder", str(path.parent))


def test_missing_parent_folder_is_created(place):
    path = place / "a" / "b" / "bot.sqlite3"
    assert preflight(path) is None
    assert path.is_file()


def test_parent_is_a_file(place):
    (place / "data").write_text("not a folder")
    path = place / "data" / "bot.sqlite3"
    assert_one_clear_line(run_bot(path, place), path, "is a file, not a folder", str(place / "data"))


def test_path_is_a_folder(place):
    path = place / "bot.sqlite3"
    path.mkdir()
    assert_one_clear_line(run_bot(path, place), path, "is a folder, not a file")


def test_garbage_file(place):
    path = place / "bot.sqlite3"
    path.write_bytes(b"this is not SQLite at all\n" * 200)
    before = path.read_bytes()
    assert_one_clear_line(run_bot(path, place), path, "not a usable SQLite database", "Move it away")
    assert path.read_bytes() == before  # never overwritten


def test_database_from_a_newer_version(place):
    path = place / "bot.sqlite3"
    con = sqlite3.connect(path)
    con.executescript("CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (99);")
    con.close()
    assert_one_clear_line(run_bot(path, place), path, "schema version 99", "Upgrade the bot")


def test_read_only_file(place):
    path = place / "bot.sqlite3"
    assert preflight(path) is None
    for p in place.iterdir():
        p.chmod(0o444)
    assert_one_clear_line(run_bot(path, place, unprivileged=True), path, "cannot be read and written")


def test_immutable_file(place):
    path = place / "bot.sqlite3"
    assert preflight(path) is None
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"chattr +i is not permitted here ({made.stderr.strip()}); the read-only case covers the code")
    line = assert_one_clear_line(run_bot(path, place), path)
    assert "chattr -i" in line


def test_write_probe_catches_what_the_path_checks_miss(place, monkeypatch):
    """SQLite quietly opens a file it may not write read-only; the write probe at open still refuses it."""
    path = place / "bot.sqlite3"
    assert preflight(path) is None
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"chattr +i is not permitted here ({made.stderr.strip()})")
    monkeypatch.setattr("bot.storage.db.check_path", lambda _path: None)
    problem = preflight(path)
    assert problem is not None and str(path) in problem and "read-only" in problem, problem


def test_a_good_database_passes_and_is_migrated(place):
    path = place / "bot.sqlite3"
    assert preflight(path) is None
    con = sqlite3.connect(path)
    assert con.execute("SELECT version FROM schema_version").fetchone()[0] >= 2
    con.close()

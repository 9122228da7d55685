import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_and_secret(monkeypatch):
    monkeypatch.setenv("DISCORD_TOKEN", "abc.def")
    s = Settings(_env_file=None)
    assert s.bot_prefix == "!"
    assert s.progress_edit_interval == 2.5
    assert s.database_path == Path("data/bot.sqlite3")
    assert "abc.def" not in repr(s)
    assert s.discord_token is not None and s.discord_token.get_secret_value() == "abc.def"


def test_bad_values_are_refused(monkeypatch):
    monkeypatch.setenv("ALLOWED_PRESETS", "fast,turbo")
    with pytest.raises(ValidationError, match="turbo"):
        Settings(_env_file=None)


def test_env_example_lists_every_setting_and_loads(tmp_path):
    example = (ROOT / ".env.example").read_text()
    names = {line.split("=", 1)[0] for line in example.splitlines() if line and not line.startswith("#")}
    assert names == {name.upper() for name in Settings.model_fields}
    (tmp_path / ".env").write_text(example)
    env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    code = "from bot.config import Settings; s = Settings(); print(s.max_file_mb, s.discord_token)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["8.0", "None"]


def _run_main(tmp_path, extra_env):
    env = {k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"}
    env.update(extra_env, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "bot"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )


def test_main_without_token_exits_2_with_one_sentence(tmp_path):
    out = _run_main(tmp_path, {})
    assert out.returncode == 2
    assert "copy .env.example to .env and set DISCORD_TOKEN" in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_main_with_invalid_setting_exits_2(tmp_path):
    out = _run_main(tmp_path, {"DISCORD_TOKEN": "x", "MAX_QUEUE": "zero"})
    assert out.returncode == 2
    assert "MAX_QUEUE" in out.stderr and "Traceback" not in out.stderr


def test_dotenv_pool_settings_reach_the_backend(monkeypatch, tmp_path):
    from nst_engine.pool import ProcessPoolBackend, backend_from_settings

    for name in ("NST_START_TIMEOUT", "NST_STOP_GRACE", "NST_BACKEND", "NST_DEVICE", "NST_MAX_QUEUE", "NST_WORKERS"):
        monkeypatch.delenv(name, raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text("NST_START_TIMEOUT=42\nNST_STOP_GRACE=3\nNST_DEVICE=cpu\n")
    backend = backend_from_settings(Settings(_env_file=env_file))
    assert isinstance(backend, ProcessPoolBackend)
    assert (backend.start_timeout, backend.stop_grace, backend.max_queue) == (42.0, 3.0, 16)  # the bot's queue default
    env_file.write_text("NST_STOP_GRACE=soon\n")
    with pytest.raises(ValidationError, match="NST_STOP_GRACE must be a number of seconds, got 'soon'"):
        Settings(_env_file=env_file)

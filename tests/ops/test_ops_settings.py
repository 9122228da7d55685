"""The operations settings: METRICS_ADDRESS (empty = off), SHUTDOWN_GRACE, SHARD_COUNT, LOG_FORMAT."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.config import Settings


def test_defaults():
    s = Settings(_env_file=None)
    assert (s.metrics_address, s.shutdown_grace, s.shard_count, s.log_format) == ("127.0.0.1:9108", 60.0, None, "text")


def test_empty_metrics_address_turns_the_server_off_from_env_and_dotenv(monkeypatch, tmp_path):
    monkeypatch.setenv("METRICS_ADDRESS", "")
    assert Settings(_env_file=None).metrics_address == ""
    monkeypatch.delenv("METRICS_ADDRESS")
    env_file = tmp_path / ".env"
    env_file.write_text("METRICS_ADDRESS=\nSHARD_COUNT=\nMAX_FILE_MB=\n")
    s = Settings(_env_file=env_file)
    assert s.metrics_address == "" and s.shard_count is None and s.max_file_mb == 8.0  # others: empty = default
    env_file.write_text("METRICS_ADDRESS=0.0.0.0:9200\n")
    assert Settings(_env_file=env_file).metrics_address == "0.0.0.0:9200"
    monkeypatch.setenv("METRICS_ADDRESS", "off")
    assert Settings(_env_file=None).metrics_address == ""


@pytest.mark.parametrize("value", ["9108", "localhost", "host:port", "host:70000"])
def test_bad_metrics_address(monkeypatch, value):
    monkeypatch.setenv("METRICS_ADDRESS", value)
    with pytest.raises(ValidationError, match="METRICS_ADDRESS must be host:port"):
        Settings(_env_file=None)


def test_shards_and_log_format(monkeypatch):
    monkeypatch.setenv("SHARD_COUNT", "AUTO")
    monkeypatch.setenv("LOG_FORMAT", "JSON")
    s = Settings(_env_file=None)
    assert s.shard_count == "auto" and s.log_format == "json"
    monkeypatch.setenv("SHARD_COUNT", "4")
    assert Settings(_env_file=None).shard_count == 4
    for bad in ("0", "many"):
        monkeypatch.setenv("SHARD_COUNT", bad)
        with pytest.raises(ValidationError):
            Settings(_env_file=None)
    monkeypatch.setenv("SHARD_COUNT", "2")
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(ValidationError):
        Settings(_env_file=None)

"""``nst-bot doctor``: one line per check with a fix, non-zero exit on any failure."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web

from bot.config import Settings
from bot.ops.doctor import Check, check_token, run_checks
from tests.fakediscord import serving_fake

ROOT = Path(__file__).resolve().parents[2]
APP_ID = 123456789012345678
TOKEN = base64.urlsafe_b64encode(str(APP_ID).encode()).decode().rstrip("=") + ".GaBcDe." + "x" * 38


def settings(tmp_path: Path, **values: object) -> Settings:
    base: dict[str, object] = {"discord_token": TOKEN, "database_path": tmp_path / "db" / "bot.sqlite3",
                               "nst_weights": "random", "nst_device": "cpu"}
    base.update(values)
    return Settings(_env_file=None, **base)  # type: ignore[arg-type]


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_all_checks_pass_against_the_fake_discord(tmp_path):
    async with serving_fake() as fake:
        checks, app_id = await run_checks(settings_factory=lambda: settings(tmp_path), api_base=fake.api_base)
    assert [c.name for c in checks] == ["settings", "token", "weights", "database", "discord", "intents"]
    assert all(c.ok for c in checks), [c.line() for c in checks]
    found = by_name(checks)
    assert "random loaded and ran on cpu" in found["weights"].detail
    assert "created, schema version" in found["database"].detail
    assert f"logged in as StyleBot (id {fake.bot_user.id})" in found["discord"].detail
    assert app_id == fake.application_id
    assert any(r.path == "/users/@me" and r.status == 200 for r in fake.requests)


async def test_unreachable_api_refused_token_and_missing_intent(tmp_path):
    port = closed_port()
    checks, _ = await run_checks(settings_factory=lambda: settings(tmp_path), weights=False,
                                 api_base=f"http://127.0.0.1:{port}/api/v10")
    discord = by_name(checks)["discord"]
    assert not discord.ok and f"cannot reach 127.0.0.1:{port}" in discord.detail
    assert "check the network, DNS and any proxy" in discord.line()

    async with serving_fake() as fake:
        fake.config.token = "another-token"
        checks, _ = await run_checks(settings_factory=lambda: settings(tmp_path), weights=False,
                                     api_base=fake.api_base)
        assert "refused DISCORD_TOKEN (401 Unauthorized)" in by_name(checks)["discord"].detail
        fake.config.token = None
        fake.config.app_flags = 0
        # Without the intent the bot still starts (only `!style` needs it): a warning, not a failure...
        checks, _ = await run_checks(settings_factory=lambda: settings(tmp_path), weights=False,
                                     api_base=fake.api_base)
        intents = by_name(checks)["intents"]
        assert by_name(checks)["discord"].ok and intents.ok and intents.warning
        assert intents.line().startswith("[warn] intents: the Message Content intent is off: the bot starts without")
        assert "enable Message Content to use !style" in intents.line()
        # ...unless the host requires it, when the bot would not start.
        checks, _ = await run_checks(settings_factory=lambda: settings(tmp_path, message_content_intent="on"),
                                     weights=False, api_base=fake.api_base)
        assert not by_name(checks)["intents"].ok and "[FAIL] intents" in by_name(checks)["intents"].line()
    assert by_name(checks)["database"].ok and "writable" in by_name(checks)["database"].detail


async def test_discord_down(tmp_path, unused_tcp_port):
    async def down(request: web.Request) -> web.Response:
        return web.json_response({"message": "upstream", "code": 0}, status=503)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", down)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", unused_tcp_port)
    await site.start()
    try:
        checks, _ = await run_checks(settings_factory=lambda: settings(tmp_path), weights=False,
                                     api_base=f"http://127.0.0.1:{unused_tcp_port}/api/v10")
    finally:
        await runner.cleanup()
    assert "answered HTTP 503: Discord is having problems" in by_name(checks)["discord"].detail


async def test_bad_weights_and_unwritable_database(tmp_path):
    (tmp_path / "afile").write_text("not a directory")
    missing = tmp_path / "nowhere" / "vgg.pth"
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00not a torch file" * 10)
    for weights, expected in ((missing, "does not exist"), (garbage, "could not read weights file")):
        bad = settings(tmp_path, nst_weights=str(weights), database_path=tmp_path / "afile" / "bot.sqlite3")
        checks, _ = await run_checks(
            settings_factory=lambda bad=bad: bad,
            api_base=f"http://127.0.0.1:{closed_port()}/api/v10",
        )
        found = by_name(checks)
        assert not found["weights"].ok and expected in found["weights"].detail and str(weights) in found["weights"].detail
        assert "set NST_WEIGHTS to imagenet or to the path" in found["weights"].line()
        assert not found["database"].ok and "afile" in found["database"].detail
        assert "set DATABASE_PATH to a file in a directory the bot can write to" in found["database"].line()
    # A directory where the database file should be.
    (tmp_path / "adir").mkdir()
    checks, _ = await run_checks(settings_factory=lambda: settings(tmp_path, database_path=tmp_path / "adir"),
                                 weights=False, api_base=f"http://127.0.0.1:{closed_port()}/api/v10")
    assert not by_name(checks)["database"].ok and "is a folder, not a file" in by_name(checks)["database"].detail


@pytest.mark.realweights
async def test_real_weights_run_a_forward_pass(tmp_path, real_weights_path):
    checks, _ = await run_checks(settings_factory=lambda: settings(tmp_path, nst_weights=str(real_weights_path)),
                                 api_base=f"http://127.0.0.1:{closed_port()}/api/v10")
    assert by_name(checks)["weights"].ok, by_name(checks)["weights"].line()


def test_token_shapes():
    def detail(token: str) -> str:
        return check_token(Settings(_env_file=None, discord_token=token))[0].detail  # type: ignore[arg-type]

    assert check_token(Settings(_env_file=None, discord_token=TOKEN))[1] == APP_ID  # type: ignore[arg-type]
    assert "starts with 'Bot '" in detail("Bot " + TOKEN)
    assert "wrapped in quotes" in detail(f'"{TOKEN}"')
    assert "does not look like a bot token" in detail("0123456789abcdef0123456789abcdef")  # a client secret
    assert "does not look like a bot token" in detail("aGVsbG8.GaBcDe." + "x" * 38)  # first part not an id


def run_doctor(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "NST_", "DATABASE_"))}
    clean.update({"PYTHONPATH": str(ROOT), "NST_WEIGHTS": "random", "NST_DEVICE": "cpu"}, **env)
    return subprocess.run([sys.executable, "-m", "bot", "doctor"], cwd=tmp_path, env=clean, capture_output=True,
                          text=True, timeout=120)


def test_doctor_command_without_token(tmp_path):
    out = run_doctor(tmp_path, {})
    assert out.returncode == 1, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("[  ok] settings")
    assert lines[1].startswith("[FAIL] token: DISCORD_TOKEN is not set — fix: copy .env.example to .env")
    assert any(line.startswith("[  ok] weights: random loaded and ran on cpu") for line in lines)
    assert any(line.startswith("[skip] discord") for line in lines)
    assert lines[-1] == "1 check(s) failed."
    assert "Traceback" not in out.stdout + out.stderr
    assert (tmp_path / "data" / "bot.sqlite3").is_file()


def test_doctor_command_with_invalid_settings(tmp_path):
    out = run_doctor(tmp_path, {"MAX_FILE_MB": "lots", "DISCORD_TOKEN": TOKEN})
    assert out.returncode == 1
    assert out.stdout.splitlines()[0].startswith("[FAIL] settings: MAX_FILE_MB: Input should be a valid number")
    assert "Traceback" not in out.stdout + out.stderr


async def test_with_a_ray_cluster_the_doctor_checks_the_way_in_instead_of_the_weights(tmp_path):
    # The weights load on the cluster's machines; here the head must answer and this machine must have joined.
    with socket.socket() as head:
        head.bind(("127.0.0.1", 0))
        head.listen()
        address = f"127.0.0.1:{head.getsockname()[1]}"
        checks, _ = await run_checks(settings_factory=lambda: settings(tmp_path, nst_backend="ray", ray_address=address),
                                     api_base=f"http://127.0.0.1:{closed_port()}/api/v10")
    cluster = by_name(checks)["ray cluster"]
    assert "weights" not in by_name(checks) and not cluster.ok
    # (The test session's own local Ray may be running here: then this machine's node is of another cluster.)
    assert f"RAY_ADDRESS={address}" in cluster.detail
    assert ("no Ray node runs on this machine" in cluster.detail) != ("belongs to the cluster at" in cluster.detail)
    assert f"`ray start --address={address} --num-cpus=0 --num-gpus=0`" in cluster.fix
    port = closed_port()
    checks, _ = await run_checks(settings_factory=lambda: settings(tmp_path, nst_backend="ray",
                                                                   ray_address=f"127.0.0.1:{port}"),
                                 api_base=f"http://127.0.0.1:{port}/api/v10")
    assert by_name(checks)["ray cluster"].detail == f"the Ray head at 127.0.0.1:{port} (RAY_ADDRESS) does not answer " \
                                                    "(Connection refused)"

"""Start-up failures of the real ``python -m bot`` process: one clear line each, non-zero exit, no traceback."""

from __future__ import annotations

import socket

import pytest
from aiohttp import web

from tests.e2e.bot_process import bot_process
from tests.fakediscord import serving_fake

pytestmark = pytest.mark.e2e


def only_line(output: str) -> str:
    """The bot's output must be exactly one line (no traceback, no log noise before the failure)."""
    # (the workers' own warning about the tests' random weights is the only other line allowed)
    lines = [line for line in output.splitlines() if line.strip() and "using RANDOM VGG19 weights" not in line]
    assert "Traceback" not in output, output
    assert len(lines) == 1, output
    return lines[0]


async def run_to_exit(tmp_path, url, **settings) -> tuple[int, str]:
    async with bot_process(tmp_path, url, LOG_LEVEL="ERROR", **settings) as bot:
        code = await bot.wait(timeout=90)
    return code, bot.output


async def test_refused_token(tmp_path):
    async with serving_fake() as fake:
        fake.config.token = "the-real-token"
        code, out = await run_to_exit(tmp_path, fake.base_url)
    assert code == 2
    assert only_line(out).startswith("Discord refused DISCORD_TOKEN: check the token in .env")


async def test_message_content_intent_required_but_off(tmp_path):
    async with serving_fake() as fake:
        fake.config.app_flags = 0  # the intent is off in the Developer Portal: Discord closes with 4014
        code, out = await run_to_exit(tmp_path, fake.base_url, MESSAGE_CONTENT_INTENT="on")
        assert [code for _, code in fake.gateway.refused_identifies] == [4014]
    assert code == 2
    assert only_line(out).startswith("Discord refused the Message Content intent: enable it in the Developer Portal")


async def test_no_network_and_no_dns(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, out = await run_to_exit(tmp_path, f"http://127.0.0.1:{port}")
    assert code == 1
    assert only_line(out).startswith(f"Cannot connect to 127.0.0.1:{port} (Connect call failed")
    code, out = await run_to_exit(tmp_path, "http://discord.invalid")
    assert code == 1
    assert only_line(out) == "Cannot resolve discord.invalid: no network or DNS. Check the connection and DNS, then " \
                             "start again."


async def test_discord_down(tmp_path, unused_tcp_port):
    async def down(request: web.Request) -> web.Response:
        return web.Response(status=503, text="upstream connect error", content_type="text/plain")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", down)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    try:
        code, out = await run_to_exit(tmp_path, f"http://127.0.0.1:{unused_tcp_port}")
    finally:
        await runner.cleanup()
    assert code == 1
    assert only_line(out).startswith("Discord is having problems (HTTP 503 at start-up)")


async def test_weights_missing_or_unreadable(tmp_path):
    code, out = await run_to_exit(tmp_path, None, NST_WEIGHTS=tmp_path / "vgg19.pth")
    assert code == 2
    assert only_line(out).startswith(f"The weights file '{tmp_path / 'vgg19.pth'}' (NST_WEIGHTS) does not exist")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a state_dict" * 100)
    async with serving_fake() as fake:
        code, out = await run_to_exit(tmp_path, fake.base_url, NST_WEIGHTS=garbage)
    assert code == 2
    line = only_line(out)
    assert line.startswith("The style workers could not start: worker 0 (cpu) could not load the VGG19 weights: "
                           f"could not read weights file '{garbage}'"), line


async def test_metrics_port_in_use(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code, out = await run_to_exit(tmp_path, None, METRICS_ADDRESS=f"127.0.0.1:{port}")
    assert code == 2
    assert only_line(out).startswith(f"METRICS_ADDRESS=127.0.0.1:{port}: ")


async def test_ray_cluster_this_machine_has_not_joined(tmp_path):
    # A head that answers (any listening port will do), and no Ray node of that cluster on this machine (the test
    # session's own local Ray may run here, of another cluster): Ray would abort the process in C++; the bot stops
    # first, naming the command that joins the machine.
    with socket.socket() as head:
        head.bind(("127.0.0.1", 0))
        head.listen()
        address = f"127.0.0.1:{head.getsockname()[1]}"
        async with serving_fake() as fake:
            code, out = await run_to_exit(tmp_path, fake.base_url, NST_BACKEND="ray", RAY_ADDRESS=address)
    assert code == 2
    line = only_line(out)
    assert line.startswith("The style workers could not start: ")
    assert f"`ray start --address={address} --num-cpus=0 --num-gpus=0`" in line


async def test_ray_head_that_does_not_answer(tmp_path, unused_tcp_port):
    async with serving_fake() as fake:
        code, out = await run_to_exit(tmp_path, fake.base_url, NST_BACKEND="ray",
                                      RAY_ADDRESS=f"127.0.0.1:{unused_tcp_port}")
    assert code == 1
    assert only_line(out).startswith(f"The style workers could not start: the Ray head at 127.0.0.1:{unused_tcp_port} "
                                     "(RAY_ADDRESS) does not answer (Connection refused)")

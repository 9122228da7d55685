"""The bot never imports torch: it starts fast, and a front end that only queues jobs needs no GPU stack."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import importlib, json, pkgutil, sys
import bot
names = sorted(m.name for m in pkgutil.walk_packages(bot.__path__, "bot."))
for name in names:
    importlib.import_module(name)
{extra}
print(json.dumps({{"modules": names, "torch": "torch" in sys.modules}}))
"""


def probe(extra: str = "") -> dict[str, object]:
    # A fresh interpreter: this test process has long imported torch through other tests.
    out = subprocess.run([sys.executable, "-c", PROBE.format(extra=extra)], capture_output=True, text=True,
                         timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_every_bot_module_leaves_torch_out() -> None:
    result = probe()
    modules = result["modules"]
    assert isinstance(modules, list)
    assert {"bot.app", "bot.requests.service", "bot.cogs.style", "bot.ui.buttons", "bot.__main__"} <= set(modules)
    assert result["torch"] is False


def test_the_probe_sees_torch_when_it_is_imported() -> None:
    # The check above can fail: the engine itself does bring torch in.
    assert probe("import nst_engine.engine")["torch"] is True


FRONT_END = """
import json, sys
sys.modules["torch"] = sys.modules["torchvision"] = None  # as on a machine with only the front end installed
from bot.__main__ import preflight_settings
from bot.app import build_backend
from bot.config import Settings
settings = Settings(_env_file=None, discord_token="t", nst_backend="ray", ray_address="10.0.0.1:6379")
backend = build_backend(settings)
process = preflight_settings(Settings(_env_file=None, discord_token="t", nst_backend="process"))
print(json.dumps({"backend": type(backend).__name__, "ray": preflight_settings(settings), "process": process,
                  "torch": sys.modules["torch"] is not None}))
"""


def test_the_bot_on_a_ray_cluster_builds_its_backend_without_torch() -> None:
    out = subprocess.run([sys.executable, "-c", FRONT_END], capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["backend"] == "RayBackend" and result["ray"] is None and result["torch"] is False
    # With the local pool instead, the bot says at start-up what to install.
    assert result["process"].startswith("NST_BACKEND=process runs the style jobs on this machine, and the engine "
                                        "(torch) is not installed here: install it with pip install '.[engine]'")

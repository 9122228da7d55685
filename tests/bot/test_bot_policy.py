"""The request's pure parts: metadata checks, options, the failure table, the re-run cache."""

import pytest
from PIL import Image

from bot.requests.arguments import StyleArgs
from bot.requests.failures import Context, describe
from bot.requests.policy import (
    ImageInput,
    InputFile,
    Inputs,
    Refusal,
    build_options,
    check_metadata,
    choose_preset,
    role_name,
)
from bot.requests.reruns import RerunCache, RerunInputs, shrink_inputs
from bot.storage.limits import Limits
from nst_engine.errors import JobTimeoutError, TooManyPixelsError, WorkerCrashedError

LIMITS = Limits(max_file_mb=1, max_megapixels=1, max_output_side=256, allowed_presets=("fast", "balanced"))


def f(name="a.png", size=1000, ctype="image/png", w=100, h=100):
    return InputFile(filename=name, url="http://127.0.0.1/x", size=size, content_type=ctype, width=w, height=h)


def test_roles():
    assert role_name(0, 1) == "content image"
    assert role_name(1, 1) == "style image"
    assert role_name(2, 2) == "style image 2"


@pytest.mark.parametrize(
    ("files", "fragment"),
    [
        ([], "got no image"),
        ([f("only.png")], "only one file (`only.png`)"),
        ([f(), f(), f(), f()], "at most 2 style images"),
        ([f(), f("notes.txt", ctype="text/plain")], "`notes.txt` (style image) is not an image"),
        ([f("big.png", size=3 * 1024 * 1024), f()], "`big.png` (content image) is 3 MB; the limit here is 1 MB"),
        ([f(), f("huge.png", w=2000, h=1000)], "`huge.png` (style image) is 2000×1000 px (2.0 MP)"),
    ],
)
def test_metadata_refusals_name_file_and_limit(files, fragment):
    with pytest.raises(Refusal) as info:
        check_metadata(files, LIMITS, max_styles=2)
    assert fragment in str(info.value)


def test_metadata_passes_unknown_dimensions():
    check_metadata([f(w=None, h=None, ctype=None), f()], LIMITS, max_styles=2)


def test_presets_and_options():
    assert choose_preset(None, LIMITS) == "balanced"
    assert choose_preset(None, Limits(1, 1, 256, ("fast",))) == "fast"
    with pytest.raises(Refusal, match="`quality` preset is not allowed here; choose from fast, balanced"):
        choose_preset("quality", LIMITS)
    opts = build_options(StyleArgs(preset="fast", strength=2, seed=3), LIMITS)
    assert (opts.preset, opts.size, opts.strength, opts.seed) == ("fast", 256, 2, 3)  # 384 capped at 256
    opts = build_options(StyleArgs(), LIMITS, overrides={"size": 48, "iterations": 3})
    assert (opts.preset, opts.size, opts.iterations) == ("balanced", 48, 3)
    opts = build_options(StyleArgs(), LIMITS, overrides={"size": 4000})
    assert opts.size == 256


def describe_failure(exc: BaseException, *, timeout: float) -> str:
    return describe(exc, Context(job_timeout=timeout)).message


def test_failure_messages():
    assert "crashed" in describe_failure(WorkerCrashedError("x"), timeout=600)
    assert "10-minute limit" in describe_failure(JobTimeoutError("x"), timeout=600)
    animation = describe_failure(JobTimeoutError("x", seconds=1800, frames=7), timeout=600)
    assert "Your animation ran longer than its 30-minute limit (7 frames)" in animation
    msg = describe_failure(TooManyPixelsError("style image is 50 MP", role="style image"), timeout=1)
    assert msg == "Style image is 50 MP. Send a smaller image."
    assert "logged" in describe_failure(RuntimeError("secret detail"), timeout=1)
    assert "secret" not in describe_failure(RuntimeError("secret detail"), timeout=1)
    assert describe(RuntimeError("x"), Context(job_timeout=1)).expected is False
    refusal = describe(Refusal("no", reason="too-few-images"), Context(job_timeout=1))
    assert (refusal.outcome, refusal.refused) == ("too-few-images", True)


def test_command_errors_have_messages_and_bugs_have_none():
    from discord import app_commands

    from bot.requests.failures import describe_command_error

    missing = app_commands.MissingPermissions(["manage_guild"])
    assert describe_command_error(missing) == "Only members with the **Manage Server** permission can do this."
    assert describe_command_error(app_commands.NoPrivateMessage("Only in servers.")) == "Only in servers."
    assert describe_command_error(RuntimeError("bug")) is None


def test_decoded_inputs_skip_the_attachment_checks():
    picture = ImageInput("gallery: Starry Night", Image.new("RGB", (4000, 3000)))  # above every file limit
    check_metadata([f(), picture], LIMITS, max_styles=2)
    with pytest.raises(Refusal, match="only one file \\(`gallery: Starry Night`\\)"):
        check_metadata([picture], LIMITS, max_styles=2)


def test_rerun_copies_are_shrunk_by_the_pools_rule():
    big = Image.new("RGB", (4000, 3000))
    small = shrink_inputs(Inputs(content=big, styles=[Image.new("RGB", (300, 200))], names=["a", "b"]), 512)
    assert small.content.size == (1334, 1000)  # at least twice the output side, as the pool would send it
    assert small.styles[0].size == (300, 200)


def _entry(side=10):
    im = Image.new("RGB", (side, side))
    return RerunInputs(inputs=Inputs(content=im, styles=[im], names=["a", "b"]), args=StyleArgs(), guild_id=None)


def test_rerun_cache_is_bounded_by_count_bytes_and_age():
    cache = RerunCache(max_entries=2, ttl=100)
    cache.put("a", _entry())
    cache.put("b", _entry())
    cache.put("c", _entry())
    assert cache.get("a") is None and cache.get("b") is not None and len(cache) == 2
    small = RerunCache(max_entries=10, ttl=100, max_bytes=1000)
    small.put("a", _entry(10))  # 600 bytes
    small.put("b", _entry(10))
    assert small.get("a") is None and small.get("b") is not None
    cache._items["b"].expires = 0  # as if its time-to-live had passed
    assert cache.get("b") is None
    off = RerunCache(max_entries=0, ttl=100)  # RERUN_CACHE_SIZE=0 turns the cache off: it keeps nothing
    off.put("x", _entry())
    assert off.get("x") is None and len(off) == 0


def test_every_engine_error_has_its_own_row_in_the_failure_table():
    import inspect

    from bot.requests import failures
    from nst_engine import errors

    rows = {kind for kind, _ in failures.FAILURES}
    for _, kind in inspect.getmembers(errors, inspect.isclass):
        if issubclass(kind, errors.NSTError) and kind is not errors.NSTError:
            # A row for the class itself or for a parent other than the catch-all NSTError.
            assert any(row in rows for row in kind.__mro__ if row not in (errors.NSTError, Exception)), kind
            failure = failures.describe(kind("x"), Context(job_timeout=60))
            assert failure.outcome != "error" and failure.expected == (kind is not errors.WeightsError), kind

"""The pool's parts that need no worker process: the job runner (with the real engine, in this process), progress
throttling, errors across the process boundary, settings from the environment."""

from __future__ import annotations

import pickle
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from PIL import Image
from torch.utils._python_dispatch import TorchDispatchMode

from nst_engine import stylize
from nst_engine.errors import (
    Cancelled,
    ImageTooSmallError,
    JobFailedError,
    OptionsError,
    OutOfMemoryError,
    PoolError,
)
from nst_engine.options import shrink as _shrink
from nst_engine.pool import ProcessPoolBackend, describe_exit
from nst_engine.pool.devices import plan_devices
from nst_engine.pool.wire import (
    Done,
    ErrorInfo,
    Failed,
    Progress,
    RawImage,
    RunMessage,
    WorkerMessage,
    decode_error,
    encode_error,
)
from nst_engine.pool.worker import ProgressThrottle, is_out_of_memory, run_job
from nst_engine.types import ProgressEvent, StyleOptions
from tests.pool.helpers import SHARED_ENV, STYLE, noise_image


def spec(content: Image.Image, seq: int = 1, **options: Any) -> RunMessage:
    opts = StyleOptions(preset="fast", precision="fp32", **options)
    return RunMessage(seq, "job", RawImage.from_pil(content), (RawImage.from_pil(STYLE),), opts)


def run(job: RunMessage, model: Any, **kwargs: Any) -> tuple[Done | Failed, list[Progress]]:
    sent: list[Progress] = []
    kwargs.setdefault("should_stop", lambda: False)
    outcome = run_job(job, model=model, send=collect(sent), progress_interval=0.0, **kwargs)
    return outcome, sent


def test_run_job_returns_the_image_and_every_progress_event(model: Any) -> None:
    outcome, sent = run(spec(noise_image(48, 40, 3), size=48, iterations=5, preview_every=0.0), model)
    assert isinstance(outcome, Done) and isinstance(outcome.image, RawImage)  # raw bytes through a local pipe
    assert (outcome.image.width, outcome.image.height) == (48, 40) and outcome.steps == 5
    assert [p.event.step for p in sent] == [1, 2, 3, 4, 5]
    assert all(p.event.preview is None and p.preview is not None for p in sent)  # previews travel as raw bytes
    assert outcome.image.to_pil().mode == "RGB"


def test_run_job_stops_when_told(model: Any) -> None:
    checks = iter(range(1000))
    outcome, _ = run(
        spec(noise_image(48, 40, 3), size=48, iterations=500), model, should_stop=lambda: next(checks) >= 3
    )
    assert isinstance(outcome, Failed)
    assert isinstance(decode_error(outcome.error), Cancelled)
    assert outcome.steps <= 3


class OOMBelow:
    """The real ``stylize``, but the device 'runs out of memory' above ``limit`` px (no GPU needed to test this)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.sizes: list[int] = []

    def __call__(self, *args: Any, options: StyleOptions, **kwargs: Any) -> Any:
        assert options.size is not None
        self.sizes.append(options.size)
        if options.size > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return stylize(*args, options=options, **kwargs)


def test_out_of_memory_is_retried_once_at_a_smaller_size_and_noted(model: Any) -> None:
    fake_gpu = OOMBelow(limit=40)
    outcome, _ = run(spec(noise_image(64, 56, 4), size=56, iterations=3), model, stylize=fake_gpu)
    assert isinstance(outcome, Done), outcome
    assert fake_gpu.sizes == [56, 39]
    assert outcome.image.to_pil().size == (39, 34)
    assert outcome.summary.notes == ("retried at 39 px after running out of memory at 56 px",)


class CpuMemoryAbove(TorchDispatchMode):
    """While active, every convolution over an input wider or taller than ``limit`` px first asks torch's CPU
    allocator for more bytes than any machine has: the allocator's own failure, raised inside the real engine."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.refused = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if "convolution" in str(func) and max(args[0].shape[-2:]) > self.limit:
            self.refused += 1
            torch.empty(2**62, dtype=torch.uint8)  # raises: DefaultCPUAllocator: can't allocate memory
        return func(*args, **(kwargs or {}))


def test_a_real_cpu_allocation_failure_is_retried_at_a_smaller_size(model: Any) -> None:
    """The worker's own job function and the real engine on the CPU; the allocator fails for real at 56 px, never at
    the retry's 39 px, so the outcome depends only on the retry path (the capped-memory run: ``make gpu-check``)."""
    cpu = CpuMemoryAbove(limit=48)
    with cpu:
        outcome, _ = run(spec(noise_image(64, 56, 4), size=56, iterations=2), model)
    assert isinstance(outcome, Done), outcome
    assert cpu.refused == 1  # the first attempt's first convolution at full size, and none at the retry
    assert outcome.image.to_pil().size == (39, 34)
    assert outcome.summary.notes == ("retried at 39 px after running out of memory at 56 px",)


class Activations:
    """Stands for the tensors a failed attempt allocated before it ran out of memory."""


def test_the_retry_runs_after_the_failed_attempts_memory_is_released(model: Any) -> None:
    """On a GPU the failed attempt's tensors live on in its frames for as long as its exception (and traceback) is
    alive: a retry started inside the ``except`` block runs out again. The retry must start after it is dropped."""
    alive_at_retry: list[bool] = []
    first_attempt: list[weakref.ref[Activations]] = []

    def fake_gpu(*args: Any, options: StyleOptions, **kwargs: Any) -> Any:
        if not first_attempt:
            held = Activations()  # referenced only by this frame (and so by the traceback)
            first_attempt.append(weakref.ref(held))
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        alive_at_retry.append(first_attempt[0]() is not None)
        return stylize(*args, options=options, **kwargs)

    outcome, _ = run(spec(noise_image(64, 56, 4), size=56, iterations=2), model, stylize=fake_gpu)
    assert isinstance(outcome, Done), outcome
    assert alive_at_retry == [False]


@pytest.mark.parametrize(
    "error",
    [
        torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("[enforce fail at alloc_cpu.cpp:121] DefaultCPUAllocator: can't allocate memory: you tried to "
                     "allocate 1073741824 bytes. Error code 12 (Cannot allocate memory)"),
        RuntimeError("could not create a primitive"),  # oneDNN, when its set-up allocation fails under a memory cap
        MemoryError(),
    ],
    ids=["cuda", "cpu-allocator", "onednn", "python"],
)
def test_each_way_of_running_out_of_memory_is_recognised(error: BaseException) -> None:
    assert is_out_of_memory(error)


def test_other_errors_are_not_taken_for_out_of_memory() -> None:
    assert not is_out_of_memory(RuntimeError("Given groups=1, weight of size [64, 3, 3, 3], expected input"))
    assert not is_out_of_memory(ValueError("could not create a primitive"))


def test_out_of_memory_twice_is_a_clear_error(model: Any) -> None:
    fake_gpu = OOMBelow(limit=10)
    outcome, _ = run(spec(noise_image(64, 56, 4), size=56, iterations=3), model, stylize=fake_gpu)
    assert isinstance(outcome, Failed) and fake_gpu.sizes == [56, 39]
    error = decode_error(pickle.loads(pickle.dumps(outcome.error)))
    assert isinstance(error, OutOfMemoryError)
    assert "ran out of memory at 56 px and again at 39 px" in str(error)


def test_engine_errors_cross_the_boundary_with_their_class_and_role(model: Any) -> None:
    outcome, _ = run(spec(noise_image(400, 20, 5), size=48, iterations=2), model)
    assert isinstance(outcome, Failed)
    error = decode_error(pickle.loads(pickle.dumps(outcome.error)))
    assert type(error) is ImageTooSmallError and error.role == "content image"
    assert "each side must be at least 32 px" in str(error)

    outcome, _ = run(spec(noise_image(48, 40, 5), size=48, iterations=2, optimizer="sgd"), model)  # type: ignore[arg-type]
    assert isinstance(outcome, Failed)
    error = decode_error(outcome.error)
    assert type(error) is OptionsError and "optimizer must be 'adam' or 'lbfgs'" in str(error)


def test_unexpected_errors_become_one_line_job_failures(model: Any) -> None:
    outcome, _ = run(spec(noise_image(48, 40, 5), size=48, iterations=2), model="not a model")  # type: ignore[arg-type]
    assert isinstance(outcome, Failed) and outcome.error.kind == "unknown"
    assert outcome.error.detail is not None and "Traceback" in outcome.error.detail  # for the log
    error = decode_error(outcome.error)
    assert isinstance(error, JobFailedError)
    assert "AttributeError" in str(error) and "\n" not in str(error) and "Traceback" not in str(error)


def test_error_info_rebuilds_typed_errors() -> None:
    info = pickle.loads(pickle.dumps(encode_error(ImageTooSmallError("too small", role="style image 2"))))
    error = decode_error(info)
    assert type(error) is ImageTooSmallError and error.role == "style image 2" and str(error) == "too small"
    assert decode_error(ErrorInfo("typed", "NoSuchError", "x")).__class__ is JobFailedError
    long = decode_error(encode_error(ValueError("first line\nsecond line " + "x" * 500)))
    assert "first line" in str(long) and "second line" not in str(long)


def events(n: int, total: int, previews: dict[int, Image.Image] | None = None) -> Iterator[ProgressEvent]:
    for step in range(1, n + 1):
        preview = (previews or {}).get(step)
        yield ProgressEvent(1, 1, 48, 40, step, total, step, total, {"total": 1.0}, float(step), None, preview)


def collect(sent: list[Progress]) -> Callable[[WorkerMessage], None]:
    def send(message: WorkerMessage) -> None:
        assert isinstance(message, Progress)
        sent.append(message)

    return send


def test_progress_throttle_keeps_one_event_per_interval_the_last_and_every_preview() -> None:
    clock = iter(range(1, 100))  # one "second" per event
    sent: list[Progress] = []
    preview = Image.new("RGB", (8, 8), (1, 2, 3))
    throttle = ProgressThrottle(7, collect(sent), interval=2.5, clock=lambda: next(clock))
    for event in events(10, 10, previews={2: preview}):
        throttle(event)
    throttle.flush()  # nothing pending: the final event went out already
    assert [p.event.step for p in sent] == [1, 4, 7, 10]
    assert [p.preview is not None for p in sent] == [False, True, False, False]  # step 2's preview rode on step 4
    assert sent[1].preview is not None and sent[1].preview.to_pil().getpixel((0, 0)) == (1, 2, 3)
    assert throttle.steps == 10 and all(p.seq == 7 for p in sent)


def test_progress_throttle_flushes_the_last_event_of_a_job_that_ended_early() -> None:
    clock = iter(range(1, 100))
    sent: list[Progress] = []
    throttle = ProgressThrottle(1, collect(sent), interval=10, clock=lambda: next(clock))
    for event in events(5, 100):
        throttle(event)
    throttle.flush()
    assert [p.event.step for p in sent] == [1, 5]


def test_devices_are_planned_from_arguments() -> None:
    assert plan_devices("cpu", None) == ["cpu"]
    assert plan_devices("cpu", 3) == ["cpu", "cpu", "cpu"]
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        plan_devices("tpu", None)
    with pytest.raises(ValueError, match="workers must be at least 1"):
        plan_devices("cpu", 0)
    if not torch.cuda.is_available():
        assert plan_devices("auto", None) == ["cpu"]
        with pytest.raises(PoolError, match="no CUDA device is visible"):
            plan_devices("cuda", None)
        with pytest.raises(PoolError, match="does not exist"):
            plan_devices("cuda:1", None)


def test_from_env_reads_every_setting_and_overrides_win(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**SHARED_ENV, "NST_THREADS_PER_WORKER": "2"}.items():
        monkeypatch.setenv(name, value)
    pool = ProcessPoolBackend.from_env(max_queue=1)
    assert pool.capacity == 3 and pool.devices == ["cpu"] * 3 and pool.weights == "random"
    assert (pool.job_timeout, pool.max_queue, pool.progress_interval) == (12.5, 1, 0.25)
    assert (pool.threads_per_worker, pool.start_timeout, pool.stop_grace) == (2, 30.0, 1.0)

    monkeypatch.setenv("NST_MAX_QUEUE", "lots")
    with pytest.raises(ValueError, match="NST_MAX_QUEUE must be a whole number, got 'lots'"):
        ProcessPoolBackend.from_env()
    monkeypatch.setenv("NST_MAX_QUEUE", "")
    assert ProcessPoolBackend.from_env().max_queue == 32  # empty = unset = the default
    monkeypatch.setenv("NST_WORKERS", "Auto")
    assert ProcessPoolBackend.from_env().capacity == 1  # auto: one per visible GPU; on a CPU, one
    monkeypatch.setenv("NST_WORKERS", "many")
    with pytest.raises(ValueError, match="NST_WORKERS must be a whole number or auto, got 'many'"):
        ProcessPoolBackend.from_env()


def test_constructor_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="job_timeout"):
        ProcessPoolBackend(device="cpu", job_timeout=0)
    with pytest.raises(ValueError, match="max_queue"):
        ProcessPoolBackend(device="cpu", max_queue=-1)


def test_huge_uploads_are_reduced_before_they_travel() -> None:
    big = Image.new("RGB", (4000, 3000))
    assert _shrink(big, 512).size == (1334, 1000)  # still at least twice what the engine will use
    small = Image.new("RGB", (900, 600))
    assert _shrink(small, 512) is small


def test_exit_codes_in_words() -> None:
    assert describe_exit(-9) == "was killed by SIGKILL (often the system's out-of-memory killer)"
    assert describe_exit(-11) == "was killed by SIGSEGV"
    assert describe_exit(3) == "exited with code 3"


def test_a_dotenv_file_feeds_the_backend_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in (*SHARED_ENV, "NST_THREADS_PER_WORKER", "NST_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    dotenv = tmp_path / ".env"
    dotenv.write_text("NST_START_TIMEOUT=42\nNST_STOP_GRACE=3\nNST_PROGRESS_INTERVAL=0.2\nNST_THREADS_PER_WORKER=2\n")
    monkeypatch.chdir(tmp_path)
    pool = ProcessPoolBackend.from_env(device="cpu")
    assert (pool.start_timeout, pool.stop_grace, pool.progress_interval, pool.threads_per_worker) == (42.0, 3.0, 0.2, 2)
    monkeypatch.setenv("NST_START_TIMEOUT", "7")  # the environment wins over .env
    assert ProcessPoolBackend.from_env(device="cpu").start_timeout == 7.0
    monkeypatch.delenv("NST_START_TIMEOUT")
    dotenv.write_text("NST_START_TIMEOUT=later\n")
    with pytest.raises(ValueError, match="NST_START_TIMEOUT must be a number of seconds, got 'later'"):
        ProcessPoolBackend.from_env(device="cpu")

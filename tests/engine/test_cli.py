"""The ``nst`` command: a real run on tiny images, exit codes and one-line errors for bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nst_engine.cli import EXIT_BAD_INPUT, EXIT_OK, EXIT_USAGE, EXIT_WEIGHTS, main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def images(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    content, style = tmp_path / "photo.jpg", tmp_path / "painting.png"
    Image.fromarray(rng.integers(0, 255, (50, 70, 3), dtype=np.uint8)).save(content, "JPEG")
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(style, "PNG")
    return content, style


def test_stylizes_writes_the_image_and_the_loss_chart(images, tmp_path, capsys):
    content, style = images
    out, chart = tmp_path / "out" / "result.webp", tmp_path / "losses.png"
    code = main([str(content), str(style), "-o", str(out), "--weights", "random", "--size", "48", "--iterations", "3",
                 "--loss-plot", str(chart), "--seed", "1"])  # fmt: skip
    assert code == EXIT_OK
    with Image.open(out) as result:
        assert result.format == "WEBP" and result.size == (48, 34)
    with Image.open(chart) as plot:
        assert plot.format == "PNG"
    printed = capsys.readouterr().out
    assert "total" in printed and "48x34" in printed and "3 iterations" in printed


def test_bad_image_is_one_line_with_exit_code(images, tmp_path, capsys):
    _, style = images
    text = tmp_path / "notes.png"
    text.write_text("this is not a picture")
    code = main([str(text), str(style), "-o", str(tmp_path / "o.png"), "--weights", "random"])
    err = capsys.readouterr().err.strip()
    assert code == EXIT_BAD_INPUT
    assert err.startswith("nst: content image is not a supported image") and "\n" not in err


def test_missing_file_and_weights_and_bad_output(images, tmp_path, capsys):
    content, style = images
    assert main([str(tmp_path / "nope.png"), str(style), "-o", str(tmp_path / "o.png"), "--weights", "random"]) == 3
    assert "cannot read content image" in capsys.readouterr().err
    assert main([str(content), str(style), "-o", str(tmp_path / "o.png"), "--weights", str(tmp_path / "w.pth")]) \
        == EXIT_WEIGHTS  # fmt: skip
    assert "does not exist" in capsys.readouterr().err
    assert main([str(content), str(style), "-o", str(tmp_path / "o.gif"), "--weights", "random"]) == EXIT_USAGE
    assert "photo.jpg is a still picture: write it to a .png, .jpg or .webp, not .gif" in capsys.readouterr().err
    assert main([str(content), str(style), "-o", str(tmp_path / "o.tif"), "--weights", "random"]) == EXIT_USAGE
    assert "must end in .png, .jpg, .webp or .gif" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".gif", ".webp", ".png"])
def test_an_animation_comes_out_animated_with_its_timing(images, tmp_path, capsys, suffix):
    _, style = images
    rng = np.random.default_rng(1)
    frames = [Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)) for _ in range(4)]
    clip = tmp_path / "clip.gif"
    frames[0].save(clip, "GIF", save_all=True, append_images=frames[1:], duration=[50, 60, 70, 80], loop=0)
    out = tmp_path / f"painted{suffix}"
    code = main([str(clip), str(style), "-o", str(out), "--weights", "random", "--size", "48", "--iterations", "2",
                 "--max-frames", "3"])  # fmt: skip
    assert code == EXIT_OK
    with Image.open(out) as result:
        assert result.n_frames == 3 and result.size == (48, 34)
        durations = []
        for index in range(3):
            result.seek(index)
            result.load()
            durations.append(result.info["duration"])
    assert durations == [50, 60, 70]
    printed = capsys.readouterr().out
    assert "3 frames" in printed and "shortened to its first 3 of 4 frames" in printed
    assert main([str(clip), str(style), "-o", str(tmp_path / "o.jpg"), "--weights", "random"]) == EXIT_USAGE
    assert "clip.gif is an animation: write it to a .gif, .webp or .png, not .jpg" in capsys.readouterr().err


def test_help_works_as_module_and_lists_presets():
    done = subprocess.run([sys.executable, "-m", "nst_engine", "--help"], capture_output=True, text=True, cwd=ROOT,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0
    assert "--preset" in done.stdout and "balanced" in done.stdout and "--loss-plot" in done.stdout

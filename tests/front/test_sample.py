"""The README's first command, pasted as written: the bundled sample image, ``samkit sample``,
the no-download GrabCut run, and the CPU-wheel install line on the first screen."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import samkit
from sample_scene import BALL, render_scene

README = Path(__file__).resolve().parents[2] / "README.md"


def _first_screen() -> str:
    text = README.read_text()
    return text[: text.index("\n## ")]


def _first_command() -> str:
    block = re.search(r"```bash\n(.*?)\n```", _first_screen(), re.S)
    assert block is not None
    return block.group(1).strip()


def test_sample_ships_and_is_the_drawn_scene() -> None:
    from samkit.assets import SAMPLE

    assert samkit.ASSETS / "sample.jpg" == SAMPLE and SAMPLE.is_file()
    assert SAMPLE.stat().st_size < 200_000
    shipped = cv2.imread(str(SAMPLE))[:, :, ::-1].astype(np.int16)
    drawn = render_scene().astype(np.int16)
    assert shipped.shape == drawn.shape
    print("sample vs drawing, mean abs diff:", float(np.abs(shipped - drawn).mean()))
    assert np.abs(shipped - drawn).mean() < 4  # JPEG of the drawing, nothing else


def test_sample_mode_prints_only_the_path(capsys) -> None:
    from samkit.cli import main

    assert main(["sample"]) == 0
    out = capsys.readouterr().out
    assert out == f"{samkit.ASSETS / 'sample.jpg'}\n"


def test_first_screen_says_how_to_get_the_cpu_wheel() -> None:
    screen = _first_screen()
    assert "--index-url https://download.pytorch.org/whl/cpu" in screen
    assert "pip install -e ." in _first_command()


def test_first_command_runs_as_pasted_offline_with_grabcut(tmp_path) -> None:
    """The README's command after ``pip install -e . &&``, with ``model=grabcut`` (what the
    README offers without weights), in bash: it must segment the sample's red ball."""
    bash = shutil.which("bash")
    script = shutil.which("samkit", path=str(Path(sys.executable).parent))
    if bash is None or script is None:
        pytest.skip("needs bash and the installed samkit console script")
    command = _first_command().split("&&", 1)[1].strip()
    assert "model=mobile_sam.pt" in command and "$(samkit sample)" in command
    command = command.replace("model=mobile_sam.pt", "model=grabcut")
    env = {**os.environ, "PATH": f"{Path(script).parent}{os.pathsep}{os.environ['PATH']}",
           "SAMKIT_HOME": str(tmp_path / "cache")}  # fmt: skip
    proc = subprocess.run([bash, "-c", command], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "runs" / "predict" / "predictions.json").read_text())
    (obj,) = summary["images"][0]["objects"]
    x, y, w, h = obj["bbox"]
    bx, by, br = BALL
    print("ball mask bbox", obj["bbox"], "area", obj["area"], "disc", round(np.pi * br * br))
    assert abs(x - (bx - br)) <= 12 and abs(y - (by - br)) <= 12
    assert 2 * br - 6 <= w <= 2 * br + 16 and 2 * br - 6 <= h <= 2 * br + 16  # not the grass
    assert 0.8 * np.pi * br * br <= obj["area"] <= 1.6 * np.pi * br * br

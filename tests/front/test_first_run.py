"""What a newcomer meets first: README and --help commands that work in zsh, an offline error in
sentences that leaves nothing behind and names a way on, every model's size, and progress bars
that advance when an item is done (folders, auto-annotation, segment everything)."""

from __future__ import annotations

import re
import shlex
import socket
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from front_helpers import TINY_CONFIG, save_random_checkpoint, write_image
from samkit import weights
from samkit.cli import MODES, _main_help, _mode_help, main
from samkit.errors import DownloadError

README = Path(__file__).resolve().parents[2] / "README.md"
BUS_JPG = (810, 1080)  # width, height of Ultralytics' bus.jpg, the image users try first


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def _unquoted_brackets(line: str) -> list[str]:
    """Words of a shell line that zsh would take as a glob: an unquoted ``[``."""
    return [
        w for w in shlex.split(line, comments=True, posix=False) if "[" in w and w[0] not in "'\""
    ]


def test_readme_and_help_quote_every_bracketed_value() -> None:
    lines = [ln for block in _bash_blocks(README.read_text()) for ln in block.splitlines()]
    lines += [ln.split("example: ", 1)[1] for ln in _main_help().splitlines() if "example: " in ln]
    bad = [ln for ln in lines if _unquoted_brackets(ln)]
    assert bad == []
    for name, mode in MODES.items():
        for ln in _mode_help(name, mode).splitlines():
            for key in re.findall(r"\b[a-z_]+=\[[^\]\s\"]*\]?", ln):  # key=[...] outside quotes
                assert f'"{key}' in ln, (name, ln)


def test_readme_points_lie_inside_bus_jpg() -> None:
    text = README.read_text()
    for xs, ys in re.findall(r"\[(\d+),\s*(\d+)\]", text):
        assert int(xs) < BUS_JPG[0] and int(ys) < BUS_JPG[1], (xs, ys)
    export = text.split("## Export and ONNX Runtime", 1)[1].split("\n## ", 1)[0]
    assert 'pip install "samkit[onnx]"' in export
    assert "`sam_b.pt`" in text and "defaults to" in text


def test_offline_error_is_sentences_leaves_no_lock_and_names_grabcut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("SAMKIT_HOME", str(tmp_path))
    monkeypatch.setenv("SAMKIT_WEIGHTS_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(DownloadError):
        weights.resolve_checkpoint("mobile_sam", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no .lock, no .part
    code = main(["predict", "model=mobile_sam.pt", f"source={tmp_path}", "points=[1,1]"])
    line = capsys.readouterr().err.strip()
    assert code == 1 and len(line.splitlines()) == 1
    assert not re.search(r"[^.] To (install|try)", line), line  # was "...not known To install"
    assert ". To install the weights by hand" in line and "model=grabcut" in line


def test_models_lists_a_size_for_every_variant(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    sam1 = ("sam_b ", "sam_l ", "sam_h ", "mobile_sam ")  # the published files with known sizes
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith(sam1)]
    assert len(rows) == 4 and all(" MiB " in r and " ? " not in r for r in rows)


# ----------------------------------------------------------------------------- progress bars
class _Bar:
    """Stands in for tqdm: records the count, so a test can read it while an item runs."""

    live: ClassVar[list[_Bar]] = []

    def __init__(self, *args: object, total: int | None = None, disable: bool = False,
                 **kwargs: object) -> None:  # fmt: skip
        self.n, self.total = 0, total
        _Bar.live.append(self)

    def update(self, k: int = 1) -> None:
        self.n += k

    def set_postfix(self, *args: object, **kwargs: object) -> None:
        pass

    def close(self) -> None:
        pass

    @staticmethod
    def write(text: str) -> None:
        pass


@pytest.fixture
def bars(monkeypatch: pytest.MonkeyPatch) -> type[_Bar]:
    import tqdm.auto

    _Bar.live = []
    monkeypatch.setattr(tqdm.auto, "tqdm", _Bar)
    return _Bar


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("first_run")
    (root / "images").mkdir()
    for i in range(3):
        write_image(root / "images" / f"im{i}.png", 40, 56, seed=i)
    return {"root": root, "ckpt": save_random_checkpoint(root / "tiny.pt", TINY_CONFIG, seed=4)}


def test_bars_advance_when_an_item_is_done(folder, bars, tmp_path) -> None:
    from samkit import SAM, auto_annotate

    model = SAM(folder["ckpt"], device="cpu")
    seen: list[int] = []
    run_one = model.segment_prompts

    def spy(*args: object, **kwargs: object):  # the bar's count while an image is worked on
        seen.append(bars.live[0].n)
        return run_one(*args, **kwargs)

    model.segment_prompts = spy  # type: ignore[method-assign]
    assert len(model(folder["root"] / "images", bboxes=[2, 2, 30, 30], progress=True)) == 3
    assert seen == [0, 1, 2] and bars.live[0].n == 3

    bars.live.clear()
    counts: list[int] = []

    def detector(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        counts.append(bars.live[0].n)
        return np.array([[2.0, 2.0, 30.0, 30.0]]), np.array([0]), np.array([0.9])

    auto_annotate(folder["root"] / "images", det_model=detector, sam_model=model,
                  output_dir=tmp_path / "labels", verbose=False)  # fmt: skip
    assert counts == [0, 1, 2] and bars.live[0].n == 3


def test_segment_everything_bar_counts_decoded_points(folder, bars) -> None:
    from samkit import SAM

    model = SAM(folder["ckpt"], device="cpu")
    image = folder["root"] / "images" / "im0.png"
    model(image, points_per_side=4, points_per_batch=5, pred_iou_thresh=0.0,
          stability_score_thresh=0.0)  # fmt: skip
    (points,) = [b for b in bars.live if b.total != 1]  # the other bar counts images
    assert (points.total, points.n) == (16, 16)  # 4 x 4 grid points, decoded in batches of 5

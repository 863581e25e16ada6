"""``samkit track``: indexed PNGs (DAVIS palette), one per frame, equal to the tracker's own
label maps; the palette; bad prompts refused before the model loads. The network is the
seeded SAM 2.1 tiny at a 128 input (patched in for speed: the command builds 1024-input
networks from checkpoints)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from samkit.cli import main
from samkit.sam2.build import build_sam2_from_config
from samkit.sam2.variants import SAM2_VARIANTS
from samkit.video import Sam2Tracker
from samkit.video.meta_api import prompt_points
from samkit.video.writers import davis_palette, label_map
from video_reference import write_video


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    from reference import randomize

    config = replace(SAM2_VARIANTS["sam2.1_hiera_tiny"].config, image_size=128)
    net = build_sam2_from_config(config)
    randomize(net, 5)
    return net.eval()


def test_palette_and_label_map() -> None:
    pal = davis_palette()
    assert pal[:4].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]
    assert pal[5].tolist() == [128, 0, 128] and len({tuple(c) for c in pal}) == 256
    logits = np.full((2, 1, 2, 3), -5.0)
    logits[0, 0, 0, 0] = 3.0
    logits[1, 0, 0, 0] = 4.0  # both positive: the higher wins
    logits[0, 0, 1, 2] = 1.0
    assert label_map(logits).tolist() == [[2, 0, 0], [0, 0, 1]]


@pytest.mark.slow
def test_track_writes_indexed_pngs(
    model: torch.nn.Module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    import samkit.sam2.build as build

    frames = write_video(tmp_path / "frames", frames=4)
    monkeypatch.setattr(build, "build_sam2_model", lambda *a, **k: model)
    code = main(
        [
            "track",
            "model=x.pt",
            f"source={frames}",
            "points=[[30,40]]",
            "labels=[1]",
            "bboxes=[[8,0,32,22]]",
            f"project={tmp_path}",
            "name=run",
        ]
    )
    assert code == 0
    written = sorted((tmp_path / "run" / "masks").glob("*.png"))
    assert [p.name for p in written] == [f"{i:05d}.png" for i in range(4)]
    tracker = Sam2Tracker(model, fill_hole_area=8, non_overlap_masks=True, window=16)
    session = tracker.start(str(frames))
    for obj_id, (pts, labs, box) in enumerate(
        [(None, None, [8, 0, 32, 22]), (np.array([[30, 40]]), np.array([1]), None)], start=1
    ):
        prompt = prompt_points(pts, labs, box, True, True, (96, 128), 128, session.device)
        tracker.add_points(session, 0, obj_id, prompt)
    for result, path in zip(tracker.propagate(session), written, strict=True):
        with Image.open(path) as img:
            assert img.mode == "P" and img.getpalette()[3:6] == [128, 0, 0]
            got = np.asarray(img)
        assert np.array_equal(got, label_map(result.video_logits.numpy()))


def test_track_refuses_missing_prompt(tmp_path: Path) -> None:
    assert main(["track", "model=x.pt", f"source={tmp_path}"]) != 0

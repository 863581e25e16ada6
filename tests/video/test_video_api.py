"""samkit's video API without the reference package: Meta's video-notebook calls on samkit
(imports changed only), the tracker's bounded memory window, frames read lazily from a folder
and from a video file. A seeded random SAM 2.1 tiny network at a 128 input built by samkit."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from samkit import Sam2Tracker, SAM2VideoPredictor
from samkit.errors import ArgumentError
from samkit.sam2.build import build_sam2_from_config
from samkit.sam2.variants import SAM2_VARIANTS
from samkit.video import Points, TrackSettings, open_frames
from video_reference import write_video

SIZE = 128


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    from reference import randomize

    config = replace(SAM2_VARIANTS["sam2.1_hiera_tiny"].config, image_size=SIZE)
    net = build_sam2_from_config(config)
    randomize(net, 5)
    return net.eval()


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(Path(tmp_path_factory.mktemp("v")) / "frames", frames=6)


def test_notebook_calls(model: torch.nn.Module, frames: Path) -> None:
    """The calls of Meta's video notebook, in its order."""
    predictor = SAM2VideoPredictor(model, fill_hole_area=8)
    state = predictor.init_state(video_path=str(frames))
    predictor.reset_state(state)
    f, ids, masks = predictor.add_new_points_or_box(
        state,
        frame_idx=0,
        obj_id=1,
        points=np.array([[30, 40]], np.float32),
        labels=np.array([1], np.int32),
    )
    assert (f, ids, tuple(masks.shape)) == (0, [1], (1, 1, 96, 128))
    f, ids, masks = predictor.add_new_points_or_box(
        state, 0, 1, points=[[30, 40], [60, 70]], labels=[1, 0]
    )
    _, ids, masks = predictor.add_new_points_or_box(state, 0, 4, box=[8, 0, 32, 22])
    assert ids == [1, 4] and masks.shape[0] == 2
    segments = {
        i: {o: (m[k] > 0).numpy() for k, o in enumerate(obj_ids)}
        for i, obj_ids, m in predictor.propagate_in_video(state)
    }
    assert sorted(segments) == list(range(6))
    obj_ids, updated = predictor.remove_object(state, 4)
    assert obj_ids == [1] and [f for f, _ in updated] == [0]
    assert updated[0][1].shape == (1, 1, 96, 128)
    mask = np.zeros((96, 128), bool)
    mask[20:50, 10:50] = True
    _, ids, masks = predictor.add_new_mask(state, 3, 2, mask)
    assert ids == [1, 2]
    back = [f for f, _, _ in predictor.propagate_in_video(state, start_frame_idx=3, reverse=True)]
    assert back == [3, 2, 1, 0]
    f, ids, masks = predictor.clear_all_prompts_in_frame(state, 3, 2)
    assert (f, ids) == (3, [1, 2])
    with pytest.raises(ArgumentError):  # object 2 has no prompt left
        list(predictor.propagate_in_video(state))
    with pytest.raises(ArgumentError):
        predictor.add_new_points_or_box(state, 0, 1, points=[[1, 2]])


def test_window_keeps_memory_flat_and_results_equal(model: torch.nn.Module) -> None:
    """With a window, tracked outputs older than the memory can reach are dropped: the number
    kept stops growing and every result equals the unbounded run's. (A memory of 7 frames and
    7 pointers, so that a 10-frame video passes the window.)"""
    settings = TrackSettings(num_maskmem=7, max_obj_ptrs=7)
    rng = np.random.default_rng(0)
    video = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(10)]
    points = Points(torch.tensor([[[64.0, 64.0]]]), torch.tensor([[1]], dtype=torch.int32))
    results, kept = [], []
    for window in (None, 7):
        tracker = Sam2Tracker(model, settings=settings, window=window, feature_cache=1)
        session = tracker.start(video)
        tracker.add_points(session, 0, 1, points)
        logits = []
        for r in tracker.propagate(session):
            logits.append(r.logits)
            kept.append(len(session.objects[1].non_cond))
            absent = ~r.present
            assert bool((r.logits[absent] == -1024.0).all())  # "object absent": no mask at all
        results.append(logits)
        assert len(session.features) == 1
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)
    print("tracked outputs kept per frame (unbounded, then window 7):", kept)
    assert kept[9] == 9 and max(kept[10:]) == 7 and kept[-1] == 7
    with pytest.raises(ArgumentError):
        Sam2Tracker(model, settings=settings, window=3)


def test_video_file_frames(tmp_path: Path, frames: Path) -> None:
    cv2 = pytest.importorskip("cv2")
    path = tmp_path / "v.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (128, 96))
    images = sorted(frames.glob("*.jpg"))
    for p in images:
        writer.write(cv2.imread(str(p)))
    writer.release()
    source = open_frames(path)
    assert len(source) == len(images) and source.size == (96, 128)
    last = source.read(len(images) - 1)
    first = source.read(0)
    assert last.shape == first.shape == (96, 128, 3)
    assert not np.array_equal(first, last)
    with pytest.raises(ArgumentError):
        open_frames(tmp_path / "missing.mp4")


def test_build_sam2_video_predictor_settings() -> None:
    """Meta's builder: post-processing on by default (holes of 8 low-res pixels filled,
    clicked masks binarised for memory), off on request; unknown arguments refused."""
    from samkit import build_sam2_video_predictor

    config = "configs/sam2.1/sam2.1_hiera_t.yaml"
    on = build_sam2_video_predictor(config, device="cpu")
    assert on.tracker.fill_hole_area == 8 and on.tracker.settings.binarize_mask_from_points
    assert on.image_size == 1024 and on.tracker.settings.num_maskmem == 7
    off = build_sam2_video_predictor(
        config, device="cpu", apply_postprocessing=False, non_overlap_masks=True
    )
    assert off.tracker.fill_hole_area == 0 and not off.tracker.settings.binarize_mask_from_points
    assert off.tracker.non_overlap_masks
    with pytest.raises(ArgumentError):
        build_sam2_video_predictor(config, device="cpu", clear_non_cond_mem_around_input=True)

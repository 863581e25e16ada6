"""Results read by code written for Ultralytics: ``r.masks`` / ``r.boxes`` views compared with
Ultralytics' own ``Masks`` / ``Boxes`` built on the same data, and NumPy / device moves.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from samkit.masks import mask_to_rle
from samkit.results import Results

H, W = 48, 64


def _masks() -> np.ndarray:
    """Three masks: a rectangle, two separate blobs (two parts), and an empty one."""
    m = np.zeros((3, H, W), bool)
    m[0, 5:20, 10:30] = True
    cv2.circle(m1 := np.zeros((H, W), np.uint8), (12, 30), 6, 1, -1)
    cv2.circle(m1, (45, 35), 5, 1, -1)
    m[1] = m1.astype(bool)
    return m


def _results(**kw) -> Results:
    image = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    scores = np.array([0.9, 0.5, 0.1], np.float32)
    return Results(image, scores=scores, cls=np.array([0, 2, 1]), **kw)


@pytest.fixture(params=["dense", "rle"])
def r(request) -> Results:
    masks = _masks()
    if request.param == "dense":
        return _results(mask_array=masks, device="cpu")
    return _results(rles=[mask_to_rle(m) for m in masks], device="cpu")


def test_views_match_ultralytics(r) -> None:
    from ultralytics.engine.results import Boxes, Masks

    masks = _masks()
    theirs_m = Masks(torch.from_numpy(masks), (H, W))
    ours_m = r.masks
    assert isinstance(ours_m.data, torch.Tensor) and ours_m.data.dtype == torch.bool
    assert torch.equal(ours_m.data, theirs_m.data)
    assert ours_m.shape == tuple(theirs_m.shape) and ours_m.orig_shape == theirs_m.orig_shape
    assert len(ours_m) == len(theirs_m) == 3
    assert len(ours_m.xy) == len(theirs_m.xy) and len(ours_m.xyn) == 3
    for ours, theirs, mask in zip(ours_m.xy, theirs_m.xy, masks, strict=True):
        assert ours.dtype == theirs.dtype == np.float32 and ours.shape[1] == 2
        if not mask.any():
            assert ours.shape == theirs.shape == (0, 2)
            continue
        # Both outlines fill back to the same mask (vertex lists may differ in order/bridges).
        fill = [np.zeros((H, W), np.uint8) for _ in range(2)]
        for canvas, poly in zip(fill, (ours, theirs), strict=True):
            cv2.fillPoly(canvas, [np.round(poly).astype(np.int32)], 1)
            print("poly fill vs mask, pixels off:", int((canvas.astype(bool) != mask).sum()))
        assert (fill[0].astype(bool) == mask).mean() > 0.97
        assert (fill[1].astype(bool) == mask).mean() > 0.97
    np.testing.assert_allclose(ours_m.xyn[1] * [W, H], ours_m.xy[1], rtol=1e-6)

    data = torch.cat([torch.as_tensor(r.xyxy, dtype=torch.float32),
                      torch.as_tensor(r.scores)[:, None], torch.tensor([[0.0], [2.0], [1.0]])], 1)  # fmt: skip
    theirs_b = Boxes(data, (H, W))
    for name in ("data", "xyxy", "xywh", "xyxyn", "xywhn", "conf", "cls"):
        ours, theirs = getattr(r.boxes, name), getattr(theirs_b, name)
        assert isinstance(ours, torch.Tensor), name
        torch.testing.assert_close(ours, theirs, msg=name)
    assert r.boxes.id is None and not r.boxes.is_track
    np.testing.assert_array_equal(r.boxes.xyxy[0].numpy(), [10, 5, 29, 19])  # inclusive max


def test_indexing_numpy_and_client_idioms(r) -> None:
    # The idioms of Ultralytics code: .cpu().numpy(), .sum(dim=...), [0], np.asarray.
    areas = r.masks.data.sum(dim=(1, 2))
    np.testing.assert_array_equal(areas.numpy(), _masks().sum((1, 2)))
    first = r.masks.data[0].cpu().numpy()
    assert first.shape == (H, W) and first.sum() == 15 * 20
    np.testing.assert_array_equal(np.asarray(r.masks), _masks())
    np.testing.assert_array_equal(np.asarray(r.boxes), r.xyxy)
    assert np.asarray(r.masks, dtype=np.uint8).dtype == np.uint8
    one = r.masks[1]
    assert len(one) == 1 and one.shape == (1, H, W) and len(one.xy) == 1
    assert [len(m) for m in r.masks] == [1, 1, 1] and len(r.boxes[1:]) == 2
    n = r.numpy()
    assert isinstance(n.masks.data, np.ndarray) and isinstance(n.boxes.conf, np.ndarray)
    assert isinstance(r.masks.numpy().data, np.ndarray) and isinstance(
        n.cpu().boxes.cls, torch.Tensor
    )
    moved = n.to("cpu")
    assert moved.masks.data.device.type == "cpu" and moved.device == "cpu"
    assert r.probs is None and r.keypoints is None and r.obb is None
    # Shared storage: the moves copy nothing of the masks.
    assert n.dense_masks() is r.dense_masks()


def test_rgb_inside_bgr_at_the_edges() -> None:
    r = _results(mask_array=_masks())
    assert np.array_equal(r.orig_img, r.image[:, :, ::-1]) and r.orig_img.flags.c_contiguous
    plot = r.plot(masks=False, boxes=False, labels=False)
    np.testing.assert_array_equal(plot, r.orig_img)  # BGR out, as cv2.imwrite wants
    assert r.device is None and isinstance(r.masks.data, np.ndarray)


def test_cuda_views_when_available() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    r = _results(mask_array=_masks()).cuda()
    assert r.masks.data.is_cuda and r.boxes.xyxy.is_cuda
    assert r.cpu().masks.data.device.type == "cpu"

"""The prompt-shape table of samkit.prompts: one case per row, plus the rejected shapes."""

from __future__ import annotations

import numpy as np
import pytest

from samkit.errors import PromptError
from samkit.prompts import group_objects, normalize_prompts

HW = (60, 80)


def test_single_point_xy():
    objs = normalize_prompts(HW, points=[10, 20], labels=[1])
    assert len(objs) == 1
    assert objs[0].points.shape == (1, 2) and objs[0].labels.tolist() == [1]


def test_points_k2_are_one_object_with_negative_point():
    objs = normalize_prompts(HW, points=[[10, 20], [30, 40]], labels=[1, 0])
    assert len(objs) == 1
    assert objs[0].points.tolist() == [[10, 20], [30, 40]]
    assert objs[0].labels.tolist() == [1, 0]


def test_labels_default_to_foreground():
    objs = normalize_prompts(HW, points=[[[10, 20], [30, 40]]])
    assert objs[0].labels.tolist() == [1, 1]


@pytest.mark.parametrize(
    ("kwargs", "points_per_object"),
    [
        # Ultralytics' documented shapes (docs/en/models/sam.md) and its mask counts.
        ({"points": [900, 370], "labels": [1]}, [1]),
        ({"points": [[900, 370]], "labels": [1]}, [1]),
        ({"points": [[400, 370], [900, 370]], "labels": [1, 1]}, [1, 1]),  # 2 masks
        ({"points": [[400, 370], [900, 370]]}, [1, 1]),  # labels omitted: all positive
        ({"points": [[[400, 370], [900, 370]]], "labels": [[1, 1]]}, [2]),
        ({"points": [[[400, 370], [900, 370]]], "labels": [[1, 0]]}, [2]),
        # A flat list with a negative point stays one object (Ultralytics' #20168 splits it).
        ({"points": [[400, 370], [900, 370]], "labels": [1, 0]}, [2]),
        ({"points": [[400, 370], [900, 370], [10, 10]], "labels": [0, 1, 1]}, [3]),
        # A flat positive list with one box: the points refine that box's object.
        ({"points": [[40, 37], [50, 30]], "bboxes": [0, 0, 60, 50]}, [2]),
        # ... and with N boxes: one point per box, as Ultralytics.
        ({"points": [[40, 37], [50, 30]], "bboxes": [[0, 0, 60, 50], [1, 1, 70, 55]]}, [1, 1]),
    ],
)
def test_ultralytics_prompt_shapes(kwargs, points_per_object):
    objs = normalize_prompts(HW, **kwargs)
    assert [len(o.points) for o in objs] == points_per_object
    flat = np.concatenate([o.points for o in objs]).tolist()
    assert flat == np.asarray(kwargs["points"], float).reshape(-1, 2).tolist()  # order kept


def test_points_nk2_are_n_objects():
    pts = np.arange(12).reshape(3, 2, 2)
    objs = normalize_prompts(HW, points=pts, labels=[[1, 0], [1, 1], [0, 1]])
    assert len(objs) == 3
    assert [o.labels.tolist() for o in objs] == [[1, 0], [1, 1], [0, 1]]
    assert objs[2].points.tolist() == pts[2].tolist()


def test_ragged_points():
    pts = [[[1, 2]], [[3, 4], [5, 6], [7, 8]], [[9, 10], [11, 12]]]
    objs = normalize_prompts(HW, points=pts, labels=[[1], [1, 0, 0], [1, 0]])
    assert [len(o.points) for o in objs] == [1, 3, 2]
    assert objs[1].labels.tolist() == [1, 0, 0]
    # without labels every point is positive
    assert normalize_prompts(HW, points=pts)[1].labels.tolist() == [1, 1, 1]


def test_box_and_boxes():
    assert len(normalize_prompts(HW, bboxes=[1, 2, 30, 40])) == 1
    objs = normalize_prompts(HW, bboxes=[[1, 2, 30, 40], [5, 5, 10, 10]])
    assert len(objs) == 2 and objs[1].box.tolist() == [5, 5, 10, 10]


def test_boxes_with_points_combine_per_object():
    objs = normalize_prompts(
        HW, points=[[[5, 6]], [[7, 8]]], labels=[[1], [0]], bboxes=[[0, 0, 9, 9], [1, 1, 8, 8]]
    )
    assert len(objs) == 2
    assert objs[1].box.tolist() == [1, 1, 8, 8] and objs[1].labels.tolist() == [0]


def test_binary_masks():
    m = np.zeros(HW, dtype=bool)
    m[10:20, 10:30] = True
    objs = normalize_prompts(HW, masks=m)
    assert len(objs) == 1 and objs[0].mask is not None and objs[0].mask_logits is None
    objs = normalize_prompts(HW, masks=np.stack([m, ~m]).astype(np.uint8))
    assert len(objs) == 2 and objs[1].mask.sum() == (~m).sum()


def test_low_res_logits():
    logits = np.random.default_rng(0).normal(size=(2, 1, 256, 256)).astype(np.float32)
    objs = normalize_prompts(HW, masks=logits)
    assert len(objs) == 2 and objs[0].mask_logits.shape == (1, 256, 256)
    assert len(normalize_prompts(HW, masks=logits[0])) == 1


def test_torch_tensors_accepted():
    torch = pytest.importorskip("torch")
    objs = normalize_prompts(
        HW, points=torch.tensor([[1.0, 2.0]]), bboxes=torch.tensor([0, 0, 5, 5])
    )
    assert len(objs) == 1 and objs[0].box.tolist() == [0, 0, 5, 5]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"points": [[1, 2, 3]]}, "accepted"),
        ({"points": [[1, 2], [3, 4]], "labels": [1]}, "one label per point"),
        ({"points": [1, 2], "labels": [2]}, "0 (background)"),
        ({"points": [1, 2], "labels": [0.5]}, "integers"),
        ({"labels": [1]}, "without points"),
        ({"bboxes": [1, 2, 3]}, "accepted"),
        ({"bboxes": [10, 10, 5, 20]}, "x2 >= x1"),
        ({"points": [[[1, 2]], [[3, 4]]], "bboxes": [0, 0, 5, 5]}, "same number of objects"),
        ({"masks": np.zeros((10, 10), dtype=bool)}, "binary (H, W)"),
        ({"masks": np.full(HW, 0.5)}, "must be binary"),
        ({"points": [[float("nan"), 1]]}, "NaN"),
        ({"points": [[1e300, 1]]}, "at most 1e+06"),
        ({"bboxes": [0, 0, float("inf"), 5]}, "NaN or infinite"),
        ({"bboxes": [0, 0, 1e300, 5]}, "at most 1e+06"),
        ({"masks": np.full((1, 1, 256, 256), np.nan, np.float32)}, "NaN"),
        ({"points": "abc"}, "numbers"),
        ({"points": [[[1, 2]], [[3, 4], [5, 6]]], "labels": [1, 1, 1]}, "per-object label"),
    ],
)
def test_rejected_shapes_name_what_is_accepted(kwargs, needle):
    with pytest.raises(PromptError, match=None) as info:
        normalize_prompts(HW, **kwargs)
    print(info.value)
    assert needle in str(info.value)


def test_group_objects_by_point_count_in_order():
    pts = [[[1, 2]], [[3, 4], [5, 6]], [[7, 8]], [[9, 10], [11, 12]], [[0, 0]]]
    objs = normalize_prompts(HW, points=pts)
    assert list(group_objects(objs, 64)) == [[0, 2, 4], [1, 3]]
    assert list(group_objects(objs, 2)) == [[0, 2], [4], [1, 3]]

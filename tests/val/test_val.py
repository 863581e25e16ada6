"""samkit val: metrics against independent computations (pycocotools IoU on RLEs, the click
rule checked click by click, NoC on a case built to need exactly k clicks), the box protocol
against Meta's SamPredictor, reports, caching, CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from front_helpers import TINY_CONFIG, save_random_checkpoint
from samkit.evaluation.clicks import centroid, interior_point, next_click
from shapes_data import make_shapes_dataset

pytest.importorskip("pycocotools")


# ------------------------------------------------------------------------------ click rule
def _brute_interior(mask: np.ndarray) -> tuple[float, float]:
    """Max over mask pixels of the distance to the nearest non-mask pixel (border = outside),
    first in row-major order: brute force."""
    pad = np.pad(mask, 1)
    oy, ox = np.nonzero(~pad)
    best, where = -1.0, (0.0, 0.0)
    for y, x in zip(*np.nonzero(mask), strict=True):
        d = float(np.sqrt(((oy - (y + 1)) ** 2 + (ox - (x + 1)) ** 2).min()))
        if d > best:  # strict: the first maximum in row-major order wins
            best, where = d, (float(x), float(y))
    return where


@pytest.mark.parametrize(
    "shape",
    ["square", "wide", "ring", "two_parts", "touches_border", "diagonal"],
)
def test_interior_point_is_the_distance_maximum_lowest_index(shape):
    m = np.zeros((24, 30), bool)
    if shape == "square":
        m[4:11, 6:13] = True  # 7x7: unique centre (9, 7)
    elif shape == "wide":
        m[5:9, 3:20] = True  # 4 rows: ties along the middle rows -> lowest index
    elif shape == "ring":
        yy, xx = np.mgrid[:24, :30]
        d2 = (yy - 12) ** 2 + (xx - 15) ** 2
        m = (d2 <= 81) & (d2 > 16)
    elif shape == "two_parts":
        m[2:7, 2:7] = True
        m[10:19, 15:24] = True  # the larger part holds the maximum
    elif shape == "touches_border":
        m[0:9, 0:5] = True  # the image border counts as background
    else:
        m = np.eye(24, 30, dtype=bool) | np.eye(24, 30, k=1, dtype=bool)
    assert interior_point(m) == _brute_interior(m)
    x, y = interior_point(m)
    assert m[int(y), int(x)]
    if shape == "square":
        assert (x, y) == (9.0, 7.0)
    if shape == "two_parts":
        assert 15 <= x < 24 and 10 <= y < 19


def test_next_click_region_choice_and_sign():
    gt = np.zeros((40, 40), bool)
    gt[5:30, 5:30] = True
    # Missed a 9x9 block inside the object, plus a thin false-positive line: positive click
    # at the missed block's centre.
    pred = gt.copy()
    pred[10:19, 10:19] = False
    pred[35, 2:38] = True
    assert next_click(pred, gt) == (14.0, 14.0, 1)
    # A deep false-positive blob outside and a thin miss: negative click in the blob.
    pred = gt.copy()
    pred[5:30, 5] = False
    pred[31:40, 31:40] = True
    x, y, label = next_click(pred, gt)
    assert label == 0 and (x, y) == _brute_interior(pred & ~gt)
    # Equal depth: negative (RITM: positive only when the false negatives are deeper).
    pred = gt.copy()
    pred[10:13, 10:13] = False
    pred[33:36, 33:36] = True
    assert next_click(pred, gt)[2] == 0
    assert next_click(gt, gt) is None
    assert centroid(np.pad(np.ones((3, 5), bool), ((2, 0), (1, 0)))) == (3.0, 3.0)


# ------------------------------------------------------------------------------ NoC exactly k
class SquaresEngine:
    """An engine that 'segments' by the clicks: the union of the GT squares holding a positive
    click, plus a distractor square until a negative click lands in it. Checks that the
    previous logits come back as mask_input."""

    image_size = 64
    low_res = 64

    def __init__(self, squares: list[tuple[int, int, int]], distractor: tuple[int, int, int]):
        self.squares, self.distractor = squares, distractor
        self.state = None
        self.given: list[list[np.ndarray]] = []
        self.returned: list[np.ndarray] = []

    @property
    def is_image_set(self) -> bool:
        return self.state is not None

    def set_image(self, image):
        self.state = image.shape

    def reset_image(self):
        self.state = None

    def get_state(self):
        return self.state

    def set_state(self, state):
        self.state = state

    @staticmethod
    def _square(y: int, x: int, s: int) -> np.ndarray:
        m = np.zeros((64, 64), bool)
        m[y : y + s, x : x + s] = True
        return m

    def decode(self, objects, multimask_output):
        out = []
        for o in objects:
            self.given.append([] if o.mask_logits is None else [o.mask_logits.copy()])
            m = np.zeros((64, 64), bool)
            pts = [(int(x), int(y), lab) for (x, y), lab in zip(o.points, o.labels, strict=True)]
            for sq in self.squares:
                if any(lab == 1 and self._square(*sq)[y, x] for x, y, lab in pts):
                    m |= self._square(*sq)
            if not any(lab == 0 and self._square(*self.distractor)[y, x] for x, y, lab in pts):
                m |= self._square(*self.distractor)
            out.append(np.where(m, 5.0, -5.0).astype(np.float32)[None])
        low = np.stack(out)
        self.returned.append(low)
        c = 3 if multimask_output else 1
        return np.repeat(low, c, axis=1), np.tile(np.linspace(0.9, 0.7, c), (len(objects), 1))

    def upscale(self, low):
        return low[:, 0] > 0


def _square_dataset(tmp_path: Path, squares) -> Path:
    import cv2

    from samkit.formats.mask_png import write_mask_png

    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), np.zeros((64, 64, 3), np.uint8))
    gt = np.zeros((64, 64), bool)
    for y, x, s in squares:
        gt[y : y + s, x : x + s] = True
    write_mask_png(tmp_path / "masks" / "a" / "0.png", gt)
    return tmp_path


def test_noc_on_a_case_built_to_need_exactly_three_clicks(tmp_path):
    from samkit import val

    squares = [(4, 4, 9), (40, 4, 9)]  # one object in two parts
    engine = SquaresEngine(squares, distractor=(20, 40, 15))  # deeper than a square
    data = _square_dataset(tmp_path, squares)
    res = val(engine, data, protocols="clicks", max_clicks=6, save=False, verbose=False)
    (row,) = res.instances
    # click 1: interior of the upper square (lowest index) -> square + distractor
    # click 2: the distractor is the deeper error -> negative -> upper square only
    # click 3: the lower square is missed -> positive -> exact
    assert row.prompt == "clicks 8 8 1;47 27 0;8 44 1"
    np.testing.assert_allclose(row.ious[:3], [81 / (162 + 225), 0.5, 1.0])
    assert row.noc == {"85": 3, "90": 3} and row.clicks == 3
    m = res.metrics["clicks"]
    assert m["noc@85"] == 3 and m["noc@90"] == 3 and m["reach@90"] == 1.0
    np.testing.assert_allclose([m["miou@1"], m["miou@3"], m["miou@5"]], [81 / 387, 1.0, 1.0])
    # previous low-res logits are fed back as mask_input from the second click on
    assert engine.given[0] == []
    for k in (1, 2):
        np.testing.assert_array_equal(engine.given[k][0], engine.returned[k - 1][0])


# ------------------------------------------------------------------------------ shapes dataset
@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return save_random_checkpoint(tmp_path_factory.mktemp("val") / "tiny.pt", TINY_CONFIG, seed=1)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return make_shapes_dataset(tmp_path_factory.mktemp("shapes"), 2, seed=1, min_objects=3)


def _coco_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    from pycocotools import mask as mask_utils

    enc = [mask_utils.encode(np.asfortranarray(m.astype(np.uint8))) for m in (pred, gt)]
    return float(mask_utils.iou([enc[0]], [enc[1]], [0])[0, 0])


def _predict(predictor, multimask: bool, **prompt) -> np.ndarray:
    """Meta-style predict; with multimask the highest predicted IoU is kept."""
    masks, scores, _ = predictor.predict(**prompt, multimask_output=multimask)
    return masks[int(np.argmax(scores))]


def test_metrics_equal_an_independent_computation(tiny, shapes, tmp_path):
    import cv2

    from samkit import SAM
    from samkit.datasets import open_dataset
    from samkit.predictor import SamPredictor

    model = SAM(tiny, device="cpu")
    res = model.val(data=shapes, protocols="box,point,center", project=tmp_path, plots=False,
                    verbose=False)  # fmt: skip
    rows = {(r.protocol, r.image, r.instance_id): r for r in res.instances}
    ds = open_dataset(shapes)
    cats = {i.category for s in ds for i in s.instances}
    assert "ring" in cats and "pair" in cats  # holes and several parts
    ref: dict[str, list[float]] = {"box": [], "point": [], "center": []}
    predictor = SamPredictor(model.model)
    for s in ds:
        predictor.set_image(cv2.imread(str(s.path))[..., ::-1].copy())
        for inst in s.instances:
            ys, xs = np.nonzero(inst.mask)
            box = np.array([xs.min(), ys.min(), xs.max(), ys.max()], np.float64)
            pt = np.array([_brute_interior(inst.mask)])
            c = np.array([[xs.mean(), ys.mean()]])
            one = np.array([1])
            preds = {
                "box": _predict(predictor, False, box=box),
                "point": _predict(predictor, True, point_coords=pt, point_labels=one),
                "center": _predict(predictor, True, point_coords=c, point_labels=one),
            }
            for p, pred in preds.items():
                ref[p].append(_coco_iou(pred, inst.mask))
                assert rows[(p, s.name, inst.instance_id)].iou == pytest.approx(
                    ref[p][-1], abs=1e-12
                )
    images = [s.name for s in ds for _ in s.instances]
    for p, values in ref.items():
        m = res.models["tiny.pt"][p]
        assert m["miou"] == pytest.approx(np.mean(values), abs=1e-12)
        per_image = [
            np.mean([v for v, i in zip(values, images, strict=True) if i == k])
            for k in dict.fromkeys(images)
        ]
        assert m["miou_image"] == pytest.approx(np.mean(per_image), abs=1e-12)
        assert sum(b["n"] for b in m["by_size"].values()) == len(values)
        assert 0.0 < np.mean(values) < 1.0 and len(set(values)) > 2, "degenerate IoUs"
    assert res.metrics["box"]["n"] == sum(len(s.instances) for s in ds) >= 6
    doc = json.loads((res.save_dir / "metrics.json").read_text())
    assert doc["metrics"]["tiny.pt"]["box"]["miou"] == pytest.approx(res.metrics["box"]["miou"])
    assert doc["protocol"]["select"] == {"box": "single", "point": "best", "center": "best"}
    with open(res.save_dir / "instances.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 3 * res.metrics["box"]["n"]
    assert {t["size"] for t in table} <= {"small", "medium", "large"}


# ------------------------------------------------------------------------------ Meta parity
@pytest.mark.parity
def test_box_miou_equals_meta_sampredictor(tmp_path, shapes):
    """The box protocol's mIoU (torch backend) equals Meta's SamPredictor fed the same tight
    boxes, IoU by pycocotools, to 1e-4 (seeded reduced ViT weights in Meta's format)."""
    import cv2
    from segment_anything import SamPredictor as MetaPredictor

    from reference import SMALL_VIT, randomize, reference_vit, save_checkpoint
    from samkit import val
    from samkit.datasets import open_dataset

    meta = reference_vit(SMALL_VIT)
    ckpt = save_checkpoint(randomize(meta, seed=3), tmp_path / "small.pth")
    res = val(str(ckpt), shapes, protocols="box", device="cpu", save=False, verbose=False,
              max_images=1)  # fmt: skip
    predictor = MetaPredictor(meta)
    ious = []
    for s in open_dataset(shapes)[:1]:
        predictor.set_image(cv2.imread(str(s.path))[..., ::-1].copy())
        for inst in s.instances:
            ys, xs = np.nonzero(inst.mask)
            box = np.array([xs.min(), ys.min(), xs.max(), ys.max()], np.float64)
            masks, _, _ = predictor.predict(box=box, multimask_output=False)
            ious.append(_coco_iou(masks[0], inst.mask))
    print(f"box mIoU samkit {res.metrics['box']['miou']:.6f} Meta {np.mean(ious):.6f}")
    assert 0.0 < np.mean(ious) < 1.0 and len(ious) == res.metrics["box"]["n"]
    assert abs(res.metrics["box"]["miou"] - np.mean(ious)) <= 1e-4


# ------------------------------------------------------------------------------ COCO counts
def test_coco_edge_cases_through_val(tmp_path, tiny):
    from samkit import val
    from shapes_data import edge_case_coco

    data = edge_case_coco(tmp_path)
    res = val(tiny, data, protocols="box", device="cpu", project=tmp_path / "runs",
              plots=False, verbose=False)  # fmt: skip
    d = json.loads((res.save_dir / "metrics.json").read_text())["dataset"]
    assert (d["images"], d["annotations"], d["crowd_skipped"], len(d["problems"])) == (2, 3, 2, 4)
    assert res.metrics["box"]["n"] == 3 and res.metrics["box"]["images"] == 2
    (tmp_path / "b.png").write_bytes(b"not a png")  # a bad file: reported, the run goes on
    res = val(tiny, data, protocols="box", device="cpu", save=False, verbose=False)
    assert res.metrics["box"]["n"] == 2 and len(res.dataset["problems"]) == 5
    assert res.dataset["problems"][-1]["file"] == str(tmp_path / "b.png")


# ------------------------------------------------------------------------------ cache, runs, CLI
def test_second_protocol_reuses_embeddings_and_runs_never_overwrite(tmp_path, tiny, shapes):
    from samkit import SAM

    model = SAM(tiny, device="cpu")
    first = model.val(data=shapes, protocols="box", project=tmp_path, verbose=False, plots=False)
    second = model.val(data=shapes, protocols="point", project=tmp_path, verbose=False)
    assert first.speed["tiny.pt"]["encoder_passes"] == 2
    assert second.speed["tiny.pt"]["encoder_passes"] == 0  # memory store kept with the model
    assert (first.save_dir.name, second.save_dir.name) == ("val", "val2")
    assert (first.save_dir / "metrics.json").is_file()
    assert {"iou_histogram.png", "worst_tiny.pt_point.png"} <= {
        p.name for p in second.save_dir.iterdir()
    }
    cache = tmp_path / "emb"
    disk = SAM(tiny, device="cpu").val(
        data=shapes, protocols="box", cache=cache, save=False, verbose=False
    )
    again = SAM(tiny, device="cpu").val(
        data=shapes, protocols="box", cache=cache, save=False, verbose=False
    )
    assert (disk.speed["tiny.pt"]["encoder_passes"], again.speed["tiny.pt"]["encoder_passes"]) == (
        2,
        0,
    )
    assert again.metrics["box"]["miou"] == first.metrics["box"]["miou"]


def test_cli_val_side_by_side_and_usage_errors(tmp_path, tiny, shapes, capsys):
    from samkit.cli import main

    other = save_random_checkpoint(tmp_path / "other.pt", TINY_CONFIG, seed=2)
    code = main(["val", f"model={tiny},{other}", f"data={shapes}", "protocols=box,clicks",
                 "max_clicks=2", f"project={tmp_path}", "device=cpu", "progress=false",
                 "plots=false"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "tiny.pt" in out and "other.pt" in out and "miou@1" in out
    doc = json.loads((tmp_path / "val" / "metrics.json").read_text())
    assert set(doc["metrics"]) == {"tiny.pt", "other.pt"}
    assert (
        doc["metrics"]["other.pt"]["clicks"]["miou_curve"][0]
        == doc["metrics"]["other.pt"]["clicks"]["miou@1"]
    )
    assert main(["val", f"data={shapes}", "protocols=box,boxes"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("samkit: error: protocols must be among")
    assert main(["val", f"data={shapes}", "select=top"]) == 2
    assert main(["val", f"data={tmp_path / 'missing.json'}"]) == 2
    assert "data" in capsys.readouterr().err


# ------------------------------------------------------------------------------ other protocols
def test_everything_detections_and_teacher_protocols(tmp_path, tiny, shapes):
    from samkit import SAM, val
    from samkit.datasets import open_dataset

    ds = open_dataset(shapes)
    n = sum(len(s.instances) for s in ds)
    model = SAM(tiny, device="cpu")
    res = val(model, ds, protocols="everything,detections,teacher", detections=str(shapes),
              teacher=model, everything={"points_per_side": 4, "pred_iou_thresh": 0.0,
              "stability_score_thresh": 0.0}, save=False, verbose=False)  # fmt: skip
    ev, det, te = (res.metrics[p] for p in ("everything", "detections", "teacher"))
    assert ev["n"] == n and ev["masks_per_image"] > 0
    assert ev["recall@0.5"] == np.mean(
        [r.iou >= 0.5 for r in res.instances if r.protocol == "everything"]
    )
    assert det["n"] == n and det["detections"] == n and 0.0 <= det["ap"] <= 1.0
    assert te["miou"] == 1.0 and te["n"] == 2 * n  # a model agrees with itself
    # unlabelled images: a 3x3 grid of points, then the boxes of the teacher's masks
    other = save_random_checkpoint(tmp_path / "other.pt", TINY_CONFIG, seed=2)
    free = val(other, shapes.parent / "images", protocols="teacher", teacher=model, save=False,
               verbose=False)  # fmt: skip
    t = free.metrics["teacher"]
    assert free.dataset["format"] == "images" and t["n"] > 18 and 0.0 < t["miou"] < 1.0


def test_onnx_backend_gives_the_torch_numbers(tmp_path, tiny, shapes):
    pytest.importorskip("onnxruntime")
    from samkit import SAM

    torch_model = SAM(tiny, device="cpu")
    torch_model.export(format="onnx", output=tmp_path / "tiny_onnx", check=False)
    onnx_model = SAM(tmp_path / "tiny_onnx")
    kw = {"protocols": "box,clicks", "max_clicks": 3, "save": False, "verbose": False}
    a, b = torch_model.val(data=shapes, **kw), onnx_model.val(data=shapes, **kw)
    assert b.speed[next(iter(b.speed))]["encoder_passes"] == 2
    for p in ("box", "clicks"):
        ra = [r.iou for r in a.instances if r.protocol == p]
        rb = [r.iou for r in b.instances if r.protocol == p]
        print(p, "max |IoU torch - ONNX|", np.max(np.abs(np.subtract(ra, rb))))
        np.testing.assert_allclose(rb, ra, atol=1e-3)
        assert abs(a.metrics[p]["miou"] - b.metrics[p]["miou"]) < 5e-3


# ------------------------------------------------------------------------------ options
class CandidatesEngine(SquaresEngine):
    """Three candidates per prompt -- nothing, the upper half of the truth, all of it -- with
    predicted IoUs 0.9 / 0.5 / 0.1; the single output is the upper half."""

    def __init__(self, truth: np.ndarray):
        super().__init__([], (0, 0, 0))
        self.truth = truth

    def decode(self, objects, multimask_output):
        half = self.truth.copy()
        half[32:] = False
        cands = [np.zeros_like(half), half, self.truth] if multimask_output else [half]
        low = np.stack([np.where(c, 5.0, -5.0) for c in cands]).astype(np.float32)
        scores = np.array([0.9, 0.5, 0.1][: len(cands)], np.float32)
        return np.repeat(low[None], len(objects), 0), np.tile(scores, (len(objects), 1))


@pytest.mark.parametrize(
    ("select", "box", "point"),
    [(None, 0.5, 0.0), ("best", 0.0, 0.0), ("first", 0.0, 0.0), ("oracle", 1.0, 1.0),
     ("single", 0.5, 0.5)],
)  # fmt: skip
def test_mask_selection_rules(tmp_path, select, box, point):
    from samkit import val

    squares = [(4, 4, 9), (40, 4, 9)]
    data = _square_dataset(tmp_path, squares)
    truth = np.zeros((64, 64), bool)
    for y, x, s in squares:
        truth[y : y + s, x : x + s] = True
    res = val(CandidatesEngine(truth), data, protocols="box,point", select=select, save=False,
              verbose=False)  # fmt: skip
    assert res.metrics["box"]["miou"] == pytest.approx(box)
    assert res.metrics["point"]["miou"] == pytest.approx(point)
    assert res.settings["select"]["box"] == (select or "single")


def test_box_jitter_is_seeded_and_stays_in_the_image():
    from samkit.evaluation.protocols import _rng, jitter_box

    box = np.array([10.0, 20.0, 49.0, 39.0])
    a = jitter_box(box, 0.1, _rng(0, "img.png", 3), (60, 80))
    assert np.array_equal(a, jitter_box(box, 0.1, _rng(0, "img.png", 3), (60, 80)))
    assert not np.array_equal(a, jitter_box(box, 0.1, _rng(1, "img.png", 3), (60, 80)))
    assert not np.array_equal(a, box) and np.array_equal(
        jitter_box(box, 0.0, _rng(0, "x", 0), (60, 80)), box
    )
    many = np.stack([jitter_box(box, 2.0, _rng(s, "i", 0), (60, 80)) for s in range(50)])
    assert many.min() >= 0 and many[:, [0, 2]].max() <= 79 and many[:, [1, 3]].max() <= 59
    assert (many[:, 0] <= many[:, 2]).all() and (many[:, 1] <= many[:, 3]).all()

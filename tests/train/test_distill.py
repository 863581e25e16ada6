"""Distillation (``samkit distill``): the teacher-embedding cache, the student, the run through the
shared training loop, and the student checkpoint in the reference loaders.

The teacher is a reduced ViT (tests/reference.py SMALL_VIT at a 128 px input), seeded; its
final LayerNorm gets weights near 1 (the seeded-random recipe leaves them near 0.02, which would
make the embeddings almost constant and the regression trivial). The student is a small TinyViT.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from reference import SMALL_VIT, randomize
from samkit.build import build_from_config, build_sam
from samkit.datasets import open_dataset
from samkit.distillation import CacheMismatchError, TeacherCache
from samkit.distillation.cache import fill
from samkit.distillation.data import TeacherEncoder, model_input
from samkit.distillation.losses import embedding_loss, prompt_loss
from samkit.distillation.student import build_student, official_state_dict
from samkit.embeddings import EmbeddingStore
from samkit.errors import SamkitError, UnknownKeyError
from samkit.modeling import Sam
from samkit.registry import SamConfig, TinyViTConfig
from shapes_data import make_shapes_dataset

SIZE = 128
SMALL_TINY_VIT = TinyViTConfig(
    embed_dims=(32, 64, 96, 128),
    depths=(1, 1, 2, 1),
    num_heads=(1, 2, 3, 4),
    window_sizes=(7, 7, 14, 7),
    img_size=SIZE,
)


def make_teacher(seed: int = 0, size: int = SIZE) -> Sam:
    teacher = build_from_config(SamConfig(encoder=replace(SMALL_VIT, img_size=size)))
    randomize(teacher, seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        neck_norm = teacher.image_encoder.neck[3].weight
        neck_norm.copy_(1.0 + 0.1 * torch.randn(neck_norm.shape, generator=gen))
    return teacher.eval()


def make_student(seed: int = 1) -> Sam:
    torch.manual_seed(seed)
    return build_from_config(SamConfig(encoder=SMALL_TINY_VIT))


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    make_shapes_dataset(root, 14, size=(96, 128), seed=3)
    return root / "images"


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    # These tiny models spend more time waking OpenMP threads than computing on a loaded CPU.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _cache(root: Path, teacher: Sam, name: str = "small") -> TeacherCache:
    from samkit.embeddings import model_key

    return TeacherCache(
        root,
        model_key(teacher),
        teacher_name=name,
        image_size=SIZE,
        embed_shape=(256, SIZE // 16, SIZE // 16),
        shard_size=5,
    )


# ---------------------------------------------------------------------------- cache
def test_cache_second_pass_reads_shards_and_refuses_other_teacher(
    images: Path, tmp_path: Path
) -> None:
    teacher = make_teacher()
    samples = list(open_dataset(images))[:6]
    encoder = TeacherEncoder(teacher)
    report, hashes = fill(_cache(tmp_path, teacher), samples, encoder, flips=(False, True))
    assert report.computed == 12 and report.reused == 0 and encoder.images == 12
    assert hashes == [EmbeddingStore.key(s.path) for s in samples]
    index = json.loads((tmp_path / "index.json").read_text())
    assert len(index["entries"]) == 12 and len(index["shards"]) == 3  # shards of 5, 5, 2

    again = TeacherEncoder(teacher)
    cache = _cache(tmp_path, teacher)
    report2, _ = fill(cache, samples, again, flips=(False, True))
    print(f"first pass: {encoder.calls} teacher calls; second pass: {again.calls}")
    assert again.calls == 0 and report2.reused == 12 and report2.computed == 0

    # The flipped entry is the teacher's embedding of the flipped image (not a flipped target).
    image = samples[0].image()
    x, _ = model_input(image, SIZE, encoder.mean, encoder.std, flip=True)
    with torch.no_grad():
        live = teacher.image_encoder(torch.from_numpy(x)[None])[0].numpy()
    cached = np.asarray(cache.get(hashes[0], flip=True), np.float32)
    assert np.abs(cached - live).max() < 2e-2 * np.abs(live).max()  # fp16 storage
    unflipped = np.asarray(cache.get(hashes[0], flip=False), np.float32)
    assert np.abs(unflipped[..., ::-1] - live).mean() > 0.1 * np.abs(live).mean()
    with pytest.raises(UnknownKeyError, match="no teacher embedding cached for f00d:1 in"):
        cache.get("f00d", flip=True)  # still a KeyError for callers catching that

    with pytest.raises(CacheMismatchError, match=r"built with teacher small .* not with this") as e:
        _cache(tmp_path, make_teacher(seed=5), name="other")
    assert "other" in str(e.value)


def test_killed_caching_pass_continues(images: Path, tmp_path: Path) -> None:
    teacher = make_teacher()
    samples = list(open_dataset(images))[:7]
    calls = {"n": 0}
    encoder = TeacherEncoder(teacher)

    def dies_on_third_batch(batch: list[np.ndarray], flip: bool) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return encoder(batch, flip)

    with pytest.raises(KeyboardInterrupt):
        fill(_cache(tmp_path, teacher), samples, dies_on_third_batch, batch_size=2)
    assert len(_cache(tmp_path, teacher)) == 0 or len(_cache(tmp_path, teacher)) == 5
    done_before = len(_cache(tmp_path, teacher))
    again = TeacherEncoder(teacher)
    report, _ = fill(_cache(tmp_path, teacher), samples, again, batch_size=2)
    assert report.reused == done_before and report.computed == 7 - done_before
    assert len(_cache(tmp_path, teacher)) == 7


# ---------------------------------------------------------------------------- student, losses
def test_student_layout_and_losses() -> None:
    teacher = make_teacher()
    student = build_student(make_student(), teacher)
    for part in ("prompt_encoder", "mask_decoder"):
        ours, theirs = getattr(student, part).state_dict(), getattr(teacher, part).state_dict()
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    state = official_state_dict(student)
    assert state["image_encoder.head.weight"].shape == (1000, 128)
    # the registered MobileSAM architecture at the teacher's input size, randomly initialised
    mobile = build_student("mobile_sam", teacher)
    assert mobile.image_encoder.img_size == SIZE and mobile.config.encoder.embed_dims[-1] == 320
    with pytest.raises(SamkitError, match="student"):
        build_student("no_such_model", teacher)

    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        target = teacher.image_encoder(x)
    student.train()
    student.mask_decoder.fast = False
    emb = student.image_encoder(x)
    for kind in ("mse", "huber", "l1"):
        assert float(embedding_loss(emb, target, kind).detach()) > 0
    with pytest.raises(SamkitError, match="loss must be one of"):
        embedding_loss(emb, target, "l3")
    gen = torch.Generator().manual_seed(0)
    loss = prompt_loss(
        student,
        teacher,
        emb,
        target,
        torch.tensor([[96, 128], [96, 128]]),
        prompts_per_image=2,
        generator=gen,
    )
    loss.backward()
    grads = [p.grad for p in student.image_encoder.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)


# ---------------------------------------------------------------------------- the run
def test_distill_lowers_embedding_error_and_raises_agreement(images: Path, tmp_path: Path) -> None:
    import samkit

    teacher = make_teacher()
    common = dict(
        data=str(images),
        val_images=4,
        cache=str(tmp_path / "cache"),
        batch=2,
        warmup=0,
        project=str(tmp_path / "runs"),
        progress=False,
    )
    before = samkit.distill(
        teacher_model=teacher, student_model=make_student(), epochs=1, lr=1e-12, **common
    )
    after = samkit.distill(
        teacher_model=teacher, student_model=make_student(), epochs=6, lr=5e-3, **common
    )
    first, last = before.rows[-1], after.rows[-1]
    print(
        f"held-out embedding MSE {first['val/embed_mse']:.4f} -> {last['val/embed_mse']:.4f}; "
        f"teacher agreement point mIoU {first['val/point_mIoU']:.3f} -> "
        f"{last['val/point_mIoU']:.3f}, box mIoU {first['val/box_mIoU']:.3f} -> "
        f"{last['val/box_mIoU']:.3f}"
    )
    assert last["val/embed_mse"] < first["val/embed_mse"] / 4
    assert last["val/point_mIoU"] > first["val/point_mIoU"] + 0.05
    assert last["val/box_mIoU"] > first["val/box_mIoU"] + 0.05

    run = after.run_dir
    assert run is not None and (run / "results.csv").is_file() and (run / "args.yaml").is_file()
    model = build_sam(after.best)  # a complete checkpoint samkit loads
    assert model.config.encoder == replace(SMALL_TINY_VIT, img_size=1024)  # size not stored


# ---------------------------------------------------------------------------- reference loaders
def _mobile_sam_masks(
    path: Path, image: np.ndarray, box: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from mobile_sam import SamPredictor as RefPredictor
        from mobile_sam import sam_model_registry

        ref = sam_model_registry["vit_t"]()
    ref.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))  # strict
    predictor = RefPredictor(ref.eval())
    predictor.set_image(image)
    masks, _, logits = predictor.predict(box=box, multimask_output=False)
    return masks[0], logits[0]


def _samkit_masks(path: Path, image: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mask (H, W) bool and low-res logits (256, 256) for one box."""
    from samkit.predictor import SamPredictor

    predictor = SamPredictor(build_sam(path))
    predictor.set_image(image)
    masks, _, logits = predictor.predict(box=box, multimask_output=False)
    return masks[0], logits[0]


def _assert_same_masks(
    ours: tuple[np.ndarray, np.ndarray], theirs: tuple[np.ndarray, ...], who: str
) -> None:
    differ = float(np.mean(ours[0] != theirs[0]))
    print(f"{who}: {ours[0].sum()} vs {theirs[0].sum()} mask pixels, {differ:.2e} differ", end="")
    assert differ < 1e-3
    if len(theirs) > 1:  # low-res logits
        err = float(np.abs(ours[1] - theirs[1]).max())
        print(f", logits max |diff| {err:.2e} (scale {np.abs(ours[1]).max():.2f})", end="")
        assert err < 1e-3 * max(1.0, float(np.abs(ours[1]).max()))
    print()


def test_mobile_sam_student_checkpoint_loads_in_mobile_sam_reference(
    images: Path, tmp_path: Path
) -> None:
    """The official layout (TinyViT's unused classifier included): MobileSAM's builder loads
    the student strictly and gives samkit's masks."""
    from samkit.distillation import save_checkpoint

    student = build_student("mobile_sam", make_teacher(size=1024))
    path = save_checkpoint(student, tmp_path / "student_mobile_sam.pt")
    assert build_sam(path).variant == "mobile_sam"
    image = open_dataset(images)[0].image()
    box = np.array([20.0, 15.0, 90.0, 80.0])
    _assert_same_masks(
        _samkit_masks(path, image, box), _mobile_sam_masks(path, image, box), "MobileSAM"
    )


@pytest.mark.slow
def test_distilled_mobile_sam_in_references_and_ultralytics(
    images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real (short) distillation into MobileSAM's TinyViT at 1024 px: best_mobile_sam.pt loads
    in samkit, the MobileSAM reference and Ultralytics' SAM(), with the same masks."""
    import shutil

    import samkit

    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "ultralytics_cfg"))
    ultralytics = pytest.importorskip("ultralytics")
    for i, src in enumerate(sorted(images.glob("*.png"))[:3]):
        shutil.copy(src, (tmp_path / ("val" if i == 2 else "train")).mkdir(exist_ok=True) or
                    tmp_path / ("val" if i == 2 else "train") / src.name)  # fmt: skip
    result = samkit.distill(
        teacher_model=make_teacher(size=1024),
        data=str(tmp_path / "train"),
        val=str(tmp_path / "val"),
        epochs=1,
        batch=2,
        agreement=False,
        cache=str(tmp_path / "cache"),
        project=str(tmp_path / "runs"),
        progress=False,
    )
    path = result.best.with_name("best_mobile_sam.pt")
    sample = open_dataset(tmp_path / "val")[0]
    image = sample.image()
    boxes = [np.array(b, float) for b in ([20, 15, 90, 80], [0, 0, 127, 95], [60, 40, 120, 90])]
    ours = [_samkit_masks(path, image, box) for box in boxes]
    predictor = ultralytics.SAM(str(path))
    # Masks of random decoders may be all empty: compare the image embeddings too.
    from samkit.predictor import SamPredictor

    engine = SamPredictor(build_sam(path))
    x, _ = engine.preprocess(image)
    with torch.no_grad():
        theirs = predictor.model.image_encoder.eval()(x)
        mine = engine.model.image_encoder(x)
    err = float((theirs - mine).abs().max())
    print(f"Ultralytics vs samkit embedding max |diff| {err:.2e}")
    assert err < 1e-3 * float(mine.abs().max())
    for box, mine in zip(boxes, ours, strict=True):
        _assert_same_masks(mine, _mobile_sam_masks(path, image, box), "MobileSAM")
        results = predictor(str(sample.path), bboxes=[box.tolist()], verbose=False)
        masks = results[0].masks
        theirs = np.zeros_like(mine[0])  # Ultralytics drops empty masks
        if masks is not None and len(masks.data):
            theirs = masks.data[0].cpu().numpy().astype(bool)
        _assert_same_masks(mine, (theirs,), "Ultralytics")


# ---------------------------------------------------------------------------- CLI
def test_cli_usage_and_setting_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from samkit.cli import main

    assert main(["distill", "teacher=sam_b"]) == 2  # data is required
    assert "samkit: error:" in capsys.readouterr().err
    assert main(["distill", f"data={tmp_path}", "loss=l3"]) == 1
    assert "loss must be one of mse, huber, l1, got 'l3'" in capsys.readouterr().err
    assert main(["distill", f"data={tmp_path}", "stage=3"]) == 1
    assert "stage must be 1 or 2" in capsys.readouterr().err


@pytest.mark.slow
def test_stage2_prompts_in_the_loop_from_a_stage1_checkpoint(images: Path, tmp_path: Path) -> None:
    """Stage 2 continues from stage 1's best.pt (student=<file>), trains the decoder too, logs
    the mask term, and lowers it. (Measured here: teacher agreement box 0.747 -> 0.672, point
    0.314 -> 0.197 after 10 stage-2 steps at lr 1e-4 with the decoder trained: printed, not
    asserted; on this tiny random setup stage 2 is not yet shown to help.)"""
    import samkit

    teacher = make_teacher()
    common = dict(
        data=str(images),
        val_images=4,
        cache=str(tmp_path / "cache"),
        batch=2,
        warmup=0,
        project=str(tmp_path / "runs"),
        progress=False,
    )
    one = samkit.distill(
        teacher_model=teacher, student_model=make_student(), epochs=6, lr=5e-3, **common
    )
    two = samkit.distill(
        teacher_model=teacher,
        student=str(one.best),
        stage=2,
        prompts=2,
        train_decoder=True,
        epochs=2,
        lr=1e-4,
        **common,
    )
    a, b = max(one.rows, key=lambda r: r["fitness"]), two.rows[-1]
    print(
        f"stage 1 best: box {a['val/box_mIoU']:.3f} point {a['val/point_mIoU']:.3f}; "
        f"stage 2: box {b['val/box_mIoU']:.3f} point {b['val/point_mIoU']:.3f}, "
        f"mask loss {two.rows[0]['train/masks']:.3f} -> {b['train/masks']:.3f}"
    )
    assert "train/masks" in b and 0 < b["train/masks"] < two.rows[0]["train/masks"]


# ---------------------------------------------------------------------------- resume, torchrun
class _Killed(Exception):
    pass


@pytest.mark.slow
def test_resume_after_kill_equals_uninterrupted(images: Path, tmp_path: Path) -> None:
    from samkit.distillation.task import DistillSettings, DistillTask
    from samkit.train import TrainConfig, fit

    class Killed(DistillTask):
        calls = 0

        def batch(self, indices: list[int], epoch: int) -> dict:
            if epoch == 1:
                Killed.calls += 1
                if Killed.calls == 2:
                    raise _Killed
            return super().batch(indices, epoch)

    teacher = make_teacher()
    settings = dict(data=str(images), val_images=4, cache=str(tmp_path / "cache"), agreement=False)
    loop = dict(epochs=2, batch=2, lr=5e-3, warmup=0, progress=False, name="distill")

    def run(task_type: type, project: str, **extra: object):  # type: ignore[no-untyped-def]
        task = task_type(DistillSettings(**settings), teacher=teacher, student=make_student())
        return fit(task, TrainConfig(project=str(tmp_path / project), **loop, **extra))

    full = run(DistillTask, "a")
    with pytest.raises(_Killed):
        run(Killed, "b")
    resumed = run(DistillTask, "b", resume=True)
    a = torch.load(full.last, weights_only=True)
    b = torch.load(resumed.last, weights_only=True)
    diff = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    print(f"resumed vs uninterrupted distillation: max |dw| = {diff:.3g}")
    assert diff < 1e-5 and [r["epoch"] for r in resumed.rows] == [1, 2]


@pytest.mark.slow
def test_torchrun_two_processes(
    images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two CPU processes (gloo): rank 0 fills the cache, rank 1 reads it; one run folder.
    (TinyViT's batch norms see half the batch per process, so weights are not compared.)"""
    import csv
    import os
    import sys

    from samkit.distillation.student import save_checkpoint
    from samkit.train.distributed import spawn

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(sys.path))
    teacher_file = tmp_path / "teacher.pt"
    torch.save(make_teacher().state_dict(), teacher_file)
    student_file = save_checkpoint(build_student(make_student(), make_teacher()), tmp_path / "s.pt")
    kwargs = dict(
        teacher=str(teacher_file),
        student=str(student_file),
        data=str(images),
        val_images=4,
        cache=str(tmp_path / "cache"),
        epochs=2,
        batch=4,
        lr=5e-3,
        warmup=0,
        agreement=False,
        device="cpu",
        progress=False,
        project=str(tmp_path / "runs"),
    )
    assert spawn("samkit.distillation.api:distill", kwargs, nproc=2) == 0
    run = tmp_path / "runs" / "distill"
    assert not (tmp_path / "runs" / "distill2").exists()  # only rank 0 wrote
    rows = list(csv.DictReader((run / "results.csv").open()))
    mse = [float(r["val/embed_mse"]) for r in rows]
    print(f"2 processes: held-out embedding MSE per epoch {mse}")
    assert len(rows) == 2 and mse[-1] < mse[0]
    assert build_sam(run / "weights" / "best.pt").config.encoder.embed_dims == (32, 64, 96, 128)


def test_stage2_ground_truth_prompts_follow_the_flip(tmp_path: Path) -> None:
    """A labelled dataset gives stage 2 its GT boxes / interior points in the input frame,
    mirrored with the image for the flipped copy; the loss runs on them."""
    from samkit import transforms
    from samkit.distillation.data import EmbeddingPairs

    teacher = make_teacher()
    ds = open_dataset(make_shapes_dataset(tmp_path / "coco", 2, size=(96, 128), seed=4))
    cache = _cache(tmp_path / "cache", teacher)
    encoder = TeacherEncoder(teacher)
    _, hashes = fill(cache, ds, encoder, flips=(False, True))
    pairs = EmbeddingPairs(
        ds, hashes, cache, mean=encoder.mean, std=encoder.std, flips=(False, True), gt_prompts=3
    )
    plain, flipped = pairs[0], pairs[1]
    inst = ds[0].instances[0]
    expected = transforms.apply_boxes(inst.box.astype(float), (96, 128), SIZE)
    assert int(plain["gt_count"]) == min(3, len(ds[0].instances))
    assert np.allclose(plain["gt_boxes"][0].numpy(), expected, atol=1e-4)
    x0, y0, x1, y1 = inst.box.astype(float)
    mirrored = transforms.apply_boxes(np.array([127 - x1, y0, 127 - x0, y1]), (96, 128), SIZE)
    assert np.allclose(flipped["gt_boxes"][0].numpy(), mirrored, atol=1e-4)
    px, py = (float(v) for v in plain["gt_points"][0])  # input frame = original here (128 px)
    assert inst.mask[round(py), round(px)]

    student = build_student(make_student(), teacher).train()
    student.mask_decoder.fast = False
    batch = {k: torch.stack([plain[k], flipped[k]]) for k in plain}
    emb = student.image_encoder(batch["image"])
    loss = prompt_loss(
        student,
        teacher,
        emb,
        batch["target"],
        batch["input_size"],
        prompts_per_image=3,
        generator=torch.Generator().manual_seed(0),
        gt=batch,
    )
    assert torch.isfinite(loss) and float(loss.detach()) > 0

"""Fine-tuning with the defaults, a whole epoch: seconds per epoch (training plus the held-out
evaluation) and peak resident memory of ``samkit train``, before (another source tree, e.g. the
main branch) and now, against a plain PyTorch loop doing the same work, all in one run.

    python benchmarks/bench_train_epoch.py                                # now vs plain loop
    python benchmarks/bench_train_epoch.py --before /path/to/main/src     # and before

Data: 40 generated 384 x 512 images with 2-4 shapes each (``tests/shapes_data.py``), YOLO-seg,
held-out set = the same 40 images (as in the issue that measured it); MobileSAM with the
seeded weights of the parity tests (nothing downloaded); the defaults: decoder only, frozen
encoder, cached embeddings, batch 8, mixed prompts, 2 click rounds, box + point held-out mIoU.

The plain loop: the same network, embeddings computed once into a list, per step each image's
objects decoded with the same simulated prompts and SAM's loss (samkit's ``PromptedSam``, one
``backward`` per step), AdamW; then the held-out images decoded from the cached embeddings with
a box and an interior point per object, upsampled to the image, IoU. Each variant runs in its
own fresh process; set-up (encoding the 40 images) is reported apart from the epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"


def _data(root: Path, images: int) -> tuple[Path, Path]:
    from common import seeded_checkpoint  # puts tests/ on sys.path
    from shapes_data import make_shapes_dataset

    yaml = make_shapes_dataset(root / "data", images, size=(384, 512), seed=0, fmt="yolo")
    yaml.write_text(yaml.read_text().replace("train: images/train", "train: images"))
    return yaml, seeded_checkpoint(root / "mobile_sam.pt", "mobile_sam")


def _hwm_gb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    return float("nan")


def samkit_child(yaml: str, ckpt: str, epochs: int, project: str) -> dict[str, Any]:
    """``samkit train`` with the defaults, in this process."""
    from samkit.train.api import train

    start = time.perf_counter()
    result = train(model=ckpt, data=yaml, epochs=epochs, project=project, progress=False,
                   device="cpu")  # fmt: skip
    total = time.perf_counter() - start
    assert result is not None
    epoch_times = [float(r["time"]) for r in result.rows]
    return {"setup_s": total - sum(epoch_times), "epoch_s": epoch_times, "peak_gb": _hwm_gb(),
            "box_mIoU": [r.get("val/box_mIoU") for r in result.rows]}  # fmt: skip


def plain_child(yaml: str, ckpt: str, epochs: int) -> dict[str, Any]:
    """The plain PyTorch loop (see the module docstring)."""
    import numpy as np
    import torch

    from samkit.build import build_sam
    from samkit.datasets import open_dataset
    from samkit.predictor import SamPredictor
    from samkit.train.data import prepare_item
    from samkit.train.losses import LossWeights
    from samkit.train.model import PromptedSam, PromptSettings, StepItem, select_trainable

    start = time.perf_counter()
    sam = build_sam(ckpt)
    select_trainable(sam, ["decoder"])
    train_set, held = list(open_dataset(yaml, split="train")), list(open_dataset(yaml, split="val"))
    predictor = SamPredictor(sam)
    features: dict[str, torch.Tensor] = {}
    for sample in train_set + held:
        if str(sample.path) not in features:
            predictor.set_image(sample.image())
            features[str(sample.path)] = predictor.get_image_state().features
    items = [prepare_item(s, str(s.path), sam.image_size) for s in train_set]
    net = PromptedSam(sam, PromptSettings(), LossWeights(balance_below=0.0), False)
    opt = torch.optim.AdamW([p for p in sam.parameters() if p.requires_grad], lr=1e-4)
    setup = time.perf_counter() - start
    times = []
    for epoch in range(epochs):
        t0 = time.perf_counter()
        net.train()
        order = np.random.default_rng(epoch).permutation(len(items))
        for s in range(len(items) // 8):
            batch = []
            for i in order[s * 8 : (s + 1) * 8]:
                it = items[int(i)]
                assert it is not None
                batch.append(StepItem(features[it.key], None, it.targets.float() / 255, it.boxes,
                                      np.random.default_rng([epoch, int(i)])))  # fmt: skip
            (net(batch).loss / 8).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        _plain_eval(sam, held, features)
        times.append(time.perf_counter() - t0)
    return {"setup_s": setup, "epoch_s": times, "peak_gb": _hwm_gb()}


def _plain_eval(sam: Any, held: list[Any], features: dict[str, Any]) -> float:
    """Box and interior-point mIoU on the held-out images from their cached embeddings."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from samkit import transforms
    from samkit.evaluation.clicks import interior_point

    sam.eval()
    ious = []
    with torch.no_grad():
        for sample in held:
            size = (sample.height, sample.width)
            h, w = transforms.preprocess_shape(size[0], size[1], sam.image_size)
            gts = np.stack([inst.mask for inst in sample.instances])
            boxes = transforms.apply_boxes(np.stack([i.box for i in sample.instances]), size,
                                           sam.image_size)  # fmt: skip
            pts = np.array([interior_point(m) for m in gts], np.float64)
            pts = transforms.apply_coords(pts, size, sam.image_size)
            emb = features[str(sample.path)]
            box_lo, _ = sam.decode(
                emb, boxes=torch.as_tensor(boxes).float(), multimask_output=False
            )
            labels = torch.ones(len(pts), 1)
            pt_lo, score = sam.decode(emb, points=(torch.as_tensor(pts).float()[:, None], labels))
            pt_lo = pt_lo[torch.arange(len(pts)), score.argmax(1)][:, None]
            for lo in (box_lo, pt_lo):
                up = F.interpolate(lo, (sam.image_size, sam.image_size), mode="bilinear")
                up = F.interpolate(up[..., :h, :w], size, mode="bilinear")[:, 0] > 0
                pred = up.numpy()
                inter = (pred & gts).sum((1, 2))
                ious += list(inter / np.maximum((pred | gts).sum((1, 2)), 1))
    return float(np.mean(ious))


def _run(
    kind: str, src: Path, yaml: Path, ckpt: Path, epochs: int, project: Path
) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(src), str(HERE), str(HERE.parent / "tests")]),
    }
    code = (f"import json, bench_train_epoch as b; print('RESULT', json.dumps(b.{kind}_child("
            f"{str(yaml)!r}, {str(ckpt)!r}, {epochs}{', ' + repr(str(project)) if kind == 'samkit' else ''})))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    if not line:
        print(out.stderr[-3000:])
        return {}
    return json.loads(line[-1][7:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, help="the source tree (src/) to measure as before")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--images", type=int, default=40, help="a multiple of the batch, 8")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from common import machine_info

    print(machine_info())
    with tempfile.TemporaryDirectory() as tmp:
        yaml, ckpt = _data(Path(tmp), args.images)
        runs = {"samkit now": ("samkit", SRC), "plain loop": ("plain", SRC)}
        if args.before:
            runs["samkit before"] = ("samkit", args.before)
        results = {}
        for name, (kind, src) in runs.items():
            results[name] = res = _run(
                kind, src, yaml, ckpt, args.epochs, Path(tmp) / name.replace(" ", "_")
            )
            if res:
                per_epoch = sum(res["epoch_s"]) / len(res["epoch_s"])
                print(f"{name}: {per_epoch:.1f} s per epoch (set-up {res['setup_s']:.1f} s), "
                      f"peak RSS {res['peak_gb']:.2f} GB", flush=True)  # fmt: skip
        plain = results.get("plain loop")
        for name in ("samkit now", "samkit before"):
            if plain and results.get(name):
                ratio = sum(results[name]["epoch_s"]) / sum(plain["epoch_s"])
                print(f"{name}: {ratio:.2f}x the plain loop's epoch time (goal <= 1.3x)")


if __name__ == "__main__":
    main()

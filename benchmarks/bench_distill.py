"""Distillation throughput: images/s of a stage-1 step with the teacher's embeddings read from
the on-disk cache vs running the teacher on every step, and what MobileSAM's budget needs.

    python benchmarks/bench_distill.py                          # CPU: SAM-B teacher at 512 px
    python benchmarks/bench_distill.py --device cuda --size 1024 --teacher sam_h --batch 8

Seeded random weights (nothing downloaded); the student is MobileSAM's TinyViT at the teacher's
input size. One step = student forward + backward + AdamW update on ``--batch`` images; the
cached variant reads the targets from :class:`samkit.distillation.TeacherCache` shards (fp16,
memory-mapped) filled once beforehand (that pass's images/s is printed too); the other runs
the teacher's encoder on the batch first. MobileSAM trained 8 epochs over ~100k images (1 % of
SA-1B) on one GPU in under a day: 100k x 8 / 86400 s = 9.3 images/s; the line for it compares
the cached rate against that (meaningful at --size 1024 on a GPU).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from common import interleave, machine_info
from samkit.build import build_from_config
from samkit.distillation.cache import TeacherCache
from samkit.distillation.data import TeacherEncoder
from samkit.distillation.losses import embedding_loss
from samkit.distillation.student import build_student
from samkit.registry import SamConfig, get_variant

NEEDED = 100_000 * 8 / 86_400  # images/s: MobileSAM's 1 % of SA-1B, 8 epochs, one day


def _models(teacher_name: str, size: int, device: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    encoder = replace(get_variant(teacher_name).config.encoder, img_size=size)
    teacher = build_from_config(SamConfig(encoder=encoder)).to(device).eval()
    student = build_student("mobile_sam", teacher).to(device).train()
    return teacher, student


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="sam_b", help="teacher architecture (random weights)")
    parser.add_argument("--size", type=int, default=512, help="model input side (official: 1024)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(machine_info())
    teacher, student = _models(args.teacher, args.size, args.device)
    encoder = TeacherEncoder(teacher, args.device)
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 255, (args.size * 3 // 4, args.size, 3), np.uint8)
        for _ in range(args.batch)
    ]
    grid = args.size // 16
    optimizer = torch.optim.AdamW(student.image_encoder.parameters(), lr=1e-4)
    x = torch.stack([torch.from_numpy(_input(im, encoder)) for im in images]).to(args.device)

    with tempfile.TemporaryDirectory() as tmp:
        cache = TeacherCache(
            Path(tmp), "bench", image_size=args.size, embed_shape=(256, grid, grid)
        )
        start = time.perf_counter()
        embeddings = encoder(images, False)
        _sync(args.device)
        fill_rate = len(images) / (time.perf_counter() - start)
        for i, emb in enumerate(embeddings):
            cache.add(f"img{i}", False, f"img{i}", emb)
        cache.flush()

        def step(target: torch.Tensor) -> None:
            loss = embedding_loss(student.image_encoder(x), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            _sync(args.device)

        def cached() -> None:
            rows = [np.asarray(cache.get(f"img{i}"), np.float32) for i in range(len(images))]
            step(torch.from_numpy(np.stack(rows)).to(args.device))

        def teacher_per_step() -> None:
            with torch.no_grad():
                target = teacher.image_encoder(x)
            step(target)

        timings = interleave(
            {"cached": cached, "teacher per step": teacher_per_step},
            repeats=args.repeats,
            warmup=1,
        )
    rate = {name: args.batch / t.median for name, t in timings.items()}
    print(
        f"teacher {args.teacher}, student mobile_sam, {args.size} px, batch {args.batch}, "
        f"{args.device}"
    )
    print(f"  caching pass (teacher only): {fill_rate:.2f} images/s, once")
    for name, r in rate.items():
        print(f"  step, {name}: {r:.2f} images/s ({timings[name].median:.3f} s/step)")
    print(f"  cached / teacher per step: {rate['cached'] / rate['teacher per step']:.2f}x")
    verdict = "PASS" if rate["cached"] >= NEEDED else "FAIL"
    print(
        f"  100k images x 8 epochs in 24 h needs {NEEDED:.1f} images/s; cached: "
        f"{rate['cached']:.2f} images/s -> {verdict}"
        + ("" if args.size == 1024 and args.device.startswith("cuda") else " (not 1024 px on GPU)")
    )
    return 0


def _input(image: np.ndarray, encoder: TeacherEncoder) -> np.ndarray:
    from samkit.distillation.data import model_input

    return model_input(image, encoder.model.image_size, encoder.mean, encoder.std)[0]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


if __name__ == "__main__":
    sys.exit(main())

"""Decoder fine-tuning throughput: prompts/s of a training step with cached image embeddings
(what ``samkit train`` does with a frozen encoder) against running the frozen encoder in every
step, and the memory of one step.

    python benchmarks/bench_train.py                         # MobileSAM, CPU
    python benchmarks/bench_train.py --model sam_b --device cuda --amp both

Seeded random weights (nothing is downloaded); 2 images of 1024 x 768 per step, 8 objects each,
mixed prompts with 1 error-click round (so 16 objects x 2 rounds = 32 prompts per step).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch

from common import interleave, machine_info, peak_memory
from samkit.build import build_from_config
from samkit.registry import VARIANTS
from samkit.train.losses import LossWeights
from samkit.train.model import PromptedSam, PromptSettings, StepItem, select_trainable
from samkit.train.schedule import make_optimizer

IMAGES, OBJECTS, CLICKS = 2, 8, 1


def _items(net: PromptedSam, device: torch.device, seed: int) -> list[dict[str, Any]]:
    """Per image: input tensor, embedding, disc targets (N, 256, 256) and their boxes."""
    size = net.sam.image_size
    side = size // 4
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(IMAGES):
        x = torch.randn(1, 3, size, size, device=device)
        with torch.no_grad():
            emb = net.sam.image_encoder(x)
        yy, xx = np.mgrid[0:side, 0:side]
        targets, boxes = [], []
        for _ in range(OBJECTS):
            cy, cx, r = rng.uniform(40, side - 40), rng.uniform(40, side - 40), rng.uniform(8, 30)
            targets.append(((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.float32))
            boxes.append([4 * (cx - r), 4 * (cy - r), 4 * (cx + r), 4 * (cy + r)])
        out.append({"x": x, "emb": emb, "targets": torch.as_tensor(np.stack(targets), device=device),
                    "boxes": np.asarray(boxes, np.float32)})  # fmt: skip
    return out


def _setup(model: str, device: str, cached: bool, amp: bool) -> Any:
    """Builds the network and returns one training step (a closure)."""
    torch.manual_seed(0)
    sam = build_from_config(VARIANTS[model].config).to(device)
    select_trainable(sam, ["decoder"])
    net = PromptedSam(sam, PromptSettings(clicks=CLICKS, objects=OBJECTS), LossWeights(), False)
    net.train()
    dev = torch.device(device)
    data = _items(net, dev, 0)
    opt = make_optimizer([p for p in net.parameters() if p.requires_grad], 1e-4, 0.01)
    counter = {"step": 0}

    def step() -> None:
        counter["step"] += 1
        batch = []
        for i, d in enumerate(data):
            if cached:
                emb = d["emb"]
            else:
                with torch.no_grad():
                    emb = sam.image_encoder(d["x"])
            rng = np.random.default_rng([counter["step"], i])
            batch.append(StepItem(emb, None, d["targets"], d["boxes"], rng))
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            out = net(batch)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if dev.type == "cuda":
            torch.cuda.synchronize()

    return step


def _cuda_peak(model: str, cached: bool, amp: bool) -> float:
    step = _setup(model, "cuda", cached, amp)
    step()
    torch.cuda.reset_peak_memory_stats()
    step()
    return torch.cuda.max_memory_allocated() / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default="mobile_sam", choices=sorted(VARIANTS))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--amp", default="off", choices=["off", "on", "both"], help="bf16 autocast")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-timing", action="store_true")
    args = ap.parse_args()
    print(machine_info())
    prompts = IMAGES * OBJECTS * (CLICKS + 1)
    amps = {"off": [False], "on": [True], "both": [False, True]}[args.amp]
    for amp in amps:
        if args.skip_timing:
            _memory(args, amp)
            continue
        t0 = time.perf_counter()
        steps = {
            "cached embeddings": _setup(args.model, args.device, True, amp),
            "encoder every step": _setup(args.model, args.device, False, amp),
        }
        print(f"setup {time.perf_counter() - t0:.1f} s")
        timing = interleave(steps, repeats=args.repeats, warmup=1)
        cached = timing["cached embeddings"].median
        for name, t in timing.items():
            print(f"{args.model} amp={'bf16' if amp else 'off'} {name}: {t.median:.3f} s/step "
                  f"= {prompts / t.median:.1f} prompts/s ({cached / t.median:.2f}x of cached)")  # fmt: skip
        if not args.skip_memory:
            _memory(args, amp)


def _memory(args: argparse.Namespace, amp: bool) -> None:
    """Memory a step adds, cached and uncached (peak CUDA memory on GPUs)."""
    for cached_flag, name in ((True, "cached embeddings"), (False, "encoder every step")):
        if args.device.startswith("cuda"):
            peak = _cuda_peak(args.model, cached_flag, amp)
            print(f"  peak CUDA memory, {name}: {peak:.0f} MiB")
            continue
        mem = peak_memory(_setup, args.model, args.device, cached_flag, amp)
        if mem is None:
            print(f"  step memory, {name}: the measuring process failed")
        else:
            print(f"  step memory, {name}: +{mem[1]:.0f} MiB (process peak {mem[0]:.0f} MiB)")


if __name__ == "__main__":
    main()

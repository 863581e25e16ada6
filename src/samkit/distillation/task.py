"""Distillation as a task of the shared training loop (:func:`samkit.train.fit`): the teacher's
embeddings are cached before the first step, then every step regresses them (stage 1) and,
in stage 2, also matches the teacher's masks for prompts in the loop."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from samkit.distillation import cache as cache_mod
from samkit.distillation.data import EmbeddingPairs, TeacherEncoder
from samkit.distillation.losses import EMBEDDING_LOSSES, embedding_loss, prompt_loss
from samkit.distillation.student import StudentSpec, build_student, official_state_dict
from samkit.errors import SamkitError
from samkit.modeling import Sam
from samkit.train import DistContext, StepOutput, TrainTask

__all__ = ["DistillSettings", "DistillTask"]

logger = logging.getLogger("samkit")


@dataclass
class DistillSettings:
    """What to distil (the loop's own settings are :class:`samkit.train.TrainConfig`'s).

    teacher: checkpoint or model name (any SAM family model). student: registered name or
    alias (random initialisation), or a checkpoint file (its encoder's weights).
    data: image folder or any dataset :func:`samkit.datasets.open_dataset` reads (only the
    images are used). val: held-out images (default: the last ``val_images`` of ``data``).
    cache: teacher-embedding cache folder (default: one per teacher under samkit's cache dir).
    loss: stage-1 embedding loss, mse / huber / l1. flip: also train on left-right flipped
    images (each flip encoded by the teacher, doubling the cache). stage: 1 encoder only,
    2 also prompts in the loop (BCE + dice against the teacher's masks), with
    ``prompt_weight`` on that term, ``prompts`` random points (and their teacher-mask boxes)
    per image (or, with ``gt_prompts`` and a labelled dataset, each image's ground-truth
    boxes and interior points, up to ``prompts``; the targets stay the teacher's masks for
    them), and the decoder trained too when ``train_decoder``. agreement_points:
    teacher-agreement points per held-out image in validation (0: embedding MSE only).
    """

    teacher: str = "sam_h"
    student: str = "mobile_sam"
    data: str = ""
    images: str | None = None
    val: str | None = None
    val_images: int = 8
    cache: str | None = None
    loss: str = "mse"
    flip: bool = False
    stage: int = 1
    prompt_weight: float = 1.0
    prompts: int = 4
    train_decoder: bool = False
    gt_prompts: bool = True
    agreement: bool = True
    shard_size: int = 32

    def check(self) -> None:
        if not self.data:
            raise SamkitError("data is required: a folder of images or a dataset")
        if self.loss not in EMBEDDING_LOSSES:
            raise SamkitError(
                f"loss must be one of {', '.join(EMBEDDING_LOSSES)}, got {self.loss!r}"
            )
        if self.stage not in (1, 2):
            raise SamkitError(f"stage must be 1 or 2, got {self.stage}")
        for key in ("val_images", "prompts"):
            if int(getattr(self, key)) < 0:
                raise SamkitError(f"{key} must be >= 0, got {getattr(self, key)}")


class _Frozen:
    """Holds the teacher outside the trained module (not a submodule: it is neither saved,
    nor wrapped by DistributedDataParallel, nor given to the optimiser)."""

    def __init__(self, teacher: Sam) -> None:
        self.sam = teacher


class DistillModule(nn.Module):
    """The trained network (the student SAM); ``forward(batch)`` is one distillation step."""

    def __init__(self, student: Sam, teacher: Sam, settings: DistillSettings) -> None:
        super().__init__()
        self.student = student
        self.frozen = _Frozen(teacher)
        self.settings = settings

    def forward(self, batch: dict[str, Any]) -> StepOutput:
        emb = self.student.image_encoder(batch["image"])
        target = batch["target"]
        n = emb.shape[0]
        # Per-item sums: the loop divides by the global batch.
        embed = embedding_loss(emb, target, self.settings.loss) * n
        logs: dict[str, Any] = {"embed": embed.detach()}
        loss = embed
        if self.settings.stage == 2 and self.settings.prompts > 0:
            masks = (
                prompt_loss(
                    self.student,
                    self.frozen.sam,
                    emb,
                    target,
                    batch["input_size"],
                    prompts_per_image=self.settings.prompts,
                    generator=batch["generator"],
                )
                * n
            )
            logs["masks"] = masks.detach()
            loss = loss + self.settings.prompt_weight * masks
        return StepOutput(loss, n, logs)


def _open_images(data: str | os.PathLike[str], images: str | None) -> Sequence[Any]:
    from samkit.datasets import open_dataset

    # unreadable entries (annotations, image headers) are reported there and left out
    return open_dataset(data, images).readable()


class DistillTask(TrainTask):
    """Stage 1 (and optionally 2) distillation of ``settings.student`` from ``settings.teacher``.

    ``teacher`` / ``student``: already built networks to use instead of the names (Python API).
    """

    name = "distill"
    fitness = "fitness"

    def __init__(
        self,
        settings: DistillSettings,
        *,
        teacher: Sam | None = None,
        student: Sam | None = None,
        progress: bool = True,
    ) -> None:
        settings.check()
        self.progress = progress
        self.settings = settings
        self._teacher_net, self._student_net = teacher, student
        self.unused_parameters = settings.stage == 2
        self._teacher_front: Any = None

    # ------------------------------------------------------------------ setup
    def setup(self, ctx: DistContext) -> None:
        from samkit.entrance import load_network

        self.ctx = ctx
        s = self.settings
        teacher = load_network(self._teacher_net or s.teacher, "distill (teacher)")
        teacher = teacher.eval().to(ctx.device)
        for p in teacher.parameters():
            p.requires_grad_(False)
        spec: StudentSpec = self._student_net if self._student_net is not None else s.student
        student = build_student(spec, teacher).to(ctx.device)
        student.prompt_encoder.requires_grad_(False)
        student.mask_decoder.requires_grad_(s.stage == 2 and s.train_decoder)
        student.mask_decoder.fast = False  # the plain decoder for training
        self.teacher, self.net = teacher, DistillModule(student, teacher, s)
        self.cache, self.teacher_encoder = self._open_cache(teacher)
        samples = _open_images(s.data, s.images)
        # Held out: the val images, else the FIRST val_images of data (val's max_images).
        held = _open_images(s.val, None) if s.val else samples[: s.val_images]
        train = samples if s.val else samples[s.val_images :]
        if not train:
            raise SamkitError(
                f"data: no training images left in {s.data} ({len(samples)} readable) after "
                f"the val_images={s.val_images} held out; lower val_images or pass val= "
                "(held-out images of their own)"
            )
        flips = (False, True) if s.flip else (False,)
        train_hashes = self._fill(train, flips)
        self.held = list(held)
        self.held_hashes = self._fill(self.held, (False,))
        mean, std = self.teacher_encoder.mean, self.teacher_encoder.std
        gt = s.prompts if s.stage == 2 and s.gt_prompts else 0
        self.pairs = EmbeddingPairs(
            train, train_hashes, self.cache, mean=mean, std=std, flips=flips, gt_prompts=gt
        )
        self.held_pairs = EmbeddingPairs(
            self.held, self.held_hashes, self.cache, mean=mean, std=std
        )

    def _open_cache(self, teacher: Sam) -> tuple[cache_mod.TeacherCache, TeacherEncoder]:
        from samkit.embeddings import model_key
        from samkit.weights import cache_dir

        s = self.settings
        size = teacher.image_size
        key = model_key(teacher, extra=f"distill-teacher:{size}")
        root = Path(s.cache) if s.cache else cache_dir() / "distill" / key[:16]
        grid = teacher.prompt_encoder.image_embedding_size
        shape = (teacher.prompt_encoder.embed_dim, int(grid[0]), int(grid[1]))
        store = cache_mod.TeacherCache(
            root,
            key,
            teacher_name=str(s.teacher if self._teacher_net is None else "in-memory teacher"),
            image_size=size,
            embed_shape=shape,
            shard_size=s.shard_size,
        )
        return store, TeacherEncoder(teacher, self.ctx.device)

    def _fill(self, samples: Sequence[Any], flips: Sequence[bool]) -> list[str]:
        """Cache the teacher's embeddings (rank 0 computes, the others wait and re-read)."""
        from tqdm import tqdm

        if self.ctx.is_main:
            total = len(samples) * len(flips)
            with tqdm(total=total, desc="teacher embeddings", unit="img",
                      disable=not self.progress) as bar:  # fmt: skip
                report, hashes = cache_mod.fill(
                    self.cache, samples, self.teacher_encoder, flips=flips, progress=bar.update,
                    batch_size=1 if self.ctx.device.type == "cpu" else 4,
                )  # fmt: skip
            for path, reason in report.problems:
                logger.warning("skipped %s", reason if path in reason else f"{path}: {reason}")
            logger.info(
                "teacher embeddings: %d computed, %d read from %s",
                report.computed,
                report.reused,
                self.cache.root,
            )
        self.ctx.barrier()
        if not self.ctx.is_main:
            self.cache = cache_mod.TeacherCache(
                self.cache.root,
                self.cache.teacher,
                image_size=self.cache.image_size,
                embed_shape=self.cache.embed_shape,  # type: ignore[arg-type]
            )
            _, hashes = cache_mod.fill(self.cache, samples, self.teacher_encoder, flips=flips)
        return hashes

    # ------------------------------------------------------------------ steps
    def module(self) -> nn.Module:
        return self.net

    def __len__(self) -> int:
        return len(self.pairs)

    def batch(self, indices: list[int], epoch: int) -> dict[str, Any]:
        items = [self.pairs[i] for i in indices]
        device = self.ctx.device
        seed = hash((epoch, *indices)) % 2**63
        out: dict[str, Any] = {"generator": torch.Generator().manual_seed(seed)}
        for key in items[0]:
            stacked = torch.stack([it[key] for it in items])
            out[key] = stacked.to(device) if key in ("image", "target") else stacked
        return out

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self, epoch: int) -> dict[str, float]:
        """Held-out embedding error and teacher agreement; the student encodes each held-out
        image once, and the agreement decodes from those embeddings."""
        from samkit.embeddings import EmbeddingStore, StoredState

        student = self.net.student
        was_training = student.training
        student.eval()
        errors = []
        store = EmbeddingStore(None, f"student-epoch{epoch}", memory_items=1 << 30)
        for i in range(len(self.held_pairs)):
            item = self.held_pairs[i]
            emb = student.image_encoder(item["image"][None].to(self.ctx.device))
            errors.append(float(embedding_loss(emb, item["target"][None].to(emb.device))))
            sample = self.held[self.held_pairs.items[i].sample]
            size = (int(item["input_size"][0]), int(item["input_size"][1]))
            state = StoredState(emb.float().cpu().numpy(), (sample.height, sample.width), size)
            store.put(EmbeddingStore.key(sample.path), state)
        student.train(was_training)
        out = {"val/embed_mse": float(np.mean(errors)) if errors else float("nan")}
        if self.settings.agreement and self.held:
            point, box = self._agreement(student, store)
            out.update({"val/point_mIoU": point, "val/box_mIoU": box})
            out["fitness"] = (point + box) / 2
        else:
            out["fitness"] = -out["val/embed_mse"]
        return out

    def _agreement(self, student: Sam, store: Any) -> tuple[float, float]:
        """Teacher agreement on the held-out images through ``samkit val``'s ``teacher``
        protocol (point and box mIoU; the student's training mode is restored), the student's
        embeddings read from ``store``."""
        from samkit.evaluation import val
        from samkit.front import SamFront

        s = self.settings
        if self._teacher_front is None:  # kept: val caches its embeddings with the object
            self._teacher_front = SamFront(self.teacher)
        was_training = student.training
        try:
            result = val(
                SamFront(student),  # a new front each time: no embeddings of an older student
                s.val or s.data,
                None if s.val else s.images,
                "teacher",
                teacher=self._teacher_front,
                cache=store,
                save=False,
                plots=False,
                verbose=False,
                progress=False,
                max_images=None if s.val else s.val_images,
            )
        finally:
            student.train(was_training)
        metrics = result.metrics["teacher"]
        return float(metrics["point_miou"]), float(metrics["box_miou"])

    def weights(self) -> dict[str, torch.Tensor]:
        return official_state_dict(self.net.student)

    def args(self) -> dict[str, Any]:
        return {"task": "distill", **asdict(self.settings)}

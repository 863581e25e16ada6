"""Fine-tuning SAM on labelled masks: the task the generic loop (:mod:`samkit.train.trainer`)
runs for ``samkit train`` and ``SAM(...).train(...)``."""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import nn

from samkit.datasets import Dataset, Sample, open_dataset
from samkit.embeddings import EmbeddingStore, model_key
from samkit.errors import SamkitError
from samkit.items import each_item
from samkit.modeling import Sam
from samkit.train.data import ImageItem, prepare_item
from samkit.train.distributed import DistContext
from samkit.train.lora import merged_state_dict, unused_tensors
from samkit.train.losses import LossWeights
from samkit.train.model import PromptedSam, PromptSettings, StepItem, select_trainable
from samkit.train.trainer import TrainTask

__all__ = ["FineTuneSettings", "FineTuneTask"]

logger = logging.getLogger("samkit")


@dataclass
class FineTuneSettings:
    """What ``samkit train`` trains, on what, with which prompts and loss.

    data: a dataset ``open_dataset`` reads (a YOLO ``data.yaml`` gives its ``train`` and
    ``val`` splits); val: a held-out dataset (default: ``val_fraction`` of ``data``'s images,
    drawn with the seed). train: comma-separated parts among decoder, prompt_encoder, encoder;
    encoder_blocks: only the encoder's last N blocks; lora_rank: LoRA adapters on the encoder's
    attention (merged into the saved weights). balance_below: candidate masks with a lower IoU
    get class-balanced focal weights (:mod:`samkit.train.losses`; 0: SAM's alpha always).
    cache: frozen-encoder embeddings kept in "ram", on "disk" (``embeddings/`` in the samkit
    cache) or in a given folder.
    """

    model: str = "mobile_sam.pt"
    data: str = ""
    val: str | None = None
    val_fraction: float = 0.1
    train: str = "decoder"
    encoder_blocks: int = 0
    lora_rank: int = 0
    prompts: str = "mixed"
    max_points: int = 4
    clicks: int = 2
    mask_prompt: float = 0.5
    box_jitter: float = 0.1
    objects: int = 16
    focal: float = 20.0
    dice: float = 1.0
    iou: float = 1.0
    focal_alpha: float = 0.25
    balance_below: float = 0.5
    cache: str = "ram"
    min_area: int = 0

    def prompt_settings(self) -> PromptSettings:
        return PromptSettings(
            self.prompts,
            self.max_points,
            self.clicks,
            self.mask_prompt,
            self.box_jitter,
            self.objects,
        )

    def parts(self) -> list[str]:
        return [p.strip() for p in self.train.split(",") if p.strip()]


def _split(
    data: str, val: str | None, fraction: float, seed: int, min_area: int
) -> tuple[Dataset, Dataset | None]:
    """(training images, held-out images or None)."""
    if not data:
        raise SamkitError(
            "data=... is required: a COCO JSON, YOLO data.yaml, LabelMe or mask folder"
        )
    if str(data).endswith((".yaml", ".yml")) and val is None:
        return (
            open_dataset(data, split="train", min_area=min_area),
            open_dataset(data, split="val", min_area=min_area),
        )
    ds = open_dataset(data, min_area=min_area)
    if val is not None:
        return ds, open_dataset(val, min_area=min_area)
    if not 0 <= fraction < 1:
        raise SamkitError(f"val_fraction must be in [0, 1), got {fraction}")
    order = np.random.default_rng(seed).permutation(len(ds))
    n_val = round(len(ds) * fraction)
    held = sorted(order[:n_val].tolist())
    keep = sorted(order[n_val:].tolist())
    return ds.subset(keep), (ds.subset(held) if held else None)


class FineTuneTask(TrainTask):
    """Fine-tune a SAM checkpoint (or a built network) on ``settings.data``."""

    name = "train"
    fitness = "val/mIoU"
    one_by_one = True  # PromptedSam decodes a batch's images in turn

    def __init__(
        self, settings: FineTuneSettings, seed: int = 0, network: Sam | None = None
    ) -> None:
        settings.prompt_settings().check()
        self.settings = settings
        self.seed = seed
        self.network = network
        # a step upscales only the masks its groups read: the other hypernetwork heads (and
        # the prompt encoder's unused embeddings) get no gradient in that step
        self.unused_parameters = True

    # ------------------------------------------------------------------ setup
    def setup(self, ctx: DistContext) -> None:
        super().setup(ctx)
        s = self.settings
        sam, checkpoint = self._build()
        self.extra = unused_tensors(sam, checkpoint)
        self.encoder_trains = select_trainable(sam, s.parts(), s.encoder_blocks, s.lora_rank)
        sam.to(ctx.device)
        self.sam = sam
        self.net = PromptedSam(
            sam,
            s.prompt_settings(),
            LossWeights(s.focal, s.dice, s.iou, s.focal_alpha, s.balance_below),
            self.encoder_trains,
        )
        train, held = _split(s.data, s.val, s.val_fraction, self.seed, s.min_area)
        self.val_data = held
        self.store = self._store(checkpoint)
        self.items = self._prepare(train)
        if not self.items:
            raise SamkitError(f"data={s.data!r}: no image with a usable instance to train on")
        if not self.encoder_trains:  # one store, filled once, for training and held-out images
            keyed = [(it.key, sample) for it, sample in zip(self.items, self._kept, strict=True)]
            held_keys = [] if held is None else [(EmbeddingStore.key(x.path), x) for x in held]
            self._fill_cache(keyed + held_keys)
        logger.info(
            "train: %d images, %d objects; held-out: %d images; training %s",
            len(self.items),
            sum(int(it.targets.shape[0]) for it in self.items),
            0 if held is None else len(held),
            ", ".join(s.parts()) + (f" + LoRA r={s.lora_rank}" if s.lora_rank else ""),
        )

    def _build(self) -> tuple[Sam, str | None]:
        from samkit.entrance import load_network
        from samkit.weights import resolve_checkpoint

        if self.network is not None:
            return load_network(self.network, "train"), None
        path = str(resolve_checkpoint(self.settings.model))
        return load_network(path, "train"), path

    def _store(self, checkpoint: str | None) -> EmbeddingStore:
        cache = self.settings.cache
        key_source: Any = SimpleNamespace(checkpoint=checkpoint) if checkpoint else self.sam
        key = model_key(key_source, extra="train-fp32")
        if cache == "ram":
            return EmbeddingStore(None, key, memory_items=1 << 30)
        root = Path(
            cache
            if cache != "disk"
            else Path(os.environ.get("SAMKIT_TRAIN_CACHE", "runs")) / "cache"
        )
        return EmbeddingStore(root, key, memory_items=0)

    def _prepare(self, samples: Dataset) -> list[ImageItem]:
        """One item per image with a usable instance; an unreadable image (header, pixels or
        annotations) is reported with its file and left out (:func:`samkit.items.each_item`)."""
        from samkit.families import geometry_of

        geometry = geometry_of(self.sam)

        def read(index: int) -> tuple[Sample, ImageItem | None]:
            sample = samples[index]
            item = prepare_item(sample, EmbeddingStore.key(sample.path), geometry)
            if item is not None and self.encoder_trains:
                item.image = self._input(sample)
            return sample, item

        items, kept = [], []
        for _, (sample, item) in each_item(
            range(len(samples)), read, name=lambda i: str(samples.path(i))
        ):
            if item is not None:
                items.append(item)
                kept.append(sample)
        self._kept = kept
        return items

    def _input(self, sample: Sample) -> torch.Tensor:
        from samkit.families import geometry_of

        m = self.sam.pixel_mean.flatten().tolist()
        s = self.sam.pixel_std.flatten().tolist()
        x = geometry_of(self.sam).encoder_input(
            sample.image(), (m[0], m[1], m[2]), (s[0], s[1], s[2])
        )
        return torch.from_numpy(x).to(self.ctx.device)

    def _fill_cache(self, keyed: list[tuple[str, Sample]]) -> None:
        """Encode every image not yet in the store, once per content key (rank 0 only with a
        disk store; held-out images only on rank 0, which validates); an image that cannot be
        read now is reported and its item dropped."""
        disk = self.store.folder is not None
        if not disk or self.ctx.is_main:
            unique = dict(keyed)
            missing = [(k, s) for k, s in unique.items() if not self.store.has(k)]
            if missing:
                self._encode(missing)
        self.ctx.barrier()
        if disk and not self.ctx.is_main:
            self.items = [it for it in self.items if self.store.has(it.key)]
        if not self.items:
            raise SamkitError(f"data={self.settings.data!r}: no readable image to train on")

    def _encode(self, keyed: list[tuple[str, Sample]]) -> None:
        from tqdm import tqdm

        from samkit.entrance import load

        engine = load(self.sam).engine  # fp32, where the network is: the targets' embeddings
        failed: set[str] = set()

        def skip(where: str, message: str) -> None:
            failed.add(where)
            logger.warning("skipped %s", message)

        with tqdm(total=len(keyed), desc="embeddings", unit="img",
                  disable=not self.ctx.is_main) as bar:  # fmt: skip
            for (key, _), image in each_item(
                keyed,
                lambda ks: ks[1].image(),
                name=lambda ks: str(ks[1].path),
                report=skip,
                done=lambda: bar.update(1),
            ):
                self.store.put(key, engine.encode(image))
                bar.update(1)
        engine.reset_image()
        if failed:
            pairs = [(it, s) for it, s in zip(self.items, self._kept, strict=True)
                     if str(s.path) not in failed]  # fmt: skip
            self.items, self._kept = [it for it, _ in pairs], [s for _, s in pairs]

    # ------------------------------------------------------------------ loop hooks
    def module(self) -> nn.Module:
        return self.net

    def __len__(self) -> int:
        return len(self.items)

    def heaviest_item(self) -> int:
        """The image with the most objects a step decodes (the memory plan measures it)."""
        counts = [min(int(it.targets.shape[0]), self.settings.objects) for it in self.items]
        return int(np.argmax(counts))

    def batch(self, indices: list[int], epoch: int) -> list[StepItem]:
        out = []
        for i in indices:
            item = self.items[i]
            embedding = None
            if not self.encoder_trains:
                state = self.store.get(item.key)
                if state is None:
                    raise SamkitError(f"embedding of {item.name} is missing from the cache")
                embedding = torch.as_tensor(state.features, dtype=torch.float32).to(self.ctx.device)
            out.append(
                StepItem(
                    embedding,
                    item.image,
                    item.targets.to(self.ctx.device, torch.float32) / 255.0,
                    item.boxes,
                    np.random.default_rng([self.seed, epoch, i]),
                )
            )
        return out

    def validate(self, epoch: int) -> dict[str, float]:
        """Held-out mIoU through ``samkit val`` (protocols ``box`` and ``point``); with a frozen
        encoder it decodes from the store filled in :meth:`setup` (no encoder pass)."""
        if self.val_data is None:
            return {}
        from samkit.evaluation.runner import val
        from samkit.front import SamFront

        front = SamFront(self.sam, device=str(self.ctx.device))
        res = val(front, self.val_data, protocols=("box", "point"), cache=None if self.encoder_trains else self.store,
                  save=False, plots=False, verbose=False, progress=False)  # fmt: skip
        self.net.train()
        box, point = float(res.metrics["box"]["miou"]), float(res.metrics["point"]["miou"])
        return {"val/box_mIoU": box, "val/point_mIoU": point, "val/mIoU": (box + point) / 2}

    def weights(self) -> dict[str, torch.Tensor]:
        """The official layout: LoRA merged; for TinyViT the classifier tensors MobileSAM's
        checkpoints carry (unused by SAM, required by MobileSAM's strict loader)."""
        return {**merged_state_dict(self.sam), **self.extra}

    def args(self) -> dict[str, Any]:
        return asdict(self.settings)

"""The network under training: :class:`PromptedSam` wraps a :class:`~samkit.modeling.Sam` whose
``forward(batch)`` simulates prompts from the ground truth and returns SAM's loss
(:class:`~samkit.train.trainer.StepOutput`). Which parts train is set by :func:`select_trainable`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from samkit.errors import SamkitError
from samkit.modeling import Sam
from samkit.modeling.decoder_fast import DecoderCache
from samkit.train.lora import add_lora
from samkit.train.losses import LossWeights, sam_loss
from samkit.train.prompting import PROMPT_MODES, Prompts, add_error_clicks, first_prompts
from samkit.train.trainer import StepOutput

__all__ = ["PARTS", "PromptSettings", "PromptedSam", "StepItem", "select_trainable"]

PARTS = ("decoder", "prompt_encoder", "encoder")


@dataclass(frozen=True)
class PromptSettings:
    """How prompts are simulated per step (see :mod:`samkit.train.prompting`)."""

    mode: str = "mixed"
    max_points: int = 4
    clicks: int = 2
    mask_prompt: float = 0.5
    box_jitter: float = 0.1
    objects: int = 16

    def check(self) -> None:
        if self.mode not in PROMPT_MODES:
            raise SamkitError(
                f"prompts must be one of {', '.join(PROMPT_MODES)}, got {self.mode!r}"
            )
        for key, low in (("max_points", 1), ("clicks", 0), ("objects", 1)):
            if getattr(self, key) < low:
                raise SamkitError(f"{key} must be >= {low}, got {getattr(self, key)}")
        if not 0 <= self.mask_prompt <= 1:
            raise SamkitError(
                f"mask_prompt must be a probability in [0, 1], got {self.mask_prompt}"
            )


@dataclass
class StepItem:
    """One image of a batch: ``embedding`` (1, C, g, g) or ``image`` (1, 3, S, S) when the
    encoder trains; ``targets`` (N, L, L) float in [0, 1]; ``boxes`` (N, 4) input pixels; ``rng``
    this image's draws for this epoch."""

    embedding: torch.Tensor | None
    image: torch.Tensor | None
    targets: torch.Tensor
    boxes: np.ndarray
    rng: np.random.Generator


def select_trainable(
    sam: Sam, parts: Sequence[str], encoder_blocks: int = 0, lora_rank: int = 0
) -> bool:
    """Freeze everything, then unfreeze ``parts`` (of :data:`PARTS`); ``encoder_blocks`` > 0
    trains only the encoder's last N blocks (and its neck); ``lora_rank`` > 0 adds LoRA adapters
    to the encoder's attention (the encoder's own weights stay frozen). Returns whether any of
    the encoder's tensors train."""
    unknown = [p for p in parts if p not in PARTS]
    if unknown or (not parts and not lora_rank):
        raise SamkitError(f"train must name parts among {', '.join(PARTS)}, got {list(parts)}")
    if lora_rank < 0 or encoder_blocks < 0:
        raise SamkitError("lora_rank and encoder_blocks must be >= 0")
    if lora_rank and "encoder" in parts:
        raise SamkitError(
            "lora_rank trains adapters instead of the encoder: drop 'encoder' from train"
        )
    sam.requires_grad_(False)
    if "decoder" in parts:
        sam.mask_decoder.requires_grad_(True)
    if "prompt_encoder" in parts:
        sam.prompt_encoder.requires_grad_(True)
        sam.prompt_encoder.pe_layer.requires_grad_(False)  # a fixed random projection (a buffer)
    if "encoder" in parts:
        blocks = _encoder_blocks(sam)
        if encoder_blocks:
            for block in blocks[-encoder_blocks:]:
                block.requires_grad_(True)
            sam.image_encoder.neck.requires_grad_(True)
        else:
            sam.image_encoder.requires_grad_(True)
    if lora_rank and add_lora(sam.image_encoder, lora_rank) == 0:
        raise SamkitError("lora_rank: the image encoder has no attention qkv layers")
    return "encoder" in parts or lora_rank > 0


def _encoder_blocks(sam: Sam) -> list[nn.Module]:
    """The encoder's blocks, input to output, as the network's family lists them."""
    from samkit.families import family_of

    blocks = family_of(sam).encoder_blocks
    return [] if blocks is None else blocks(sam)


class PromptedSam(nn.Module):
    """SAM plus its training step: prompts from GT, iterative clicks, SAM's loss.

    Decoding goes through the decoder's own path (the fast one by default: the same function
    and gradients with fewer operations, and only the output masks a group's loss reads
    upscaled); per image, the decoder's prompt-independent work (the first block's image-side
    projections, :meth:`Sam.prepare_decoder`) is computed once and shared, in the graph, by
    every group and click round without a mask prompt.
    """

    def __init__(
        self, sam: Sam, prompts: PromptSettings, weights: LossWeights, encoder_trains: bool
    ) -> None:
        super().__init__()
        self.sam = sam
        self.prompts = prompts
        self.weights = weights
        self.encoder_trains = encoder_trains

    def train(self, mode: bool = True) -> PromptedSam:
        super().train(mode)
        if not self.encoder_trains:
            self.sam.image_encoder.eval()  # frozen: batch-norm statistics stay as loaded
        return self

    def forward(self, batch: Sequence[StepItem]) -> StepOutput:
        embeddings = self._embeddings(batch)
        total = embeddings.new_zeros(())
        sums: dict[str, float] = {}
        for emb, item in zip(embeddings, batch, strict=True):
            loss, terms = self._image_loss(emb[None], item)
            total = total + loss
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v
        return StepOutput(total, len(batch), sums)

    def _embeddings(self, batch: Sequence[StepItem]) -> torch.Tensor:
        if all(item.embedding is not None for item in batch):
            return torch.cat([item.embedding for item in batch])  # type: ignore[misc]
        images = [item.image for item in batch]
        if any(x is None for x in images):
            raise SamkitError("a batch item has neither an embedding nor an image")
        return self.sam.image_encoder(torch.cat(images))  # type: ignore[arg-type]

    def _decode(
        self, emb: torch.Tensor, group: Prompts, cache: DecoderCache | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Low-res logits (B, M, L, L) and IoU (B, M) of the group's output masks."""
        sam = self.sam
        sparse, dense = sam.prompt_encoder(group.points, group.boxes, group.mask_input)
        select = slice(1, None) if group.multimask else slice(0, 1)
        shared = cache if group.mask_input is None else None
        image_pe = sam.prompt_encoder.get_dense_pe() if shared is None else shared.image_pe
        return sam.mask_decoder.predict_masks(
            emb, image_pe, sparse, dense, cache=shared, select=select
        )

    def _image_loss(
        self, emb: torch.Tensor, item: StepItem
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean over the image's (sampled) objects of the loss averaged over click rounds."""
        p, rng = self.prompts, item.rng
        n = item.targets.shape[0]
        rows = np.sort(rng.choice(n, size=min(n, p.objects), replace=False))
        targets = item.targets[torch.as_tensor(rows, device=item.targets.device)]
        groups = first_prompts(
            targets, item.boxes[rows], rng, p.mode, p.max_points, p.box_jitter, self.sam.image_size
        )
        per_object = emb.new_zeros(len(rows))
        sums: dict[str, torch.Tensor] = {}
        fast = getattr(self.sam.mask_decoder, "fast", False)
        cache = self.sam.prepare_decoder(emb) if fast else None
        for round_ in range(p.clicks + 1):
            following = []
            for group in groups:
                logits, iou = self._decode(emb, group, cache)
                tgt = targets[group.index]
                loss, terms = sam_loss(logits, iou, tgt, self.weights)
                per_object = per_object.index_add(0, group.index, loss)
                for k, v in terms.items():
                    if k != "best":
                        sums[k] = sums.get(k, emb.new_zeros(())) + v.sum().float()
                if round_ < p.clicks:
                    best = terms["best"][:, None, None, None].expand(-1, 1, *logits.shape[-2:])
                    chosen = logits.detach().gather(1, best)
                    following.append(
                        add_error_clicks(group, chosen, tgt, rng, rng.random() < p.mask_prompt)
                    )
            groups = following
        rounds = p.clicks + 1
        logs = {k: float(v) / (len(rows) * rounds) for k, v in sums.items()}
        return per_object.mean() / rounds, logs

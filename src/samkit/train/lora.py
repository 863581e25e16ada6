"""LoRA adapters on the image encoder's attention projections (``attn.qkv``, optionally
``attn.proj``): ``W x + (alpha / r) B A x`` with ``A`` (r, in) random and ``B`` (out, r) zero, so
training starts from the unchanged encoder. :func:`merged_state_dict` folds ``W + (alpha / r) B
A`` back into plain ``...qkv.weight`` tensors: the saved checkpoint has the official keys."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["LoRALinear", "add_lora", "merged_state_dict", "unused_tensors"]


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float | None = None) -> None:
        super().__init__()
        self.base = base
        self.rank = rank
        self.scale = (alpha if alpha is not None else rank) / rank
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        base.weight.requires_grad_(False)
        if base.bias is not None:
            base.bias.requires_grad_(False)

    @property
    def weight(self) -> torch.Tensor:
        """The merged weight (out, in)."""
        return self.base.weight + self.scale * (self.lora_B @ self.lora_A)

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base.bias

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scale * ((x @ self.lora_A.t()) @ self.lora_B.t())


def add_lora(encoder: nn.Module, rank: int, targets: tuple[str, ...] = ("qkv",)) -> int:
    """Replace every ``nn.Linear`` named one of ``targets`` inside attention modules of
    ``encoder`` by a :class:`LoRALinear`; returns how many were replaced."""
    replaced = 0
    for module in list(encoder.modules()):
        for name in targets:
            child = getattr(module, name, None)
            if isinstance(child, nn.Linear) and not isinstance(module, LoRALinear):
                setattr(module, name, LoRALinear(child, rank))
                replaced += 1
    return replaced


def merged_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """``module.state_dict()`` with every LoRA layer folded into plain ``weight`` / ``bias``
    (CPU tensors, detached): the official key layout."""
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    for name, sub in module.named_modules():
        if not isinstance(sub, LoRALinear):
            continue
        prefix = f"{name}." if name else ""
        for key in ("base.weight", "base.bias", "lora_A", "lora_B"):
            state.pop(prefix + key, None)
        state[prefix + "weight"] = sub.weight.detach().cpu()
        if sub.bias is not None:
            state[prefix + "bias"] = sub.bias.detach().cpu()
    return state


def unused_tensors(sam: nn.Module, checkpoint: str | None) -> dict[str, torch.Tensor]:
    """Tensors the family's reference loaders require but samkit does not build (SAM-1:
    TinyViT's ImageNet classifier, ``image_encoder.norm_head.*`` / ``image_encoder.head.*``),
    taken from ``checkpoint`` when it has them, else neutral values; empty for other
    networks."""
    from samkit.families import family_of

    official = family_of(sam).official_keys
    return {} if official is None else official(sam, {}, checkpoint)

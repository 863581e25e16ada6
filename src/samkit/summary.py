"""Model summary: parameters per component, checkpoint size, and the compute of one encoder
pass and one decoder call (counted on shape-only "meta" tensors, so it costs no real work)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from samkit.build import build_from_config, describe
from samkit.errors import ArgumentError
from samkit.modeling import Sam
from samkit.registry import SamConfig, find_variant


@dataclass(frozen=True)
class ModelSummary:
    """Sizes and compute of one SAM model.

    GFLOPs count multiply and add separately (2 per MAC) for a 1024x1024 input and for one
    decoder call with one point prompt and multimask output.
    """

    name: str
    encoder: str
    params_image_encoder: int
    params_prompt_encoder: int
    params_mask_decoder: int
    checkpoint: str | None
    checkpoint_bytes: int | None
    encoder_gflops: float
    decoder_gflops: float

    @property
    def params_total(self) -> int:
        return self.params_image_encoder + self.params_prompt_encoder + self.params_mask_decoder

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["params_total"] = self.params_total
        return out

    def table(self) -> str:
        """A human-readable multi-line summary."""
        size = "-" if self.checkpoint_bytes is None else f"{self.checkpoint_bytes / 2**20:.1f} MiB"
        rows = [
            ("model", f"{self.name} ({self.encoder} encoder)"),
            ("parameters", f"{self.params_total / 1e6:.2f} M"),
            ("  image encoder", f"{self.params_image_encoder / 1e6:.2f} M"),
            ("  prompt encoder", f"{self.params_prompt_encoder / 1e6:.3f} M"),
            ("  mask decoder", f"{self.params_mask_decoder / 1e6:.2f} M"),
            ("checkpoint", f"{self.checkpoint or '-'} ({size})"),
            ("encoder GFLOPs", f"{self.encoder_gflops:.1f} (1024x1024 input)"),
            ("decoder GFLOPs", f"{self.decoder_gflops:.2f} (one prompt, 3 masks)"),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def count_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def compute_gflops(config: SamConfig) -> tuple[float, float]:
    """(encoder, decoder) GFLOPs of ``config``, counted on meta tensors."""
    with torch.device("meta"):
        model = build_from_config(config)
        size = config.image_size
        image = torch.empty(1, 3, size, size)
        with FlopCounterMode(display=False) as counter:
            embedding = model.image_encoder(image)
        encoder = counter.get_total_flops()
        points = torch.empty(1, 1, 2)
        labels = torch.ones(1, 1, dtype=torch.int)
        with FlopCounterMode(display=False) as counter:
            model.decode(embedding, (points, labels), None, None, True)
        decoder = counter.get_total_flops()
    return encoder / 1e9, decoder / 1e9


def model_summary(model: Sam, checkpoint: str | os.PathLike[str] | None = None) -> ModelSummary:
    """Summarise ``model``; ``checkpoint`` (a file) adds its size on disk."""
    config = model.config
    if config is None:
        raise ArgumentError("model_summary needs a model built by samkit (model.config is unset)")
    ckpt_bytes = None
    ckpt_name = None
    if checkpoint is not None:
        path = Path(checkpoint)
        ckpt_name = path.name
        ckpt_bytes = path.stat().st_size if path.is_file() else None
    elif (variant := find_variant(config)) is not None:
        ckpt_name, ckpt_bytes = variant.weights.filename, variant.weights.size
    enc, dec = compute_gflops(config)
    return ModelSummary(
        name=describe(config),
        encoder=config.encoder.kind,
        params_image_encoder=count_params(model.image_encoder),
        params_prompt_encoder=count_params(model.prompt_encoder),
        params_mask_decoder=count_params(model.mask_decoder),
        checkpoint=ckpt_name,
        checkpoint_bytes=ckpt_bytes,
        encoder_gflops=enc,
        decoder_gflops=dec,
    )


class ModelInfo(tuple):
    """What :meth:`samkit.SAM.info` returns: Ultralytics' ``model.info()`` tuple
    ``(layers, parameters, gradients, GFLOPs)`` (layers = modules without children, gradients
    = parameters that require grad, GFLOPs of one encoder pass at the model's input size),
    whose attributes are those of the :class:`ModelSummary` (``info.params_total``,
    ``info.table()``, ``info.as_dict()``; the summary itself is ``info.summary``)."""

    summary: ModelSummary

    def __new__(cls, model: torch.nn.Module, summary: ModelSummary) -> ModelInfo:
        layers = sum(1 for m in model.modules() if not m._modules)
        params = count_params(model)
        grads = sum(p.numel() for p in model.parameters() if p.requires_grad)
        self = super().__new__(cls, (layers, params, grads, summary.encoder_gflops))
        self.summary = summary
        return self

    def __getattr__(self, name: str) -> Any:
        if name == "summary":
            raise AttributeError(name)
        return getattr(self.summary, name)

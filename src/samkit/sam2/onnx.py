"""ONNX export of a SAM 2 / 2.1 network for images: an encoder with its three outputs and a
decoder that takes them (the split X-AnyLabeling and samexporter deploy for SAM 2.1).

Encoder: ``image`` (1, 3, S, S) float32, resized and normalised (:func:`~samkit.sam2.
transforms.preprocess_image`) -> ``high_res_feats_0`` (1, 32, S/4, S/4), ``high_res_feats_1``
(1, 64, S/8, S/8), ``image_embed`` (1, 256, S/16, S/16) (``no_mem_embed`` added).

Decoder (one object per call): those three, ``point_coords`` (1, N, 2) float32 XY in the
S-input frame (box corners first with labels 2 / 3; a padding point is added inside),
``point_labels`` (1, N) float32, ``mask_input`` (1, 1, S/4, S/4) low-res logits,
``has_mask_input`` (1,) float32 0 or 1 -> ``low_res_masks`` (1, 4, S/4, S/4) logits (token 0:
the single mask; 1..3: the multimask outputs), ``iou_predictions`` (1, 4),
``object_score_logits`` (1, 1). Masks at the image's size are one bilinear resize of the
chosen logits (:func:`~samkit.sam2.transforms.postprocess_masks`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from samkit.errors import ArgumentError
from samkit.modeling.sam2 import Sam2

__all__ = [
    "DECODER_INPUTS",
    "ENCODER_OUTPUTS",
    "Sam2DecoderGraph",
    "Sam2EncoderGraph",
    "export_sam2",
]

ENCODER_OUTPUTS = ("high_res_feats_0", "high_res_feats_1", "image_embed")
DECODER_INPUTS = (
    "image_embed",
    "high_res_feats_0",
    "high_res_feats_1",
    "point_coords",
    "point_labels",
    "mask_input",
    "has_mask_input",
)
DECODER_OUTPUTS = ("low_res_masks", "iou_predictions", "object_score_logits")


class Sam2EncoderGraph(nn.Module):
    """The image encoder with the decoder's skip projections and ``no_mem_embed``."""

    def __init__(self, model: Sam2) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feats = self.model.encode_image(image)
        return feats.high_res[0], feats.high_res[1], feats.embedding


class Sam2DecoderGraph(nn.Module):
    """Prompt encoder and mask decoder on one object, every mask token's output."""

    def __init__(self, model: Sam2) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        image_embed: torch.Tensor,
        high_res_feats_0: torch.Tensor,
        high_res_feats_1: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor,
        has_mask_input: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pe = self.model.sam_prompt_encoder
        sparse = pe.embed_points(point_coords, point_labels, pad=True)
        no_mask = pe.no_mask_embed.weight.reshape(1, -1, 1, 1)
        dense = has_mask_input * pe.embed_masks(mask_input) + (1 - has_mask_input) * no_mask
        out = self.model.sam_mask_decoder.predict_all(
            image_embed,
            pe.get_dense_pe(),
            sparse,
            dense,
            high_res_features=[high_res_feats_0, high_res_feats_1],
        )
        return out.masks, out.iou, out.object_scores


def export_sam2(model: Sam2, folder: str | Path, opset: int = 17) -> tuple[Path, Path]:
    """Write ``encoder.onnx`` and ``decoder.onnx`` for ``model`` into ``folder`` (created);
    returns their paths. The network is put in eval mode; the decoder's plain path is traced."""
    if not isinstance(model, Sam2):
        raise ArgumentError(f"export_sam2 needs a SAM 2 network, got {type(model).__name__}")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    s = model.image_size
    image = torch.zeros(1, 3, s, s)
    with torch.no_grad():
        feats = Sam2EncoderGraph(model)(image)
    encoder_path, decoder_path = out / "encoder.onnx", out / "decoder.onnx"
    decoder = model.sam_mask_decoder
    fast, decoder.fast = decoder.fast, False
    try:
        torch.onnx.export(
            Sam2EncoderGraph(model), (image,), str(encoder_path), input_names=["image"],
            output_names=list(ENCODER_OUTPUTS), opset_version=opset, dynamo=False,
        )  # fmt: skip
        prompts = (
            torch.tensor([[[s / 2, s / 2], [s / 4, s / 4]]], dtype=torch.float32),
            torch.tensor([[1.0, 0.0]]),
            torch.zeros(1, 1, s // 4, s // 4),
            torch.zeros(1),
        )
        torch.onnx.export(
            Sam2DecoderGraph(model), (feats[2], feats[0], feats[1], *prompts), str(decoder_path),
            input_names=list(DECODER_INPUTS), output_names=list(DECODER_OUTPUTS),
            dynamic_axes={"point_coords": {1: "points"}, "point_labels": {1: "points"}},
            opset_version=opset, dynamo=False,
        )  # fmt: skip
    finally:
        decoder.fast = fast
    return encoder_path, decoder_path

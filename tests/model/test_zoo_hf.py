"""Hugging Face ``transformers`` SAM files (SlimSAM's published format, ``facebook/sam-vit-*``):
samkit loads a ``SamModel`` state dict saved as ``.safetensors`` under any file name and
reproduces ``transformers``' embeddings, low-res logits, IoU and masks on the same seeded
random weights.

Both sides get the same normalised, padded input tensor (samkit's preprocessing), so the test
compares the networks; masks go through each side's own post-processing. ``transformers``
builds the decoder transformer's LayerNorms with eps 1e-6 where Meta's SAM (whose maths samkit
follows) uses 1e-5: that is the whole expected difference, far inside the tolerances.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import samkit
from reference import make_image, randomize
from zoo_reference import (
    CASES,
    IMAGES,
    compare_masks,
    hf_decode,
    hf_masks,
    report,
    save_hf_checkpoint,
    scale,
)

pytestmark = pytest.mark.parity

# A SlimSAM-like pruned ViT: head width 14 and an MLP width that is not 4x the embedding.
PRUNED = {
    "hidden_size": 56,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "global_attn_indexes": [1, 3],
    "mlp_dim": 232,
}
SLIMSAM_77 = {
    "hidden_size": 168,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "global_attn_indexes": [2, 5, 8, 11],
    "mlp_dim": 696,
}


def _hf_model(vision: dict[str, Any], seed: int) -> torch.nn.Module:
    from transformers import SamConfig, SamModel

    model = SamModel(SamConfig(vision_config=vision)).eval()
    randomize(model, seed)
    # The two copies of the positional matrix are one parameter in transformers; keep them equal.
    shared = model.shared_image_embedding.positional_embedding
    model.prompt_encoder.shared_embedding.positional_embedding.data.copy_(shared.data)
    return model


def _check(hf: torch.nn.Module, path: Path) -> samkit.SamPredictor:
    ours = samkit.SamPredictor(samkit.build_sam(path))
    for name, (h, w) in IMAGES.items():
        image = make_image(h, w, seed=len(name))
        ours.set_image(image)
        x, input_size = ours.preprocess(image)
        with torch.inference_mode():
            emb_ref = hf.get_image_embeddings(x)
        print(f"[{path.name} {name} {w}x{h}]")
        report("embedding", ours.features.numpy(), emb_ref.numpy(), 1e-4)
        for case_name, case in CASES.items():
            kwargs = scale(case, h, w)
            print(f" case {case_name}")
            low_ref, iou_ref = hf_decode(hf, emb_ref, kwargs, (h, w))
            m_ours, s_ours, l_ours = ours.predict(**kwargs)
            report("low-res logits", l_ours, low_ref, 1e-3)
            report("iou", s_ours, iou_ref, 1e-3)
            compare_masks(m_ours, hf_masks(low_ref, (h, w), input_size))
    return ours


def test_hf_layout_renamed_file_matches_transformers(tmp_path: Path) -> None:
    hf = _hf_model(PRUNED, seed=11)
    path = save_hf_checkpoint(hf, tmp_path / "renamed.safetensors")
    ours = _check(hf, path)
    encoder = ours.model.config.encoder
    assert (encoder.embed_dim, encoder.num_heads, encoder.global_attn_indexes) == (56, 4, (1, 3))
    assert ours.model.image_encoder.blocks[0].mlp.lin1.out_features == 232


def test_hf_layout_round_trip_is_the_official_layout(tmp_path: Path) -> None:
    from samkit.zoo.hf_layout import from_hf_layout

    hf = _hf_model(PRUNED, seed=12)
    official = from_hf_layout(hf.state_dict())
    meta = samkit.build_sam(save_hf_checkpoint(hf, tmp_path / "m.safetensors"))
    assert set(official) == set(meta.state_dict())
    for key, value in meta.state_dict().items():
        assert torch.equal(value, official[key]), key


@pytest.mark.slow
def test_slimsam_77_full_size_matches_transformers(tmp_path: Path) -> None:
    hf = _hf_model(SLIMSAM_77, seed=13)
    ours = _check(hf, save_hf_checkpoint(hf, tmp_path / "model.safetensors"))
    assert ours.model.variant == "slimsam_77"
    assert np.isclose(ours.model.config.encoder.mlp_ratio * 168, 696)

"""SAM-HQ parity with the official ``segment-anything-hq`` 0.3 package on the same seeded random
weights, saved in its checkpoint layout and loaded through ``samkit.build_sam`` (which must
recognise the HQ decoder and the early-feature width from the tensors).

Both sides run Meta's batched ``Sam(batched_input, multimask_output, hq_token_only)`` surface
on the same resized image and prompts: embeddings, low-res logits, IoU and masks per case,
with ``multimask_output`` and ``hq_token_only`` both ways, on a portrait and a landscape image.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import samkit
from reference import make_image, randomize, save_checkpoint
from samkit import transforms
from samkit.modeling.hq import SamHQ
from samkit.registry import SamHQConfig
from zoo_reference import CASES, IMAGES, compare_masks, report, scale

pytestmark = pytest.mark.parity


def _decoder(vit_dim: int) -> Any:
    from segment_anything_hq.modeling import MaskDecoderHQ, TwoWayTransformer

    return MaskDecoderHQ(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
        transformer_dim=256,
        iou_head_depth=3,
        iou_head_hidden_dim=256,
        vit_dim=vit_dim,
    )


def _reference_hq_vit(embed_dim: int, depth: int, heads: int, globals_: list[int]) -> Any:
    from segment_anything_hq.modeling import ImageEncoderViT, PromptEncoder, Sam

    return Sam(
        image_encoder=ImageEncoderViT(
            depth=depth,
            embed_dim=embed_dim,
            img_size=1024,
            mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=heads,
            patch_size=16,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=globals_,
            window_size=14,
            out_chans=256,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=256,
            image_embedding_size=(64, 64),
            input_image_size=(1024, 1024),
            mask_in_chans=16,
        ),
        mask_decoder=_decoder(embed_dim),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    ).eval()


def _record(image: np.ndarray, case: dict[str, np.ndarray]) -> dict[str, Any]:
    h, w = image.shape[:2]
    resized = transforms.resize_image(image, 1024)
    record: dict[str, Any] = {
        "image": torch.as_tensor(resized).permute(2, 0, 1).float(),
        "original_size": (h, w),
    }
    if "point_coords" in case:
        pts = transforms.apply_coords(case["point_coords"], (h, w), 1024)
        record["point_coords"] = torch.as_tensor(pts, dtype=torch.float)[None]
        record["point_labels"] = torch.as_tensor(case["point_labels"])[None]
    if "box" in case:
        box = transforms.apply_boxes(case["box"][None], (h, w), 1024)
        record["boxes"] = torch.as_tensor(box, dtype=torch.float)
    return record


def _ref_decode(
    ref: Any, emb: torch.Tensor, interm: list[torch.Tensor], record: dict[str, Any], flags: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's decoder on a cached encoding, as its ``Sam.forward`` calls it."""
    points = None
    if "point_coords" in record:
        points = (record["point_coords"], record["point_labels"])
    sparse, dense = ref.prompt_encoder(points=points, boxes=record.get("boxes"), masks=None)
    return ref.mask_decoder(
        image_embeddings=emb,
        image_pe=ref.prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=flags[0],
        hq_token_only=flags[1],
        interm_embeddings=interm[0][None],
    )


def _compare(ref: Any, ours: SamHQ) -> None:
    """Each image encoded once per side; every case decoded from it (the batched ``forward``
    surface is checked once per image at the end)."""
    for name, (h, w) in IMAGES.items():
        image = make_image(h, w, seed=len(name))
        print(f"[{name} {w}x{h}]")
        x = ours.preprocess(_record(image, {})["image"])[None]
        input_size = tuple(_record(image, {})["image"].shape[-2:])
        with torch.inference_mode():
            emb_ref, interm = ref.image_encoder(x)
            emb_ours, hq = ours.encode_image_hq(x)
        report("embedding", emb_ours.numpy(), emb_ref.numpy(), 1e-4)
        # Each (multimask_output, hq_token_only) pair once per image, on its own prompt kind.
        combos = ((False, False), (False, True), (True, False), (True, True))
        for (case_name, case), flags in zip(CASES.items(), combos, strict=True):
            record = _record(image, scale(case, h, w))
            points = None
            if "point_coords" in record:
                points = (record["point_coords"], record["point_labels"])
            print(f" case {case_name} multimask={flags[0]} hq_token_only={flags[1]}")
            with torch.inference_mode():
                low_r, iou_r = _ref_decode(ref, emb_ref, interm, record, flags)
                low_o, iou_o = ours.decode_hq(
                    emb_ours, hq, points, record.get("boxes"), None, *flags
                )
                masks_r = ref.postprocess_masks(low_r, input_size, (h, w)) > 0
                masks_o = ours.postprocess_masks(low_o, input_size, (h, w)) > 0
            assert low_o.shape == low_r.shape == (1, 1, 256, 256)
            report("low-res logits", low_o, low_r, 1e-3)
            report("iou", iou_o, iou_r, 1e-3)
            compare_masks(masks_o.numpy(), masks_r.numpy())
        record = _record(image, scale(CASES["box_point"], h, w))
        with torch.inference_mode():
            (r,) = ref([record], True, hq_token_only=False)
            (o,) = ours([record], True, hq_token_only=False)
        print(" batched forward, box + point")
        report("low-res logits", o["low_res_logits"], r["low_res_logits"], 1e-3)
        compare_masks(o["masks"].numpy(), r["masks"].numpy())


def test_hq_reduced_vit_matches_segment_anything_hq(tmp_path: Path) -> None:
    ref = _reference_hq_vit(embed_dim=96, depth=4, heads=4, globals_=[1, 3])
    ckpt = save_checkpoint(randomize(ref, seed=21), tmp_path / "renamed_hq.pth")
    ours = samkit.build_sam(ckpt)
    assert isinstance(ours, SamHQ) and isinstance(ours.config, SamHQConfig)
    assert ours.config.hq_vit_dim == 96
    _compare(ref, ours)


@pytest.mark.slow
def test_light_hq_sam_matches_segment_anything_hq(tmp_path: Path) -> None:
    from segment_anything_hq import sam_model_registry

    ref = sam_model_registry["vit_tiny"]()
    state = randomize(ref, seed=22)
    ref.eval()  # TinyViT caches its attention bias on eval()
    ckpt = save_checkpoint(state, tmp_path / "sam_hq_vit_tiny.pth")
    ours = samkit.build_sam(ckpt)
    assert isinstance(ours, SamHQ) and ours.config.hq_vit_dim == 160
    assert ours.variant == "sam_hq_tiny"
    _compare(ref, ours)


def test_hq_predictor_and_front_match_segment_anything_hq_predictor(tmp_path: Path) -> None:
    """samkit's HQ engine (chosen by the family) against ``segment_anything_hq.SamPredictor``:
    the predictor with ``multimask_output`` and ``hq_token_only`` both ways, and the ``SAM``
    front's default single-mask prompts."""
    from segment_anything_hq import SamPredictor as RefPredictor

    from samkit.zoo.hq_engine import HQEngine, HQPredictor

    ref_model = _reference_hq_vit(embed_dim=96, depth=4, heads=4, globals_=[1, 3])
    ckpt = save_checkpoint(randomize(ref_model, seed=23), tmp_path / "hq.pth")
    ref = RefPredictor(ref_model)
    front = samkit.SAM(ckpt)
    assert isinstance(front.engine, HQEngine)
    ours = HQPredictor(samkit.build_sam(ckpt))
    for name, (h, w) in IMAGES.items():
        image = make_image(h, w, seed=len(name))
        ref.set_image(image)
        ours.set_image(image)
        print(f"[predictor {name} {w}x{h}]")
        report("embedding", ours.features.numpy(), ref.features.numpy(), 1e-4)
        combos = ((False, False), (False, True), (True, False), (True, True))
        for (case_name, case), (multi, hq_only) in zip(CASES.items(), combos, strict=True):
            kwargs = scale(case, h, w)
            print(f" case {case_name} multimask={multi} hq_token_only={hq_only}")
            m_r, s_r, l_r = ref.predict(**kwargs, multimask_output=multi, hq_token_only=hq_only)
            ours.hq_token_only = hq_only
            m_o, s_o, l_o = ours.predict(**kwargs, multimask_output=multi)
            report("low-res logits", l_o, l_r, 1e-3)
            report("iou", s_o, s_r, 1e-3)
            compare_masks(m_o, m_r)
        kwargs = scale(CASES["box"], h, w)
        _, _, l_r = ref.predict(**kwargs, multimask_output=False)
        (r,) = front.predict(image[..., ::-1].copy(), bboxes=kwargs["box"])  # arrays are BGR
        print(" front, box")
        report("front low-res logits", np.asarray(r.low_res_logits)[0], l_r, 1e-3)

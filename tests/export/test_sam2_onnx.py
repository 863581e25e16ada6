"""SAM 2's ONNX pair (encoder with three outputs, decoder taking them) run by ONNX Runtime
agrees with the torch network: logits within 1e-3, masks within one pixel."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from reference import make_image, randomize
from samkit.sam2.build import build_sam2_from_config
from samkit.sam2.onnx import export_sam2
from samkit.sam2.transforms import preprocess_image
from samkit.sam2.variants import SAM2_VARIANTS

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def test_onnx_pair_matches_torch(tmp_path: Path) -> None:
    import onnxruntime as ort

    config = replace(SAM2_VARIANTS["sam2.1_hiera_tiny"].config, image_size=128)
    net = build_sam2_from_config(config)
    randomize(net, 4)
    encoder_path, decoder_path = export_sam2(net, tmp_path / "sam2_onnx")
    x = preprocess_image(make_image(90, 120, seed=2), 128, net.pixel_mean, net.pixel_std)
    enc = ort.InferenceSession(str(encoder_path), providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(decoder_path), providers=["CPUExecutionProvider"])
    levels = enc.run(None, {"image": x.numpy()})
    with torch.no_grad():
        feats = net.encode_image(x)
    for got, want in zip(levels, feats.levels, strict=True):
        err = float(np.abs(got - want.numpy()).max() / np.abs(want.numpy()).max())
        print(f"encoder output {got.shape}: rel {err:.2e}")
        assert got.shape == tuple(want.shape) and err < 1e-3
    cases = {  # input-frame points and labels: a click, positive + negative, a box (corners)
        "click": ([[40.0, 50.0]], [1.0]),
        "pos_neg": ([[40.0, 50.0], [100.0, 20.0], [10.0, 110.0]], [1.0, 0.0, 1.0]),
        "box": ([[20.0, 30.0], [90.0, 100.0]], [2.0, 3.0]),
    }
    previous = np.random.default_rng(0).normal(0, 5, (1, 1, 32, 32)).astype(np.float32)
    for name, (pts, labels) in [*cases.items(), ("click+mask", cases["click"])]:
        coords = np.array([pts], np.float32)
        lab = np.array([labels], np.float32)
        has_mask = name.endswith("+mask")
        mask_in = previous if has_mask else np.zeros((1, 1, 32, 32), np.float32)
        pe = net.sam_prompt_encoder
        with torch.no_grad():  # the dense prompt: the mask's embedding, or the no-mask one
            dense = (
                pe.embed_masks(torch.from_numpy(mask_in))
                if has_mask
                else pe.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(1, -1, 8, 8)
            )
        feeds = dict(
            zip(("high_res_feats_0", "high_res_feats_1", "image_embed"), levels, strict=True)
        )
        feeds.update(
            point_coords=coords,
            point_labels=lab,
            mask_input=mask_in,
            has_mask_input=np.full(1, float(has_mask), np.float32),
        )
        low, iou, obj = dec.run(None, feeds)
        with torch.no_grad():
            out = net.sam_mask_decoder.predict_all(
                feats.embedding, net.sam_prompt_encoder.get_dense_pe(),
                net.sam_prompt_encoder.embed_points(torch.from_numpy(coords), torch.from_numpy(lab).int(), pad=True),
                dense,
                high_res_features=list(feats.high_res),
            )  # fmt: skip
        e_low = float(np.abs(low - out.masks.numpy()).max())
        e_iou = float(np.abs(iou - out.iou.numpy()).max())
        flips = int(((low > 0) != (out.masks.numpy() > 0)).sum())
        print(
            f"{name}: logits max abs {e_low:.2e}, iou {e_iou:.2e}, flipped low-res pixels {flips}"
        )
        assert e_low < 1e-3 and e_iou < 1e-3 and flips <= 1
        assert np.abs(obj - out.object_scores.numpy()).max() < 1e-3

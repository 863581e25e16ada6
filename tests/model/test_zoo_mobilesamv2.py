"""MobileSAMv2's decoder file (``{"PromtEncoder": ..., "MaskDecoder": ...}``) loads onto an
encoder checkpoint and decodes as the reference with the same weights does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import samkit
from reference import SMALL_VIT, make_image, randomize, reference_vit, save_checkpoint
from samkit.errors import CheckpointError
from samkit.zoo.mobilesamv2 import build_mobilesamv2
from zoo_reference import CASES, compare_masks, report, scale

pytestmark = pytest.mark.parity


def test_mobilesamv2_decoder_file_loads_and_matches_reference(tmp_path: Path) -> None:
    from segment_anything import SamPredictor as RefPredictor

    base = reference_vit(SMALL_VIT)
    encoder_ckpt = save_checkpoint(randomize(base, seed=51), tmp_path / "encoder.pth")
    tuned = reference_vit(SMALL_VIT)
    randomize(tuned, seed=52)
    tuned.image_encoder.load_state_dict(base.image_encoder.state_dict())  # same encoder
    parts = {
        "PromtEncoder": tuned.prompt_encoder.state_dict(),
        "MaskDecoder": tuned.mask_decoder.state_dict(),
    }
    decoder_ckpt = tmp_path / "Prompt_guided_Mask_Decoder.pt"
    torch.save(parts, decoder_ckpt)

    ours = samkit.SamPredictor(build_mobilesamv2(encoder_ckpt, decoder_ckpt))
    ref = RefPredictor(tuned.eval())
    h, w = 427, 640
    image = make_image(h, w, seed=5)
    ours.set_image(image)
    ref.set_image(image)
    for name in ("box", "point"):
        kwargs = scale(CASES[name], h, w)
        print(f" case {name}")
        m_r, s_r, l_r = ref.predict(**kwargs)
        m_o, s_o, l_o = ours.predict(**kwargs)
        report("low-res logits", l_o, l_r, 1e-3)
        report("iou", s_o, s_r, 1e-3)
        compare_masks(m_o, m_r)
    plain = samkit.SamPredictor(samkit.build_sam(encoder_ckpt))
    plain.set_image(image)
    assert not np.allclose(plain.predict(**scale(CASES["box"], h, w))[2], l_r)  # the file mattered


def test_mobilesamv2_decoder_file_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    base = reference_vit(SMALL_VIT)
    encoder_ckpt = save_checkpoint(randomize(base, seed=53), tmp_path / "encoder.pth")
    parts = {
        "PromtEncoder": base.prompt_encoder.state_dict(),
        "MaskDecoder": {"iou_token.weight": torch.zeros(1, 8)},
    }
    torch.save(parts, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="does not fit"):
        build_mobilesamv2(encoder_ckpt, tmp_path / "bad.pt")

"""SAM 2.1's video modules against Meta's ``sam2`` 1.1.0 on the same seeded random weights in the
official checkpoint layout (strictly loaded): memory encoder, memory attention with rotary
encoding and object-pointer tokens, the pointer projections. Tiny trunk at a 128 input (an
8x8 grid: the same computation on a smaller grid)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sam2_reference import meta_model, rel_err, samkit_model, write_checkpoint

pytestmark = pytest.mark.parity
pytest.importorskip("sam2")
pytest.importorskip("hydra")

TOL = 1e-5


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, torch.nn.Module]:
    meta = meta_model("tiny", image_size=128, seed=3)
    path = write_checkpoint(meta, Path(tmp_path_factory.mktemp("mem")) / "sam2.1_t.pt")
    return meta, samkit_model(path, "tiny", image_size=128)


def test_memory_encoder_matches(pair: tuple[torch.nn.Module, torch.nn.Module]) -> None:
    meta, ours = pair
    gen = torch.Generator().manual_seed(0)
    pix = torch.randn(2, 256, 8, 8, generator=gen)
    mask = torch.randn(2, 1, 128, 128, generator=gen) * 10
    with torch.no_grad():
        ref = meta.memory_encoder(pix, mask, skip_mask_sigmoid=True)
        feats, pos = ours.memory_encoder(pix, mask)
    err = rel_err(feats, ref["vision_features"])
    print(f"memory encoder features: max rel err {err:.2e}")
    assert feats.shape == (2, 64, 8, 8)
    assert err < TOL
    assert rel_err(pos, ref["vision_pos_enc"][0]) < TOL


@pytest.mark.parametrize("frames, ptrs", [(1, 0), (3, 8)])
def test_memory_attention_matches(
    pair: tuple[torch.nn.Module, torch.nn.Module], frames: int, ptrs: int
) -> None:
    """Memory of ``frames`` frames of the 8x8 grid plus ``ptrs`` object-pointer tokens (not
    rotated)."""
    meta, ours = pair
    gen = torch.Generator().manual_seed(1)
    curr = torch.randn(64, 1, 256, generator=gen)
    curr_pos = torch.randn(64, 1, 256, generator=gen)
    memory = torch.randn(frames * 64 + ptrs, 1, 64, generator=gen)
    memory_pos = torch.randn(frames * 64 + ptrs, 1, 64, generator=gen)
    with torch.no_grad():
        ref = meta.memory_attention(
            curr=[curr],
            curr_pos=[curr_pos],
            memory=memory,
            memory_pos=memory_pos,
            num_obj_ptr_tokens=ptrs,
        )
        out = ours.memory_attention(
            curr.transpose(0, 1),
            curr_pos.transpose(0, 1),
            memory.transpose(0, 1),
            memory_pos.transpose(0, 1),
            ptrs,
        )
    err = rel_err(out.transpose(0, 1), ref)
    print(f"memory attention ({frames} frames, {ptrs} pointers): max rel err {err:.2e}")
    assert err < TOL


def test_pointer_projections_match(pair: tuple[torch.nn.Module, torch.nn.Module]) -> None:
    meta, ours = pair
    x = torch.randn(5, 256, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert rel_err(ours.obj_ptr_proj(x), meta.obj_ptr_proj(x)) < TOL
        assert rel_err(ours.obj_ptr_tpos_proj(x), meta.obj_ptr_tpos_proj(x)) < TOL
        m = torch.rand(1, 1, 128, 128, generator=torch.Generator().manual_seed(4))
        assert rel_err(ours.mask_downsample(m), meta.mask_downsample(m)) < TOL

"""samkit.postprocess against the reference's mask post-processing and against each other:
exact upsampling bit for bit, the NumPy kernel emulation bit for bit, the fast banded maps
(torch and NumPy) to float rounding, the export graph's version, stability scores and boxes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from samkit.masks import mask_to_box
from samkit.postprocess import (
    binarize,
    filter_stable,
    stability_score,
    upsample_exact,
    upsample_fast,
    upsample_graph,
)
from samkit.postprocess.kernel import taps, upsample_exact_numpy

GEOMETRIES = [
    ((240, 320), (768, 1024)),
    ((720, 1280), (576, 1024)),
    ((333, 111), (1024, 341)),
    ((50, 50), (1024, 1024)),
    ((719, 1279), (576, 1024)),
]


def two_step(low: torch.Tensor, inp: tuple[int, int], orig: tuple[int, int]) -> torch.Tensor:
    """The reference's ``Sam.postprocess_masks`` on (N, 256, 256) logits."""
    x = F.interpolate(low[:, None], (1024, 1024), mode="bilinear", align_corners=False)
    x = x[..., : inp[0], : inp[1]]
    return F.interpolate(x, orig, mode="bilinear", align_corners=False)[:, 0]


def low_res(n: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 256, 256, generator=torch.Generator().manual_seed(seed)) * 10


@pytest.mark.parametrize(("orig", "inp"), GEOMETRIES)
def test_exact_is_the_reference_bit_for_bit(orig, inp) -> None:
    low = low_res()
    expected = two_step(low, inp, orig)
    assert torch.equal(upsample_exact(low, inp, orig, 1024), expected)
    # The export graph runs the same two resizes with a dynamic size.
    size = torch.tensor(orig, dtype=torch.float32)
    assert torch.equal(upsample_graph(low[:, None], size, 1024)[:, 0], expected)


def test_reference_sam_postprocess_masks_is_exact() -> None:
    """Against the reference package's own ``Sam.postprocess_masks``."""
    from reference import reference_vit
    from samkit.registry import ViTConfig

    ref = reference_vit(ViTConfig(embed_dim=64, depth=1, num_heads=2, global_attn_indexes=()))
    low = low_res(2, seed=1)[:, None]
    for orig, inp in GEOMETRIES[:2]:
        expected = ref.postprocess_masks(low, inp, orig)[:, 0]
        assert torch.equal(upsample_exact(low[:, 0], inp, orig, 1024), expected)


@pytest.mark.parametrize(("orig", "inp"), [g for g in GEOMETRIES if min(g[0]) >= 100])
def test_numpy_kernel_emulation_is_bit_exact(orig, inp) -> None:
    """The NumPy emulation of torch's bilinear kernel gives the same float32 bits (outputs at
    least 100 pixels wide; see the kernel module on small outputs)."""
    low = low_res()
    expected = two_step(low, inp, orig).numpy()
    got = upsample_exact_numpy(low.numpy(), inp, orig, 1024)
    print(orig, "mismatching pixels", int((got != expected).sum()))
    assert np.array_equal(got, expected)


def test_taps_follow_torch_rounding() -> None:
    """One axis: 1-D resizes of several ratios, up and down."""
    x = torch.randn(1, 1, 2, 1024, generator=torch.Generator().manual_seed(3)) * 10
    for n_out in (50, 100, 320, 1000, 1280, 4000):
        ref = F.interpolate(x, (2, n_out), mode="bilinear", align_corners=False)[0, 0].numpy()
        t = taps(1024, n_out)
        a, b = x[0, 0].numpy()[:, t.i0], x[0, 0].numpy()[:, t.i1]
        from samkit.postprocess.kernel import lerp

        assert np.array_equal(lerp(a, b, t.w0, t.w1), ref), n_out


@pytest.mark.parametrize(("orig", "inp"), GEOMETRIES)
def test_fast_torch_and_numpy_agree_with_exact(orig, inp) -> None:
    """The second implementation (fast) beside the first (exact): equal to float rounding."""
    low = low_res(2, seed=2)
    exact = upsample_exact(low, inp, orig, 1024)
    fast_t = upsample_fast(low, inp, orig, 1024)
    fast_n = upsample_fast(low.numpy(), inp, orig, 1024)
    scale = float(exact.abs().max())
    err_t = float((fast_t - exact).abs().max()) / scale
    err_n = float(np.abs(fast_n - exact.numpy()).max()) / scale
    print(orig, f"fast torch {err_t:.1e}, fast numpy {err_n:.1e} (relative)")
    assert fast_t.shape == exact.shape and fast_t.is_contiguous()
    assert isinstance(fast_n, np.ndarray) and fast_n.dtype == np.float32
    assert fast_n.flags.c_contiguous and fast_n.shape == tuple(exact.shape)
    assert err_t <= 1e-5 and err_n <= 1e-5
    flips = (binarize(fast_n, 0.0) != binarize(exact, 0.0).numpy()).mean()
    assert flips < 1e-5


def test_fast_keeps_leading_dims_and_empty() -> None:
    low = low_res(6).reshape(2, 3, 256, 256)
    out = upsample_fast(low, (576, 1024), (720, 1280), 1024)
    assert out.shape == (2, 3, 720, 1280)
    empty = upsample_fast(np.zeros((0, 256, 256), np.float32), (576, 1024), (720, 1280), 1024)
    assert empty.shape == (0, 720, 1280)


def test_stability_and_boxes_match_the_reference() -> None:
    from segment_anything.utils.amg import batched_mask_to_box, calculate_stability_score

    logits = upsample_exact(low_res(4, seed=4), (576, 1024), (720, 1280), 1024)
    ref = calculate_stability_score(logits, 0.0, 1.0).numpy()
    assert np.array_equal(stability_score(logits, 0.0, 1.0), ref)
    assert np.array_equal(stability_score(logits.numpy(), 0.0, 1.0), ref)
    keep, stab, masks = filter_stable(logits, 0.0, 1.0, float(np.median(ref)))
    assert 0 < len(keep) < len(ref) and np.array_equal(stab, ref[keep])
    assert np.array_equal(masks, (logits[torch.from_numpy(keep)] > 0).numpy())
    ref_boxes = batched_mask_to_box(torch.from_numpy(masks)).numpy()
    assert np.array_equal(mask_to_box(masks), ref_boxes)


def smooth_low_res(n: int, seed: int) -> torch.Tensor:
    """Low-res logits shaped like a decoder's: smooth blobs, steep enough to have stable masks."""
    coarse = torch.randn(n, 1, 12, 12, generator=torch.Generator().manual_seed(seed)) * 30
    return F.interpolate(coarse, (256, 256), mode="bicubic", align_corners=False)[:, 0] + 5


@pytest.mark.parametrize(("orig", "inp"), [((240, 320), (768, 1024)), ((333, 111), (1024, 341))])
def test_exact_stats_and_masks_equal_full_resolution(orig, inp) -> None:
    """The tile path (decided on low-res logits, undecided pixels by the kernel emulation)
    gives the full-resolution path's stability scores, areas, boxes and RLEs exactly."""
    from samkit.masks import masks_to_rle
    from samkit.postprocess.exact import Geometry, exact_masks
    from samkit.postprocess.exact_filter import exact_stats

    low = torch.cat([smooth_low_res(4, seed=5), low_res(1, seed=6)])  # smooth and rough
    full = two_step(low, inp, orig)
    geometry = Geometry(256, 1024, inp, orig)
    rows, cols = geometry.used_low_res()
    cut = low.numpy()[:, :rows, :cols]
    stats = exact_stats(cut, geometry, 0.0, 1.0)
    masks = (full > 0).numpy()
    assert np.array_equal(stats.stability, stability_score(full, 0.0, 1.0))
    assert np.array_equal(stats.area, masks.sum((1, 2)))
    assert np.array_equal(stats.boxes, mask_to_box(masks))
    assert exact_masks(cut, geometry, 0.0) == masks_to_rle(masks)
    # An empty mask and a mask over the whole image.
    edge = np.stack([np.full((256, 256), -50, np.float32), np.full((256, 256), 50, np.float32)])
    full_edge = two_step(torch.from_numpy(edge), inp, orig) > 0
    assert exact_masks(edge, geometry, 0.0) == masks_to_rle(full_edge.numpy())
    assert np.array_equal(exact_stats(edge, geometry, 0.0, 1.0).boxes, mask_to_box(full_edge))


@pytest.mark.parametrize(
    ("orig", "inp"),
    [((1080, 810), (1024, 768)), ((240, 320), (768, 1024))],
    ids=["portrait", "small"],
)
def test_filter_candidates_decides_as_the_full_resolution_path(orig, inp) -> None:
    """The deferred filter keeps exactly the masks the reference's stability filter keeps (at
    thresholds below, at and between the scores), with exact boxes; the survivors' finish gives
    the exact scores and RLEs. Large smooth masks (long contours), a rough one, an empty one
    and a full one."""
    from samkit.masks import masks_to_rle
    from samkit.postprocess.exact import Geometry
    from samkit.postprocess.exact_filter import filter_candidates, finish_candidates

    big = smooth_low_res(6, seed=7) + 15  # mostly above 0: masks over much of the frame
    edge = torch.stack([torch.full((256, 256), -50.0), torch.full((256, 256), 50.0)])
    low = torch.cat([big, smooth_low_res(3, seed=5), low_res(1, seed=6), edge])
    full = two_step(low, inp, orig)
    exact = stability_score(full, 0.0, 1.0)
    masks = (full > 0).numpy()
    geometry = Geometry(256, 1024, inp, orig)
    rows, cols = geometry.used_low_res()
    cut = low.numpy()[:, :rows, :cols]
    finite = np.sort(exact[np.isfinite(exact)])
    for thresh in (0.0, 0.5, float(finite[len(finite) // 2]), 0.95, float(finite[-2])):
        keep, stability, boxes = filter_candidates(cut, geometry, 0.0, 1.0, thresh)
        expected = np.arange(len(low)) if thresh == 0 else np.flatnonzero(exact >= thresh)
        assert np.array_equal(keep, expected), thresh
        assert np.array_equal(boxes, mask_to_box(masks[keep]))
        assert np.all(stability >= np.float32(thresh)) or thresh == 0
        score, rles = finish_candidates(cut[keep], geometry, 0.0, 1.0)
        assert np.array_equal(score, exact[keep], equal_nan=True)
        assert rles == masks_to_rle(masks[keep])


def test_exact_path_takes_empty_batches() -> None:
    from samkit.postprocess.exact import Geometry, exact_masks
    from samkit.postprocess.exact_filter import exact_stats

    geometry = Geometry(256, 1024, (768, 1024), (240, 320))
    empty = np.zeros((0, 256, 256), np.float32)
    stats = exact_stats(empty, geometry, 0.0, 1.0)
    assert stats.stability.shape == (0,) and stats.boxes.shape == (0, 4)
    assert exact_masks(empty, geometry, 0.0) == []
    for logits in (empty, torch.from_numpy(empty)):  # the low-res filter's path
        keep, stab, masks = filter_stable(logits, 0.0, 1.0, 0.95)
        assert keep.shape == stab.shape == (0,) and masks.shape == (0, 256, 256)

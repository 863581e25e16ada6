"""CPU fast paths of the encoders and the decoder against their plain computation.

- TinyViT's MBConv a band of rows at a time (spread over Python threads) == the whole-map
  block, fp32 <= 1e-5 relative, for batch > 1 and heights that leave a short last band;
- the worker threads re-enter the caller's inference mode, grad mode and autocast, and a
  task's error reaches the caller;
- TinyViT window attention on CPU (batched products, bias added in place) == the reference's
  arithmetic (``fused = False``) and == scaled_dot_product_attention;
- ``devices.serial`` runs on one thread and restores the caller's count, also after an error.
"""

from __future__ import annotations

import threading

import pytest
import torch

from reference import randomize_batchnorm
from samkit import device as devices
from samkit.modeling import parallel
from samkit.modeling.tiny_vit import Attention, MBConv


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


def _mbconv(chans: int = 16, seed: int = 0) -> MBConv:
    gen = torch.Generator().manual_seed(seed)
    block = MBConv(chans, 4.0)
    randomize_batchnorm(block, gen)
    for module in block.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.weight.data.normal_(0, 0.2, generator=gen)
    block.eval()
    for conv in (block.conv1, block.conv2, block.conv3):
        conv.fuse()
    return block


@pytest.mark.parametrize("shape", [(1, 16, 128, 128), (2, 16, 150, 131)])
def test_mbconv_bands_equal_whole_map(shape) -> None:
    block = _mbconv()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    x_cl = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        assert block._bands_ok(x_cl) and not block._bands_ok(x)
        whole = block(x)  # channels-first: the whole-map path
        bands = block(x_cl)
    print(f"bands vs whole map: {_rel(bands, whole):.1e}")
    assert bands.shape == whole.shape
    assert _rel(bands, whole) <= 1e-5
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        low = block(x_cl)
    assert _rel(low.float(), whole) <= 0.05  # bf16 inside the bands, still the same block


def test_parallel_run_carries_modes_and_errors() -> None:
    seen: list[tuple[bool, bool, torch.dtype | None, int]] = []
    lock = threading.Lock()

    def task() -> None:
        dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None
        with lock:
            seen.append(
                (
                    torch.is_inference_mode_enabled(),
                    torch.is_grad_enabled(),
                    dtype,
                    torch.get_num_threads(),
                )
            )

    threads = torch.get_num_threads()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        parallel.run([task] * 6, workers=3)
    assert len(seen) == 6
    assert all(s == (True, False, torch.bfloat16, 1) for s in seen)
    assert torch.get_num_threads() == threads

    def boom() -> None:
        raise ValueError("band failed")

    with pytest.raises(ValueError, match="band failed"):
        parallel.run([task, boom, task, task], workers=2)
    assert torch.get_num_threads() == threads


@pytest.mark.parametrize(("dim", "heads", "window", "batch"), [(64, 2, 7, 9), (96, 3, 14, 2)])
def test_tinyvit_attention_cpu_path(dim, heads, window, batch) -> None:
    gen = torch.Generator().manual_seed(2)
    attn = Attention(dim, heads, window)
    with torch.no_grad():
        for p in attn.parameters():
            p.normal_(0, 0.2, generator=gen)
    x = torch.randn(batch, window * window, dim, generator=gen)
    with torch.inference_mode():
        fast = attn(x)
        attn.fused = False
        plain = attn(x)
        attn.fused = True
        q, k, v = (
            attn.qkv(attn.norm(x))
            .view(batch, window * window, heads, 3 * attn.key_dim)
            .permute(0, 2, 1, 3)
            .split(attn.key_dim, dim=3)
        )
        bias = attn.attention_biases[:, attn.attention_bias_idxs]
        sdpa = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        sdpa = attn.proj(sdpa.transpose(1, 2).reshape(batch, window * window, dim))
    print(f"cpu path vs plain {_rel(fast, plain):.1e}, vs sdpa {_rel(fast, sdpa):.1e}")
    assert _rel(fast, plain) <= 1e-5 and _rel(fast, sdpa) <= 1e-5


def test_serial_restores_threads() -> None:
    threads = torch.get_num_threads()
    with devices.serial():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == threads
    with pytest.raises(RuntimeError), devices.serial():
        raise RuntimeError("inside")
    assert torch.get_num_threads() == threads
    with devices.serial(False):
        assert torch.get_num_threads() == threads

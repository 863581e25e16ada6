"""The mask decoder's fast path: the same function as the two-way transformer and the output
upscaling, computed with far fewer multiply-adds.

Three facts make it cheaper at identical results (up to float rounding):

- Prompt-independent work. In the first block, the token-to-image keys / values and the
  image-to-token queries are projections of the image embedding (+ the no-mask embedding and
  the positional encoding) alone. :func:`prepare_image` computes them once per image
  (:class:`DecoderCache`); a decoder call with many prompts but one image computes them once.
  This holds only when there is no mask prompt (the dense embedding is then a constant).
- Re-association. With a few prompt tokens (N ~ 7) and 8 heads, the cross attentions project
  the N token vectors through the weight matrices instead of projecting the 4096 image tokens:
  ``(q W_k)(x)^T`` instead of ``q (x W_k^T)^T``, and ``(softmax x) W_v^T`` instead of
  ``softmax (x W_v^T)``; the key bias adds a per-row constant that softmax ignores, and the
  value bias passes through because softmax rows sum to one. It cuts each cross attention's
  work about 2.3x and is used while ``N * heads < internal width``.
- Channels-last upscaling. A 2x2 stride-2 transposed convolution is one matrix product per
  pixel; computed on the (B, h*w, C) tokens it needs no layout change, its LayerNorm2d is a
  plain last-axis layer norm, and only the final (B, M, 4h, 4w) logits are re-laid out.

The reference path (the modules' own ``forward``) is kept for tracing / ONNX export and meta
tensors (FLOP counting of the nominal model); each decoder's ``fast`` attribute selects it.
Token-sized sections are marked with :func:`samkit.device.token_work`; whether they run on one
CPU thread is the engine's thread policy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from samkit import device as devices
from samkit.modeling.common import LayerNorm2d, act_, inplace_ok
from samkit.modeling.transformer import Attention, TwoWayAttentionBlock, TwoWayTransformer


@dataclass(frozen=True)
class DecoderCache:
    """Prompt-independent decoder work for one image without a mask prompt.

    keys / key_pe / keys_pe: (1, L, C) image tokens (+ no-mask embedding), their positional
    encoding, and the sum; image_pe (1, C, h, w) that encoding as a grid. t2i_k / t2i_v / i2t_q: (1, heads, L, head_dim) first-block
    projections. ``source`` is the (1, C, h, w) embedding the cache was computed from.
    """

    source: torch.Tensor
    image_pe: torch.Tensor
    keys: torch.Tensor
    key_pe: torch.Tensor
    keys_pe: torch.Tensor
    t2i_k: torch.Tensor
    t2i_v: torch.Tensor
    i2t_q: torch.Tensor

    def matches(self, image_embeddings: torch.Tensor) -> bool:
        """True when the cache was computed from this very embedding tensor."""
        src = self.source
        return image_embeddings is src or (
            image_embeddings.shape == src.shape
            and image_embeddings.dtype == src.dtype
            and image_embeddings.device == src.device
            and image_embeddings.data_ptr() == src.data_ptr()
        )


@dataclass(frozen=True)
class OutputLimits:
    """What a caller will read of one decoder call's low-res logits (segment everything), so
    that the output upscaling (about half of a decoder call) skips the rest:

    rows / cols: only low-res rows ``[:rows]`` and columns ``[:cols]`` are read (the resized
        image's part; the padding's logits never reach a mask); the others come back as 0.
    iou_floor: a prompt none of whose returned masks has predicted IoU ``> iou_floor`` is not
        upscaled; its logits come back as 0 (the caller drops it by that filter anyway).

    Every logit that is computed equals the unlimited call's (the upscaling works per pixel).
    """

    rows: int | None = None
    cols: int | None = None
    iou_floor: float | None = None


def fast_path_allowed(x: torch.Tensor) -> bool:
    """The fast path is skipped while tracing / exporting and on meta tensors."""
    return not (x.is_meta or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export())


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, N, D) -> (B, heads, N, D / heads)."""
    b, n, d = x.shape
    return x.view(b, n, heads, d // heads).transpose(1, 2)


def prepare_image(
    transformer: TwoWayTransformer,
    image_embeddings: torch.Tensor,
    no_mask_embed: torch.Tensor,
    image_pe: torch.Tensor,
) -> DecoderCache:
    """Compute the first block's image-side projections.

    image_embeddings / image_pe: (1, C, h, w); no_mask_embed: (1, C) (the dense embedding
    used when no mask prompt is given).
    """
    block = transformer.layers[0]
    if not isinstance(block, TwoWayAttentionBlock):  # pragma: no cover - construction guarantees it
        raise TypeError("unexpected transformer layer type")
    keys = (image_embeddings + no_mask_embed.reshape(1, -1, 1, 1)).flatten(2).transpose(1, 2)
    keys = keys.contiguous()  # (1, L, C) row-major: every later op on it stays contiguous
    key_pe = image_pe.flatten(2).transpose(1, 2).contiguous()
    keys_pe = keys + key_pe
    t2i, i2t = block.cross_attn_token_to_image, block.cross_attn_image_to_token
    return DecoderCache(
        source=image_embeddings,
        image_pe=image_pe,
        keys=keys,
        key_pe=key_pe,
        keys_pe=keys_pe,
        t2i_k=_heads(t2i.k_proj(keys_pe), t2i.num_heads),
        t2i_v=_heads(t2i.v_proj(keys), t2i.num_heads),
        i2t_q=_heads(i2t.q_proj(keys_pe), i2t.num_heads),
    )


def _reassociate(attn: Attention, n_tokens: int) -> bool:
    return n_tokens * attn.num_heads < attn.internal_dim


def token_to_image(
    attn: Attention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """Token queries q (B, N, C) attend to image keys k / values v (1 or B, L, C) -> (B, N, C)."""
    b, n, c = q.shape
    if k.shape[0] != b:
        k, v = k.expand(b, -1, -1), v.expand(b, -1, -1)
    if not _reassociate(attn, n):
        return attn(q, k, v)
    h = attn.num_heads
    d = attn.internal_dim // h
    with devices.token_work(q):
        qh = attn.q_proj(q).view(b, n, h, d) * d**-0.5
        # Keys: scores = (q W_k) k^T; the key bias is constant along each softmax row.
        wk = attn.k_proj.weight.view(h, d, c)
        qk = torch.einsum("bnhd,hdc->bhnc", qh, wk).reshape(b, h * n, c)
    weights = torch.bmm(qk, k.transpose(1, 2)).softmax(dim=-1)
    # Values: (weights v) W_v^T + b_v, since each row of weights sums to one.
    mixed = torch.bmm(weights, v).view(b, h, n, c)
    with devices.token_work(q):
        wv = attn.v_proj.weight.view(h, d, c)
        out = torch.einsum("bhnc,hdc->bnhd", mixed, wv).reshape(b, n, h * d) + attn.v_proj.bias
        return attn.out_proj(out)


def image_to_token(
    attn: Attention,
    x: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    q_heads: torch.Tensor | None = None,
    residual: torch.Tensor | None = None,
    overwrite: bool = False,
) -> torch.Tensor:
    """Image queries x (1 or B, L, C) attend to token keys k / values v (B, N, C) -> (B, L, C).

    ``q_heads`` (1, heads, L, head_dim): the image queries already projected (cached).
    ``residual`` (1 or B, L, C): added to the result inside the output product; with
    ``overwrite`` a batch-B residual that autograd does not need receives the sum in place.
    """
    b, n, c = k.shape
    h = attn.num_heads
    d = attn.internal_dim // h
    if q_heads is None and not _reassociate(attn, n):
        out = attn(x.expand(b, -1, -1), k, v)
        return out if residual is None else residual + out
    with devices.token_work(k):
        kh = attn.k_proj(k).view(b, n, h, d) * d**-0.5
        if q_heads is not None:
            kk = kh.permute(2, 0, 1, 3).reshape(h, b * n, d)
        else:
            wq = attn.q_proj.weight.view(h, d, c)
            mk = torch.einsum("bnhd,hdc->bhnc", kh, wq).reshape(b, h * n, c)
            q_bias = attn.q_proj.bias.view(h, d)
            bias = torch.einsum("bnhd,hd->bhn", kh, q_bias).reshape(b, h * n, 1)
        # Output projection folded into the values: sum_h weights_h^T (v_h W_o,h^T). Each
        # head's weights sum to one over the tokens, so b_o / heads on every row adds b_o once.
        vh = attn.v_proj(v).view(b, n, h, d)
        wo = attn.out_proj.weight.view(c, h, d)
        vo = torch.einsum("bnhd,chd->bhnc", vh, wo).reshape(b, h * n, c)
        vo = vo + attn.out_proj.bias / h
    # Scores are laid out (B, h*N, L) so that the softmax over the few tokens runs along a
    # strided axis with the long image axis contiguous (far faster than rows of N values).
    if q_heads is not None:
        # (B, h, N, d) x (1, h, d, L): one GEMM per head over all prompts.
        scores = torch.matmul(kk, q_heads[0].transpose(1, 2))  # (h, B*N, L)
        scores = scores.view(h, b, n, -1).transpose(0, 1)
    else:
        if x.shape[0] != b:
            x = x.expand(b, -1, -1)
        scores = torch.baddbmm(bias, mk, x.transpose(1, 2)).view(b, h, n, -1)
    weights = scores.softmax(dim=2).reshape(b, h * n, -1).transpose(1, 2)
    if residual is None or residual.dtype != vo.dtype:  # (reduced precision: add in fp32)
        out = torch.bmm(weights, vo)
        return out if residual is None else residual + out
    if overwrite and residual.shape[0] == b and inplace_ok(residual):
        return residual.baddbmm_(weights, vo)
    return torch.baddbmm(residual, weights, vo)


def _block(
    layer: TwoWayAttentionBlock,
    queries: torch.Tensor,
    keys: torch.Tensor,
    query_pe: torch.Tensor,
    key_pe: torch.Tensor,
    cache: DecoderCache | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One two-way block; with ``cache`` the image side is the cached first-block input."""
    with devices.token_work(queries):
        queries = layer.attend_tokens(queries, query_pe)

    t2i = layer.cross_attn_token_to_image
    if cache is not None:
        b, n, _ = queries.shape
        h = t2i.num_heads
        with devices.token_work(queries):
            qh = _heads(t2i.q_proj(queries + query_pe), h)  # (B, h, N, d)
            qh = qh.transpose(0, 1).reshape(1, h, b * n, -1)
        out = F.scaled_dot_product_attention(qh, cache.t2i_k, cache.t2i_v)
        keys_pe = cache.keys_pe
        with devices.token_work(queries):
            out = out.view(h, b, n, -1).permute(1, 2, 0, 3).reshape(b, n, -1)
            attn_out = t2i.out_proj(out)
    else:
        keys_pe = keys + key_pe
        attn_out = token_to_image(t2i, queries + query_pe, keys_pe, keys)
    with devices.token_work(queries):
        queries = layer.norm2(queries + attn_out)
        queries = layer.norm3(queries + layer.mlp(queries))
        tokens_pe = queries + query_pe

    q_heads = cache.i2t_q if cache is not None else None
    keys = image_to_token(
        layer.cross_attn_image_to_token,
        keys_pe,
        tokens_pe,
        queries,
        q_heads,
        residual=keys,
        # the cached keys are shared by every call; under autograd the block's input keys
        # are saved by the token-to-image product above
        overwrite=cache is None and not torch.is_grad_enabled(),
    )
    return queries, layer.norm4(keys)


def transformer_forward(
    transformer: TwoWayTransformer,
    image_embedding: torch.Tensor,
    image_pe: torch.Tensor,
    point_embedding: torch.Tensor,
    cache: DecoderCache | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as :meth:`TwoWayTransformer.forward`.

    With ``cache`` the image side comes from it (``image_embedding`` is then ignored) and the
    first block's image-side projections are skipped. Image tensors may have batch 1 while
    ``point_embedding`` has batch B (one image, many prompts).
    """
    if cache is not None:
        keys, key_pe = cache.keys, cache.key_pe
    else:
        keys = image_embedding.flatten(2).transpose(1, 2).contiguous()
        key_pe = image_pe.flatten(2).transpose(1, 2).contiguous()
    queries = point_embedding
    for i, layer in enumerate(transformer.layers):
        if not isinstance(layer, TwoWayAttentionBlock):  # pragma: no cover
            raise TypeError("unexpected transformer layer type")
        queries, keys = _block(
            layer, queries, keys, point_embedding, key_pe, cache if i == 0 else None
        )
    if keys.shape[0] != queries.shape[0]:
        keys = keys.expand(queries.shape[0], -1, -1)
    attn = token_to_image(
        transformer.final_attn_token_to_image, queries + point_embedding, keys + key_pe, keys
    )
    with devices.token_work(queries):
        return transformer.norm_final_attn(queries + attn), keys


def upscale_limited(
    output_upscaling: nn.Sequential,
    tokens: torch.Tensor,
    hyper_in: torch.Tensor,
    iou: torch.Tensor,
    grid: tuple[int, int],
    limits: OutputLimits,
) -> torch.Tensor:
    """:func:`upscale_masks` under :class:`OutputLimits`: tokens (B, h*w, C), hyper_in
    (B, M, C/8), iou (B, M) of the returned masks -> logits (B, M, 4h, 4w), zero where not
    computed."""
    h, w = grid
    b, m = hyper_in.shape[:2]
    rows = h if limits.rows is None else min(h, -(-int(limits.rows) // 4))
    cols = w if limits.cols is None else min(w, -(-int(limits.cols) // 4))
    active = torch.arange(b, device=tokens.device)
    if limits.iou_floor is not None:
        active = (iou.float() > limits.iou_floor).any(1).nonzero().flatten()
    out = tokens.new_zeros((b, m, 4 * h, 4 * w), dtype=hyper_in.dtype)
    if len(active) == 0 or rows == 0 or cols == 0:
        return out
    grid_tokens = tokens.view(tokens.shape[0], h, w, -1)
    if grid_tokens.shape[0] == b:
        grid_tokens = grid_tokens[active]
    else:
        grid_tokens = grid_tokens.expand(len(active), -1, -1, -1)
    sub = grid_tokens[:, :rows, :cols].reshape(len(active), rows * cols, -1)
    masks = upscale_masks(output_upscaling, sub, hyper_in[active], (rows, cols))
    out[active, :, : 4 * rows, : 4 * cols] = masks.to(out.dtype)
    return out


def upscale_masks(
    output_upscaling: nn.Sequential,
    tokens: torch.Tensor,
    hyper_in: torch.Tensor,
    grid: tuple[int, int],
) -> torch.Tensor:
    """Upscaling convolutions and the hypernetwork product on channels-last tokens.

    tokens (B, h*w, C) image tokens from the transformer; hyper_in (B, M, C/8) per-mask
    weights; grid (h, w). Returns mask logits (B, M, 4h, 4w).
    """
    conv1, norm, act1, conv2, act2 = output_upscaling
    if not (
        isinstance(conv1, nn.ConvTranspose2d)
        and isinstance(conv2, nn.ConvTranspose2d)
        and isinstance(norm, LayerNorm2d)
        and conv1.bias is not None
        and conv2.bias is not None
    ):  # pragma: no cover - construction guarantees it
        raise TypeError("unexpected output_upscaling layout")
    b, n, c = tokens.shape
    c1, c2 = conv1.out_channels, conv2.out_channels
    # ConvTranspose2d weight (in, out, 2, 2) -> (in, (di, dj, out)): one GEMM per pixel.
    w1 = conv1.weight.permute(0, 2, 3, 1).reshape(c, 4 * c1)
    y = torch.addmm(conv1.bias.repeat(4), tokens.reshape(b * n, c), w1).view(b, n * 4, c1)
    y = act_(act1, F.layer_norm(y, (c1,), norm.weight, norm.bias, norm.eps))
    w2 = conv2.weight.permute(0, 2, 3, 1).reshape(c1, 4 * c2)
    z = torch.addmm(conv2.bias.repeat(4), y.view(b * n * 4, c1), w2)
    z = act_(act2, z.view(b, n * 16, c2))
    masks = torch.bmm(z, hyper_in.transpose(1, 2))  # (B, h*w*16, M)
    h, w = grid
    m = hyper_in.shape[1]
    # Index order (i, j, di1, dj1, di2, dj2): row 4i + 2 di1 + di2, column 4j + 2 dj1 + dj2.
    masks = masks.view(b, h, w, 2, 2, 2, 2, m).permute(0, 7, 1, 3, 5, 2, 4, 6)
    return masks.reshape(b, m, 4 * h, 4 * w)

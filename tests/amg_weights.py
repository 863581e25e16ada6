"""Deterministic SAM weights under which "segment everything" draws real, varied masks.

Random weights make the generator degenerate (every mask fails the filters). These weights are
built by hand so that a point prompt at ``p`` yields, for each multimask token i, the mask
``alpha_i * (K(p, x) - t_i) > 0`` with ``K(p, x) = sum_k cos(theta_k(p) - theta_k(x))`` a bump
centred on the prompt (12 low lattice frequencies, period 1.25 image widths, so one bump per
image): three nested discs of different sizes and steepness around every grid point. How the
network is made to compute that:

- encoder: the patch embedding, every block's attention output and MLP output are zero, so the
  tokens are the absolute position embedding, which holds ``[sin theta(x), cos theta(x), -sin,
  -cos]`` per 16x16 patch; the neck maps these into the embedding (zero mean and constant norm
  per pixel, so its LayerNorms only rescale). For a MobileSAM (TinyViT has no absolute position
  embedding) :class:`LocationEncoder` wraps the real encoder and returns the same features, so
  the encoder still costs what it costs.
- prompt encoder: the random-Fourier matrix holds the same 12 frequencies (the rest zero), so a
  point's embedding carries ``sin/cos theta(p)``; every learned embedding is zero.
- decoder: layer 0's self-attention has zero query/key projections (uniform attention), so every
  token becomes the point's ``[sin, cos, -sin, -cos]``; every other attention output and MLP
  output is zero, so tokens and image features pass through (LayerNorms only rescale). The
  upscaling path keeps the image features linear (shifted by +10 so the GELUs act as identity)
  and adds a constant channel; each hypernetwork MLP splits features into ReLU-safe +/- halves and
  outputs ``alpha_i [sin, cos](p)`` plus the constant-channel weight that turns the dot product
  into ``alpha_i * (K - t_i)``. The IoU head outputs ``base_i + 0.04 sin theta_1(p) + 0.03 cos
  theta_6(p)``, so predicted IoU varies smoothly over the image and some masks fall below 0.88.
"""

from __future__ import annotations

import math

import torch

FREQS = (
    torch.tensor(
        [
            (1, 0),
            (0, 1),
            (1, 1),
            (1, -1),
            (2, 0),
            (0, 2),
            (2, 1),
            (1, 2),
            (2, -1),
            (1, -2),
            (2, 2),
            (2, -2),
        ],
        dtype=torch.float32,
    )
    * 0.4
)  # (12, 2) cycles per unit of the PE's [-1, 1] coordinate
N_FREQ = FREQS.shape[0]
F = 2 * N_FREQ  # [sin, cos] features
ALPHA = (20.0, 40.0, 30.0, 15.0)  # token 0 (single mask), then the three multimask tokens
THRESH = (6.0, 9.0, 6.0, 3.0)  # bump level each token's mask cuts at (peak is 12)
IOU_BASE = (0.9, 0.93, 0.91, 0.89)
# Large discs (benchmark and parity scenes of masks covering much of the image): areas about
# 15-20 %, 20-30 %, 50-60 % and 75-85 % of the image for the four tokens.
LARGE_THRESH = (1.0, 1.5, -0.5, -1.5)
# Predicted IoU high enough that every mask passes the default 0.88 filter.
HIGH_IOU = (0.97, 0.97, 0.97, 0.97)


def location_features(h: int = 64, w: int = 64) -> torch.Tensor:
    """(h, w, 2F) features ``[sin, cos, -sin, -cos]`` of the grid cell centres, in the prompt
    encoder's frame (cell centre / size, mapped to [-1, 1])."""
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) / h
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) / w
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # (h, w, 2) as (x, y)
    theta = 2 * math.pi * ((2 * grid - 1) @ FREQS.T)  # (h, w, N_FREQ)
    sc = torch.cat([theta.sin(), theta.cos()], dim=-1)
    return torch.cat([sc, -sc], dim=-1)


class LocationEncoder(torch.nn.Module):
    """Runs the wrapped encoder (for its cost) and returns :func:`location_features` laid into
    256 channels, shape (B, 256, 64, 64)."""

    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.inner = encoder
        self.img_size = encoder.img_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        feats = torch.zeros_like(out)
        loc = location_features(out.shape[-2], out.shape[-1]).permute(2, 0, 1)
        feats[:, : loc.shape[0]] = loc.to(out)
        return feats


def features_at(positions: torch.Tensor) -> torch.Tensor:
    """(n, 2F) features ``[sin, cos, -sin, -cos]`` of positions (n, 2) ``(x, y)`` in [0, 1]."""
    theta = 2 * math.pi * ((2 * positions - 1) @ FREQS.T)
    sc = torch.cat([theta.sin(), theta.cos()], dim=-1)
    return torch.cat([sc, -sc], dim=-1)


def region_map(h: int, w: int, n_regions: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A Voronoi tessellation of an (h, w) grid of cells: ``(centres (n, 2) (x, y) in [0, 1],
    labels (h, w) int64)``, each cell labelled with its nearest centre (seeded)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(n_regions, 2, generator=g)
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) / h
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) / w
    cells = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(-1, 2)
    labels = torch.cdist(cells, centres).argmin(dim=1).reshape(h, w)
    return centres, labels


class RegionEncoder(LocationEncoder):
    """For :func:`object_weights`: runs the wrapped encoder (for its cost) and returns, in
    channels ``2F .. 4F``, the location features of the centre of each cell's region in a
    seeded Voronoi tessellation of ``n_regions`` regions ("objects")."""

    def __init__(self, encoder: torch.nn.Module, n_regions: int = 40, seed: int = 0) -> None:
        super().__init__(encoder)
        self.n_regions, self.seed = n_regions, seed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        h, w = out.shape[-2:]
        # The regions tile the image's part of the padded input; the padding continues the
        # edge regions (as a real encoder's features carry on past the image's edge).
        used = x[0].abs().sum(0) > 0
        rows = max(1, -(-int(used.any(1).sum()) * h // x.shape[-2]))
        cols = max(1, -(-int(used.any(0).sum()) * w // x.shape[-1]))
        centres, labels = region_map(rows, cols, self.n_regions, self.seed)
        labels = labels[torch.arange(h).clamp(max=rows - 1)][:, torch.arange(w).clamp(max=cols - 1)]
        loc = features_at(centres)[labels].permute(2, 0, 1)  # (2F, h, w)
        feats = torch.zeros_like(out)
        feats[:, 2 * F : 4 * F] = loc.to(out)
        return feats


OBJECT_SHARPNESS = (
    1000.0  # scale of the point-to-image attention scores: reads the cell under the point
)
OBJECT_GAIN = 100.0  # weight of the attended region code against the point's own features


def object_weights(
    state: dict[str, torch.Tensor],
    thresh: tuple[float, ...] = THRESH,
    iou_base: tuple[float, ...] = IOU_BASE,
) -> dict[str, torch.Tensor]:
    """:func:`blob_weights` turned into an object model, for an image encoder whose output is
    :class:`RegionEncoder`'s. The first block's token-to-image attention (two heads, scores
    ``OBJECT_SHARPNESS * K(p, x)`` over 8 of the frequencies, peaked at the prompt) copies the
    region code found under the prompt into every token; the hypernetworks and the upscaling read
    region codes instead of locations. A point in region ``r`` then yields, per token, the
    union of the regions whose centres lie in that token's disc around ``r``'s centre: every
    point of one region gets the same masks (near region edges a blend), as every point on one
    object of a real scene gets that object's masks. Predicted IoU still varies with the point.
    """
    state = blob_weights(state)
    d = "mask_decoder."
    up0 = torch.zeros(256, 64, 2, 2)
    up0[range(2 * F, 4 * F), range(2 * F)] = 1.0
    state[d + "output_upscaling.0.weight"] = up0
    # Tokens after the first self-attention + LayerNorm: [sin, cos, -sin, -cos](p) * tok_gain.
    tok_gain = math.sqrt(256 / F)
    t2i = d + "transformer.layers.0.cross_attn_token_to_image."
    q, k, v = torch.zeros(128, 256), torch.zeros(128, 256), torch.zeros(128, 256)
    out = torch.zeros(256, 128)
    n_att = 8  # frequencies the scores use: head dim 16 = 8 x (sin, cos)
    for head in range(2):
        base = 16 * head
        for j in range(n_att):  # score = q.k / sqrt(16) = sharpness * K_8(p, x)
            q[base + j, j] = OBJECT_SHARPNESS * 4.0 / tok_gain
            q[base + n_att + j, N_FREQ + j] = OBJECT_SHARPNESS * 4.0 / tok_gain
            k[base + j, j] = 1.0  # dense positional encoding: sin k at k, cos k at 128 + k
            k[base + n_att + j, 128 + j] = 1.0
    for c in range(F):  # the region code [sin, cos] (F values) through heads 0 and 1
        v[c, 2 * F + c] = 1.0  # rows 0-15 head 0, 16-23 head 1
        out[2 * F + c, c] = OBJECT_GAIN
        out[3 * F + c, c] = -OBJECT_GAIN
    for name, w in (("q_proj", q), ("k_proj", k), ("v_proj", v), ("out_proj", out)):
        state[t2i + name + ".weight"] = w
        _zero(state, t2i + name + ".bias")
    # LayerNorm'd token: point part scaled by tok_gain / sigma, region part by gain / sigma.
    sigma = math.sqrt((256 + F * OBJECT_GAIN**2) / 256)
    for i in range(4):
        p = f"{d}output_hypernetworks_mlps.{i}."
        w0 = torch.zeros(256, 256)
        w0[range(2 * F), range(2 * F, 4 * F)] = sigma / OBJECT_GAIN
        state[p + "layers.0.weight"] = w0
    iou0 = d + "iou_prediction_head.layers.0.weight"
    state[iou0] = state[iou0] * sigma
    return state


def _zero(state: dict[str, torch.Tensor], key: str) -> None:
    state[key] = torch.zeros_like(state[key])


def _eye(rows: int, cols: int, n: int, scale: float = 1.0) -> torch.Tensor:
    m = torch.zeros(rows, cols)
    m[range(n), range(n)] = scale
    return m


def blob_weights(
    state: dict[str, torch.Tensor],
    thresh: tuple[float, ...] = THRESH,
    iou_base: tuple[float, ...] = IOU_BASE,
) -> dict[str, torch.Tensor]:
    """Rewrite a SAM state dict (official key names, any encoder) into the blob model described
    in the module docstring. The encoder part is rewritten only for a ViT encoder.

    ``thresh``: the bump level each of the four tokens cuts at (peak 12; lower = larger discs,
    see :data:`LARGE_THRESH`); ``iou_base``: each token's predicted IoU at the image's centre
    (it varies by +-0.07 over the image; :data:`HIGH_IOU` passes every mask)."""
    state = {k: v.clone() for k, v in state.items()}
    # ---------------------------------------------------------------- encoder (ViT only)
    if "image_encoder.pos_embed" in state:
        for key in list(state):
            if key.startswith("image_encoder.patch_embed.proj.") or any(
                s in key for s in (".attn.proj.", ".mlp.lin2.")
            ):
                _zero(state, key)
        pos = state["image_encoder.pos_embed"]
        pos.zero_()
        pos[0, :, :, : 2 * F] = location_features(pos.shape[1], pos.shape[2])
        c = pos.shape[-1]
        state["image_encoder.neck.0.weight"] = _eye(256, c, 2 * F)[:, :, None, None]
        conv = torch.zeros(256, 256, 3, 3)
        conv[range(256), range(256), 1, 1] = 1.0
        state["image_encoder.neck.2.weight"] = conv
        for n in ("1", "3"):
            state[f"image_encoder.neck.{n}.weight"] = torch.ones(256)
            state[f"image_encoder.neck.{n}.bias"] = torch.zeros(256)
    # ----------------------------------------------------------------- prompt encoder
    gauss = torch.zeros(2, 128)
    gauss[:, :N_FREQ] = FREQS.T
    state["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"] = gauss
    for key in list(state):
        if key.startswith(
            (
                "prompt_encoder.point_embeddings",
                "prompt_encoder.not_a_point",
                "prompt_encoder.no_mask",
            )
        ):
            _zero(state, key)
    # ----------------------------------------------------------------- decoder
    d = "mask_decoder."
    _zero(state, d + "iou_token.weight")
    _zero(state, d + "mask_tokens.weight")
    for key in list(state):
        if not key.startswith(d + "transformer."):
            continue
        if "norm" in key:
            state[key] = (
                torch.ones_like(state[key])
                if key.endswith("weight")
                else torch.zeros_like(state[key])
            )
        elif ".out_proj." in key or ".mlp.lin2." in key:
            _zero(state, key)
    sa = d + "transformer.layers.0.self_attn."
    for key in (
        "q_proj.weight",
        "q_proj.bias",
        "k_proj.weight",
        "k_proj.bias",
        "v_proj.bias",
        "out_proj.bias",
    ):
        _zero(state, sa + key)
    v = torch.zeros(256, 256)
    for k in range(N_FREQ):  # PE channels: sin k at k, cos k at 128 + k
        for sign, offset in ((1.0, 0), (-1.0, F)):
            v[offset + k, k] = 10.0 * sign
            v[offset + N_FREQ + k, 128 + k] = 10.0 * sign
    state[sa + "v_proj.weight"] = v
    state[sa + "out_proj.weight"] = torch.eye(256)
    # upscaling: image features [f, -f] -> LayerNorm (+10) -> GELU -> [f + 10, 10, ...] -> GELU
    up0 = torch.zeros(256, 64, 2, 2)
    up0[range(2 * F), range(2 * F)] = 1.0
    state[d + "output_upscaling.0.weight"] = up0
    _zero(state, d + "output_upscaling.0.bias")
    state[d + "output_upscaling.1.weight"] = torch.ones(64)
    state[d + "output_upscaling.1.bias"] = torch.full((64,), 10.0)
    ln_gain = math.sqrt(64 / F)  # LayerNorm of [f, -f, 0...] over 64 channels scales by this
    up3 = torch.zeros(64, 32, 2, 2)
    for k in range(F):
        up3[k, k] = 0.5 / ln_gain
        up3[F + k, k] = -0.5 / ln_gain
    state[d + "output_upscaling.3.weight"] = up3
    state[d + "output_upscaling.3.bias"] = torch.full((32,), 10.0)
    # token MLPs: LayerNorm'd token [f, -f] (scaled by tok_gain) -> ReLU halves -> linear head
    tok_gain = math.sqrt(256 / F)

    def first_layers(prefix: str) -> None:
        state[prefix + "layers.0.weight"] = _eye(256, 256, 2 * F, 1.0 / tok_gain)
        state[prefix + "layers.1.weight"] = _eye(256, 256, 2 * F)
        _zero(state, prefix + "layers.0.bias")
        _zero(state, prefix + "layers.1.bias")

    for i in range(4):
        p = f"{d}output_hypernetworks_mlps.{i}."
        first_layers(p)
        w = torch.zeros(32, 256)
        w[range(F), range(F)] = ALPHA[i]
        w[range(F), range(F, 2 * F)] = -ALPHA[i]
        w[F, :F] = -ALPHA[i]
        w[F, F : 2 * F] = ALPHA[i]
        b = torch.zeros(32)
        b[F] = -ALPHA[i] * thresh[i] / 10.0
        state[p + "layers.2.weight"] = w
        state[p + "layers.2.bias"] = b
    p = d + "iou_prediction_head."
    first_layers(p)
    w = torch.zeros(4, 256)
    w[:, 1] = 0.04  # + 0.04 sin theta_1(p)
    w[:, F + 1] = -0.04
    w[:, N_FREQ + 6] = 0.03  # + 0.03 cos theta_6(p)
    w[:, F + N_FREQ + 6] = -0.03
    state[p + "layers.2.weight"] = w
    state[p + "layers.2.bias"] = torch.tensor(iou_base)
    return state


def blob_pair(
    encoder: object,
    thresh: tuple[float, ...] = THRESH,
    iou_base: tuple[float, ...] = IOU_BASE,
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """``(reference, samkit)`` SAMs with the ViT ``encoder`` config (a ``ViTConfig``) and the
    same :func:`blob_weights` (seeded; ``thresh``, ``iou_base`` as there), both in eval mode:
    the parity tests' pair."""
    from reference import randomize, reference_vit
    from samkit.build import build_from_config
    from samkit.registry import SamConfig

    ref = reference_vit(encoder)
    state = blob_weights(randomize(ref, 0), thresh, iou_base)
    ref.load_state_dict(state)
    ours = build_from_config(SamConfig(encoder=encoder))
    ours.load_state_dict(state)
    return ref.eval(), ours.eval()

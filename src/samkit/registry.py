"""Model variants: architecture configs, weight specs (url, sha256, size) and aliases.

Everything a variant needs to be built or fetched lives here as frozen data; builders in
:mod:`samkit.build` turn a :class:`SamConfig` into a network.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from samkit.errors import SamkitError, UnknownKeyError
from samkit.zoo.configs import (
    EDGE_SAM_M1,
    EFFICIENTVIT_L0,
    EFFICIENTVIT_L1,
    EFFICIENTVIT_L2,
    EFFICIENTVIT_XL0,
    EFFICIENTVIT_XL1,
    REPVIT_SAM_M23,
)

PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class ViTConfig:
    """Plain ViT image encoder (SAM ViT-B/L/H) with windowed and global attention."""

    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11)
    patch_size: int = 16
    window_size: int = 14
    mlp_ratio: float = 4.0
    img_size: int = 1024
    out_chans: int = 256
    qkv_bias: bool = True
    use_rel_pos: bool = True

    @property
    def kind(self) -> str:
        return "vit"

    @property
    def embedding_size(self) -> int:
        """Side of the square embedding grid (``img_size // patch_size``)."""
        return self.img_size // self.patch_size

    def at_image_size(self, side: int) -> ViTConfig:
        """The same encoder taking ``side`` px inputs."""
        if side % self.patch_size:
            raise SamkitError(f"a ViT with patch {self.patch_size} cannot take a {side} px input")
        return replace(self, img_size=side)


@dataclass(frozen=True)
class TinyViTConfig:
    """TinyViT image encoder (MobileSAM)."""

    embed_dims: tuple[int, ...] = (64, 128, 160, 320)
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (2, 4, 5, 10)
    window_sizes: tuple[int, ...] = (7, 7, 14, 7)
    mlp_ratio: float = 4.0
    mbconv_expand_ratio: float = 4.0
    local_conv_size: int = 3
    img_size: int = 1024
    out_chans: int = 256

    @property
    def kind(self) -> str:
        return "tiny_vit"

    @property
    def embedding_size(self) -> int:
        """Side of the square embedding grid (``img_size // 16``)."""
        return self.img_size // 16

    def at_image_size(self, side: int) -> TinyViTConfig:
        """The same encoder taking ``side`` px inputs."""
        return replace(self, img_size=side)


class EncoderConfig(Protocol):
    """What every image-encoder config of a SAM-style family has (the families own the
    concrete types: :class:`ViTConfig`, :class:`TinyViTConfig`, or a registered family's)."""

    @property
    def img_size(self) -> int: ...
    @property
    def out_chans(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def embedding_size(self) -> int: ...
    def at_image_size(self, side: int) -> Any: ...


@dataclass(frozen=True)
class SamConfig:
    """Everything needed to build a SAM network: encoder config plus prompt encoder and decoder."""

    encoder: EncoderConfig = field(default_factory=ViTConfig)
    prompt_embed_dim: int = 256
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_num_heads: int = 8
    decoder_mlp_dim: int = 2048
    num_multimask_outputs: int = 3
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256
    pixel_mean: tuple[float, float, float] = PIXEL_MEAN
    pixel_std: tuple[float, float, float] = PIXEL_STD

    @property
    def image_size(self) -> int:
        return self.encoder.img_size

    @property
    def image_embedding_size(self) -> int:
        """Side of the square image embedding grid (64 for the official models)."""
        return self.encoder.embedding_size


@dataclass(frozen=True)
class SamHQConfig(SamConfig):
    """SAM-HQ (:mod:`samkit.modeling.hq`): a SAM config plus the width of the early encoder
    feature its decoder fuses (the ViT's embedding width; 160 for Light HQ-SAM's TinyViT)."""

    hq_vit_dim: int = 768


@dataclass(frozen=True)
class WeightSpec:
    """Where the official checkpoint of a variant lives and how to verify it."""

    filename: str
    url: str
    sha256: str  # "" when the publisher gives none (the download is then checked by size only)
    size: int | None = None  # bytes; None when only approximately known


@dataclass(frozen=True)
class Variant:
    name: str
    aliases: tuple[str, ...]
    config: SamConfig
    weights: WeightSpec
    description: str = ""
    licence: str = "Apache-2.0"
    accuracy: str = ""  # the published accuracy anchor, with its source


VIT_B = ViTConfig(embed_dim=768, depth=12, num_heads=12, global_attn_indexes=(2, 5, 8, 11))
VIT_L = ViTConfig(embed_dim=1024, depth=24, num_heads=16, global_attn_indexes=(5, 11, 17, 23))
VIT_H = ViTConfig(embed_dim=1280, depth=32, num_heads=16, global_attn_indexes=(7, 15, 23, 31))
TINY_VIT = TinyViTConfig()
# SlimSAM (czg1225/SlimSAM, segment_anything/build_sam.py): ViT-B pruned to these widths.
SLIM_50 = ViTConfig(embed_dim=384, depth=12, num_heads=12, global_attn_indexes=(2, 5, 8, 11))
SLIM_77 = ViTConfig(
    embed_dim=168, depth=12, num_heads=12, global_attn_indexes=(2, 5, 8, 11), mlp_ratio=696 / 168
)

VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(
            name="sam_b",
            aliases=("vit_b",),
            config=SamConfig(encoder=VIT_B),
            weights=WeightSpec(
                filename="sam_vit_b_01ec64.pth",
                url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
                sha256="ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
                size=375_042_383,
            ),
            description="SAM ViT-B (Meta)",
        ),
        Variant(
            name="sam_l",
            aliases=("vit_l",),
            config=SamConfig(encoder=VIT_L),
            weights=WeightSpec(
                filename="sam_vit_l_0b3195.pth",
                url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
                sha256="3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
                size=1_249_524_607,
            ),
            description="SAM ViT-L (Meta)",
        ),
        Variant(
            name="sam_h",
            aliases=("vit_h", "default"),
            config=SamConfig(encoder=VIT_H),
            weights=WeightSpec(
                filename="sam_vit_h_4b8939.pth",
                url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
                sha256="a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
                size=2_564_550_879,
            ),
            description="SAM ViT-H (Meta)",
        ),
        Variant(
            name="mobile_sam",
            aliases=("vit_t",),
            config=SamConfig(encoder=TINY_VIT),
            weights=WeightSpec(
                filename="mobile_sam.pt",
                url="https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt",
                sha256="6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f",
                size=40_728_226,
            ),
            description="MobileSAM (TinyViT encoder)",
        ),
    )
}


def _zoo(
    name: str,
    config: SamConfig,
    file: tuple[str, str, str, int | None],
    description: str,
    accuracy: str,
    licence: str = "Apache-2.0",
    aliases: tuple[str, ...] = (),
) -> Variant:
    """A published model beyond SAM-1 / MobileSAM; ``file`` is (cache name, url, sha256 or "",
    size in bytes or None)."""
    filename, url, sha256, size = file
    spec = WeightSpec(filename=filename, url=url, sha256=sha256, size=size)
    return Variant(name, aliases, config, spec, description, licence, accuracy)


_HF = "https://huggingface.co"
# The efficient-SAM zoo (facts from each model's repository; see the README's model table).
ZOO: tuple[Variant, ...] = (
    _zoo(
        "tinysam",
        SamConfig(encoder=TINY_VIT),
        (
            "tinysam_42.3.pth",
            "https://github.com/xinghaochen/TinySAM/releases/download/3.0/tinysam_42.3.pth",
            "",
            None,
        ),
        "TinySAM (MobileSAM's TinyViT, full-stage distillation; its predictor returns the 3 "
        "multimask outputs: pass multimask_output=True)",
        "COCO AP 42.3 (ViTDet boxes; MobileSAM 41.0), xinghaochen/TinySAM README",
    ),
    _zoo(
        "slimsam_50",
        SamConfig(encoder=SLIM_50),
        (
            "slimsam_uniform_50.safetensors",
            f"{_HF}/Zigeng/SlimSAM-uniform-50/resolve/main/model.safetensors",
            "",
            None,
        ),
        "SlimSAM-50 (SAM ViT-B pruned to width 384, uniform; Hugging Face SamModel file)",
        "",
    ),
    _zoo(
        "slimsam_77",
        SamConfig(encoder=SLIM_77),
        (
            "slimsam_uniform_77.safetensors",
            f"{_HF}/Zigeng/SlimSAM-uniform-77/resolve/main/model.safetensors",
            "",
            None,
        ),
        "SlimSAM-77 (SAM ViT-B pruned to width 168, MLP 696, uniform; Hugging Face SamModel file)",
        "COCO AP 41.3 (TinySAM README's table)",
    ),
)


def _hq(name: str, encoder: EncoderConfig, early: int, file: str, what: str, acc: str) -> Variant:
    """A SAM-HQ variant (SysCV/sam-hq; files on Hugging Face ``lkeab/hq-sam``)."""
    url = f"{_HF}/lkeab/hq-sam/resolve/main/{file}"
    config = SamHQConfig(encoder=encoder, hq_vit_dim=early)
    return _zoo(name, config, (file, url, "", None), what, acc)


ZOO_HQ: tuple[Variant, ...] = (
    _hq("sam_hq_b", VIT_B, 768, "sam_hq_vit_b.pth", "HQ-SAM ViT-B (SAM-B + HQ token)", ""),
    _hq("sam_hq_l", VIT_L, 1024, "sam_hq_vit_l.pth", "HQ-SAM ViT-L (SAM-L + HQ token)", ""),
    _hq("sam_hq_h", VIT_H, 1280, "sam_hq_vit_h.pth", "HQ-SAM ViT-H (SAM-H + HQ token)", ""),
    _hq(
        "sam_hq_tiny",
        TINY_VIT,
        160,
        "sam_hq_vit_tiny.pth",
        "Light HQ-SAM (TinyViT + HQ token)",
        "COCO AP 45.0 with FocalNet-DINO boxes (MobileSAM 44.3), SysCV/sam-hq README",
    ),
)


def _evit(name: str, encoder: EncoderConfig, published: str) -> Variant:
    """An EfficientViT-SAM variant (files on Hugging Face ``mit-han-lab/efficientvit-sam``)."""
    file = f"efficientvit_sam_{name}.pt"
    url = f"{_HF}/mit-han-lab/efficientvit-sam/resolve/main/{file}"
    side = encoder.img_size
    what = f"EfficientViT-SAM-{name.upper()} ({side}-px encoder input, prompts in the 1024 frame)"
    return _zoo(
        f"efficientvit_sam_{name}",
        SamConfig(encoder=encoder),
        (file, url, "", None),
        what,
        published,
    )


_EVIT_SOURCE = (
    "COCO mAP with ViTDet boxes, mit-han-lab/efficientvit applications/efficientvit_sam README"
)
ZOO_EVIT: tuple[Variant, ...] = (
    _evit("l0", EFFICIENTVIT_L0, f"45.7 ({_EVIT_SOURCE})"),
    _evit("l1", EFFICIENTVIT_L1, f"46.2 ({_EVIT_SOURCE})"),
    _evit("l2", EFFICIENTVIT_L2, f"46.6 ({_EVIT_SOURCE})"),
    _evit("xl0", EFFICIENTVIT_XL0, f"47.5 ({_EVIT_SOURCE})"),
    _evit("xl1", EFFICIENTVIT_XL1, f"47.8 ({_EVIT_SOURCE}); GT-box mIoU 79.9"),
)
_EDGE = "https://huggingface.co/spaces/chongzhou/EdgeSAM/resolve/main/weights"
_EDGE_LICENCE = "NTU S-Lab License 1.0 (non-commercial)"
ZOO_REPVIT: tuple[Variant, ...] = (
    _zoo(
        "repvit_sam",
        SamConfig(encoder=REPVIT_SAM_M23),
        (
            "repvit_sam.pt",
            "https://github.com/THU-MIG/RepViT/releases/download/v1.0/repvit_sam.pt",
            "",
            None,
        ),
        "RepViT-SAM (RepViT-M2.3 encoder, SAM's decoder)",
        "COCO AP 44.4 (ViT-B-SAM 42.5, MobileSAM 42.7 in the same table), THU-MIG/RepViT sam/README",
    ),
    _zoo(
        "edge_sam",
        SamConfig(encoder=EDGE_SAM_M1),
        ("edge_sam.pth", f"{_EDGE}/edge_sam.pth", "", None),
        "EdgeSAM (RepViT-M1 + FPN; pick masks by stability score: samkit.zoo.selection)",
        "COCO AP 42.1 (ViTDet-H boxes), chongzhou96/EdgeSAM README",
        licence=_EDGE_LICENCE,
    ),
    _zoo(
        "edge_sam_3x",
        SamConfig(encoder=EDGE_SAM_M1),
        ("edge_sam_3x.pth", f"{_EDGE}/edge_sam_3x.pth", "", None),
        "EdgeSAM-3x (EdgeSAM trained 3x longer; same architecture)",
        "COCO AP 42.7 (ViTDet-H boxes), chongzhou96/EdgeSAM README",
        licence=_EDGE_LICENCE,
    ),
)
ZOO_ALL: tuple[Variant, ...] = ZOO + ZOO_HQ + ZOO_EVIT + ZOO_REPVIT
VARIANTS.update({v.name: v for v in ZOO_ALL})

# Ultralytics redistributes the same state dicts under these file names.
ULTRALYTICS_FILES: dict[str, str] = {
    "sam_b.pt": "sam_b",
    "sam_l.pt": "sam_l",
    "sam_h.pt": "sam_h",
    "mobile_sam.pt": "mobile_sam",
}


def _alias_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for v in VARIANTS.values():
        table[v.name] = v.name
        for alias in v.aliases:
            table[alias] = v.name
        table[v.weights.filename] = v.name
    table.update(ULTRALYTICS_FILES)
    return table


ALIASES: dict[str, str] = _alias_table()


def get_variant(name: str) -> Variant:
    """Look a variant up by name, alias or official / Ultralytics file name."""
    key = ALIASES.get(name) or ALIASES.get(name.lower())
    if key is None:
        known = ", ".join(sorted(ALIASES))
        raise UnknownKeyError(f"unknown model {name!r}; known names: {known}")
    return VARIANTS[key]


def find_variant(config: SamConfig) -> Variant | None:
    """The registered variant whose architecture equals ``config``, if any."""
    for v in VARIANTS.values():
        if v.config == config:
            return v
    return None

"""The published SAM 2 / SAM 2.1 checkpoints: names, aliases (Meta's file and config names,
Ultralytics' file names, Hugging Face ids), URLs and byte sizes."""

from __future__ import annotations

from dataclasses import dataclass, replace

from samkit.sam2.config import TRUNKS, Sam2Config

_BASE_21 = "https://dl.fbaipublicfiles.com/segment_anything_2/092824"
_BASE_20 = "https://dl.fbaipublicfiles.com/segment_anything_2/072824"
# Meta's config names per size (sam2.1/sam2.1_hiera_t.yaml ...), Ultralytics' one-letter names.
_SHORT = {"tiny": "t", "small": "s", "base_plus": "b+", "large": "l"}
_ULTRA = {"tiny": "t", "small": "s", "base_plus": "b", "large": "l"}
_HF = {"tiny": "tiny", "small": "small", "base_plus": "base-plus", "large": "large"}
# Byte sizes of Meta's SAM 2.1 files (the LFS pointers of a Hugging Face mirror); the SAM 2.0
# sizes are not recorded, so those downloads are checked by completeness only.
_SIZES_21 = {
    "tiny": 156_008_466,
    "small": 184_416_285,
    "base_plus": 323_606_802,
    "large": 898_083_611,
}


@dataclass(frozen=True)
class Sam2Variant:
    """One published checkpoint: ``name`` (``sam2.1_hiera_tiny``), the file, where it lives,
    its size in bytes (None: unknown), the names it answers to and its architecture."""

    name: str
    filename: str
    url: str
    size: int | None
    aliases: tuple[str, ...]
    config: Sam2Config
    description: str
    config_file: str


def _variants() -> dict[str, Sam2Variant]:
    table: dict[str, Sam2Variant] = {}
    for version, prefix, base in (("2.1", "sam2.1", _BASE_21), ("2.0", "sam2", _BASE_20)):
        for size, trunk in TRUNKS.items():
            name = f"{prefix}_hiera_{size}"
            short = _SHORT[size]
            config_dir = "sam2.1" if version == "2.1" else "sam2"
            table[name] = Sam2Variant(
                name=name,
                filename=f"{name}.pt",
                url=f"{base}/{name}.pt",
                size=_SIZES_21[size] if version == "2.1" else None,
                aliases=(
                    f"{prefix}_{_ULTRA[size]}",
                    f"{prefix}_{_ULTRA[size]}.pt",
                    f"{prefix}_hiera_{short}",
                    f"configs/{config_dir}/{prefix}_hiera_{short}.yaml",
                    f"{prefix}_hiera_{short}.yaml",
                    f"facebook/{prefix}-hiera-{_HF[size]}",
                ),
                config=replace(Sam2Config(), trunk=trunk, version=version),
                description=f"SAM {version} Hiera-{size.replace('_', '+').replace('+plus', '+')}",
                config_file=f"configs/{config_dir}/{prefix}_hiera_{short}.yaml",
            )
    return table


SAM2_VARIANTS: dict[str, Sam2Variant] = _variants()


def _alias_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for v in SAM2_VARIANTS.values():
        for key in (v.name, v.filename, *v.aliases):
            table[key] = v.name
    return table


SAM2_ALIASES: dict[str, str] = _alias_table()


def find_sam2_variant(name: str) -> Sam2Variant | None:
    """The variant a name, alias, file name, Meta config name or Hugging Face id means."""
    key = SAM2_ALIASES.get(name) or SAM2_ALIASES.get(name.lower())
    return SAM2_VARIANTS[key] if key else None


def variant_of(config: Sam2Config) -> Sam2Variant | None:
    """The published variant with this architecture, if any."""
    for v in SAM2_VARIANTS.values():
        if v.config == config:
            return v
    return None

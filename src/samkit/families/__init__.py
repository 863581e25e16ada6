"""Model families: the one seam where model lines differ.

A :class:`Family` owns its config types, checkpoint recognition and key filter, builder,
:mod:`geometry <samkit.families.geometry>`, :mod:`image state <samkit.families.state>`,
engine factory and export graphs; :func:`register_family` adds one (from any package).
SAM-1 (ViT-B/L/H, TinyViT) is registered on import as ``"sam1"``, SAM 2 / 2.1 (Hiera) as
``"sam2"`` (:mod:`samkit.families.sam2`).
"""

from __future__ import annotations

from samkit.families.base import (
    Family,
    families,
    family_for_config,
    family_of,
    geometry_of,
    get_family,
    recognize,
    register_family,
)
from samkit.families.geometry import Geometry, ResizeLongestPad, SquareResize
from samkit.families.sam1 import SAM1
from samkit.families.sam2 import SAM2
from samkit.families.state import ImageState, PreparedDecoder, state_from_arrays, state_to_arrays

__all__ = [
    "SAM1",
    "SAM2",
    "Family",
    "Geometry",
    "ImageState",
    "PreparedDecoder",
    "ResizeLongestPad",
    "SquareResize",
    "families",
    "family_for_config",
    "family_of",
    "geometry_of",
    "get_family",
    "recognize",
    "register_family",
    "state_from_arrays",
    "state_to_arrays",
]

if "sam1" not in {f.name for f in families()}:
    # Zoo families whose checkpoints also hold a complete SAM-1 network come first.
    from samkit.families.efficientvit_sam import EFFICIENTVIT_SAM
    from samkit.families.repvit_sam import REPVIT_SAM
    from samkit.families.sam_hq import SAM_HQ

    register_family(SAM_HQ)
    register_family(SAM1)
    register_family(EFFICIENTVIT_SAM)
    register_family(REPVIT_SAM)
if "sam2" not in {f.name for f in families()}:
    register_family(SAM2)

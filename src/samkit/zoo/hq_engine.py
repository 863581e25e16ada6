"""The torch engine of SAM-HQ: its image state carries the HQ feature map, its decoder the HQ
head (:mod:`samkit.modeling.hq`).

``hq_token_only`` (default False, SAM-HQ's default) is this engine's switch: False returns
SAM's mask plus the HQ correction, True the HQ mask alone (SAM-HQ's advice for thin
structures). Every prompt gives ONE mask, ``multimask_output`` choosing which SAM mask the HQ
logits are added to (SAM's best candidate by predicted IoU, or its single-output mask).
"""

from __future__ import annotations

from typing import Any

import torch

from samkit import device as devices
from samkit.engine import TorchEngine
from samkit.errors import SamkitError
from samkit.image_state import ImageState
from samkit.modeling.decoder_fast import OutputLimits
from samkit.modeling.hq import SamHQ
from samkit.predictor import SamPredictor

__all__ = ["HQ_FEATURES", "HQEngine", "HQPredictor"]

HQ_FEATURES = "hq_features"  # ImageState.extras key: (1, 32, 256, 256) fused early feature


class HQPredictor(SamPredictor):
    """:class:`~samkit.predictor.SamPredictor` for a :class:`~samkit.modeling.hq.SamHQ`."""

    model: SamHQ

    def __init__(self, sam_model: SamHQ, *, hq_token_only: bool = False, **options: Any) -> None:
        if not isinstance(sam_model, SamHQ):
            raise SamkitError(f"HQPredictor needs a SamHQ network, got {type(sam_model).__name__}")
        super().__init__(sam_model, **options)
        self.hq_token_only = bool(hq_token_only)

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.model.training:
            self.optimize()
        with devices.autocast(self.device, self.dtype):
            embedding, hq = self.model.encode_image_hq(x)
        return embedding.float(), {HQ_FEATURES: hq.float()}

    def _decode_chunk(
        self,
        state: ImageState,
        point_coords: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        boxes: torch.Tensor | None,
        mask_input: torch.Tensor | None,
        multimask_output: bool,
        dtype: torch.dtype,
        limits: OutputLimits | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        hq = (state.extras or {}).get(HQ_FEATURES)
        if hq is None:
            raise SamkitError(
                "this image state holds no SAM-HQ features (it was encoded by another model); "
                "encode the image with this SAM-HQ model"
            )
        points = None
        if point_coords is not None and point_labels is not None:
            points = (point_coords, point_labels)
        with devices.autocast(self.device, dtype), devices.thread_policy(self.thread_policy):
            low, scores = self.model.decode_hq(
                state.features,
                torch.as_tensor(hq, device=self.device),
                points,
                boxes,
                mask_input,
                multimask_output,
                self.hq_token_only,
            )
        return low.float(), scores.float()


class HQEngine(TorchEngine):
    """:class:`~samkit.engine.TorchEngine` over an :class:`HQPredictor`; options as
    ``TorchEngine``'s plus ``hq_token_only``."""

    def __init__(
        self,
        model: SamHQ,
        *,
        threads: int | None = None,
        hq_token_only: bool = False,
        **options: Any,
    ) -> None:
        if threads is not None:
            devices.set_cpu_threads(threads)
        self._bind(HQPredictor(model, hq_token_only=hq_token_only, **options))

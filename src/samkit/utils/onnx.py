"""``SamOnnxModel``: Meta's exportable decoder module, under its import path.

It is samkit's :class:`~samkit.export.graphs.DecoderGraph` (the decoder contract of Meta's web
demo, CVAT and AnyLabeling) with Meta's constructor: ``torch.onnx.export(SamOnnxModel(sam,
return_single_mask=True), ...)`` as in Meta's ``onnx_model_example`` notebook gives a decoder
with the same inputs and outputs (``masks``, ``iou_predictions``, ``low_res_masks``).
``samkit export`` / ``SAM.export(format="onnx")`` does the same plus the encoder, checked
against torch.
"""

from __future__ import annotations

from samkit.errors import SamkitError
from samkit.export.graphs import DecoderGraph
from samkit.modeling import Sam

__all__ = ["SamOnnxModel"]


class SamOnnxModel(DecoderGraph):
    """Prompt encoder + mask decoder + upsampling for ONNX export (Meta's signature).

    ``return_single_mask``: one mask per prompt, the best by predicted IoU (token 0 once 3 or
    more points, padding included, are given), as Meta's. ``use_stability_score`` and
    ``return_extra_metrics`` (Meta's web-demo experiments) are not supported.
    """

    def __init__(
        self,
        model: Sam,
        return_single_mask: bool,
        use_stability_score: bool = False,
        return_extra_metrics: bool = False,
    ) -> None:
        if use_stability_score or return_extra_metrics:
            raise SamkitError(
                "SamOnnxModel supports neither use_stability_score nor return_extra_metrics; "
                "leave them False"
            )
        super().__init__(model, return_single_mask=return_single_mask)

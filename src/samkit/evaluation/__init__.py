"""``samkit val``: measure SAM-family models on a labelled dataset with the protocols papers use.

``samkit.val(model, data, images=None, protocols=("box", "point"), ...)`` returns a
:class:`~samkit.evaluation.results.ValResults` whose ``metrics["box"]["miou"]`` (and the same per
protocol) holds the numbers. Protocols (:data:`~samkit.evaluation.protocols.PROTOCOLS`): ``box``,
``point``, ``center``, ``clicks``, ``everything``, ``detections``, ``teacher``; settings in
:class:`~samkit.evaluation.settings.ValSettings`.
"""

from __future__ import annotations

from samkit.evaluation.protocols import PROTOCOLS
from samkit.evaluation.runner import ValResults, val
from samkit.evaluation.settings import ValSettings

__all__ = ["PROTOCOLS", "ValResults", "ValSettings", "val"]

"""Scaling samkit's batch jobs out on a Ray cluster (``engine="ray"``).

Auto-annotation, segment-everything over a folder and embedding precomputation run as Ray Data
pipelines: image paths -> (detector actors) -> encoder actors (GPUs) -> CPU actors that decode,
post-process and write. Outputs are the files of the single-process run; done images are
skipped on a rerun. Ray is optional: ``pip install 'samkit[ray]'``.
"""

from __future__ import annotations

from samkit.cluster.runtime import ModelSpec, RayOptions

__all__ = ["ModelSpec", "RayOptions"]

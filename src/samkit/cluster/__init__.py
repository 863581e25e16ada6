"""Scaling samkit's batch jobs out on a Ray cluster (``engine="ray"``).

Auto-annotation, segment-everything over a folder and embedding precomputation run as Ray Data
pipelines: image paths -> (detector actors) -> encoder actors (GPUs) -> CPU actors that decode,
post-process and write. Outputs are the files of the single-process run; done images are
skipped on a rerun. Ray is optional: ``pip install 'samkit[ray]'``.
"""

from __future__ import annotations

from typing import Any

from samkit.cluster.runtime import ModelSpec, RayOptions

__all__ = ["ModelSpec", "RayOptions", "ray_options_from_args"]

_CLI_KEYS = ("address", "encoder_actors", "decoder_actors", "detector_actors", "encode_batch",
             "gpus_per_actor", "cpus_per_actor", "head_timeout")  # fmt: skip


def ray_options_from_args(args: dict[str, Any]) -> RayOptions:
    """The Ray keys of a parsed command line (``address=``, ``encoder_actors=`` ...)."""
    return RayOptions(**{k: args[k] for k in _CLI_KEYS if args.get(k) is not None})

"""``samkit train`` and ``SAM(...).train(...)``: keyword settings -> :class:`TrainConfig` +
:class:`FineTuneSettings` -> :func:`fit`. ``device="0,1"`` outside torchrun re-launches the call
under torchrun (one process per GPU)."""

from __future__ import annotations

import logging
from typing import Any

from samkit.errors import SamkitError
from samkit.modeling import Sam
from samkit.train import distributed
from samkit.train.finetune import FineTuneSettings, FineTuneTask
from samkit.train.guards import resume_settings
from samkit.train.settings import cli_settings, setting_defaults, setting_names, split_settings
from samkit.train.trainer import TrainResult, fit

__all__ = ["cli_train", "settings_keys", "train"]

logger = logging.getLogger("samkit")


def settings_keys() -> list[str]:
    """Every keyword ``train`` accepts."""
    return setting_names(FineTuneSettings)


def train(network: Sam | None = None, **kwargs: Any) -> TrainResult | None:
    """Fine-tune a SAM model; keywords are :class:`TrainConfig`'s and
    :class:`FineTuneSettings`' fields (``model``, ``data``, ``epochs``, ``batch``, ``lr``,
    ``train``, ``lora_rank``, ``prompts``, ``device``, ``resume`` ...).

    ``network``: an already built model to start from instead of ``model``. Returns the
    :class:`TrainResult` (``None`` in the launching process of a multi-GPU run, whose outputs
    are in the run folder).
    """
    kwargs = resume_settings(kwargs, setting_defaults(FineTuneSettings), "trained")
    config, settings = split_settings(kwargs, FineTuneSettings, "training")
    config.check()
    gpus = distributed.cuda_devices(config.device)
    if len(gpus) > 1 and not distributed.under_torchrun():
        if network is not None:
            raise SamkitError("multi-GPU training starts from a checkpoint file (model=...)")
        rc = distributed.spawn("samkit.train.api:train", kwargs, nproc=len(gpus), devices=gpus)
        if rc:
            raise SamkitError(f"torchrun exited with code {rc}")
        return None
    return fit(FineTuneTask(settings, seed=config.seed, network=network), config)


def cli_train(args: dict[str, Any]) -> int:
    """Handler of ``samkit train``."""
    result = train(**cli_settings(args))
    if result is not None and result.run_dir is not None:
        print(f"results saved to {result.run_dir}; best weights {result.best}")
    return 0

"""``samkit distill`` and ``samkit.distill(...)``: keyword settings -> :class:`TrainConfig` +
:class:`DistillSettings` -> the shared training loop. ``device="0,1"`` outside torchrun
re-launches the call under torchrun (one process per GPU)."""

from __future__ import annotations

import shutil
from typing import Any

from samkit.distillation.task import DistillSettings, DistillTask
from samkit.errors import SamkitError
from samkit.modeling import Sam
from samkit.registry import get_variant
from samkit.train import distributed
from samkit.train.guards import resume_settings
from samkit.train.settings import cli_settings, setting_defaults, setting_names, split_settings
from samkit.train.trainer import TrainConfig, TrainResult, fit

__all__ = ["cli_distill", "distill", "settings_keys"]

# Distillation's defaults where they differ from fine-tuning's (MobileSAM / EdgeSAM stage 1).
MOBILE_SAM_ENCODER = get_variant("mobile_sam").config.encoder
ULTRALYTICS_NAME = "best_mobile_sam.pt"  # a copy of best.pt that Ultralytics' SAM() loads
_DEFAULTS: dict[str, Any] = {"name": "distill", "lr": 1e-3, "epochs": 8, "batch": 8}


def settings_keys() -> list[str]:
    """Every keyword :func:`distill` accepts."""
    return setting_names(DistillSettings)


def _split(kwargs: dict[str, Any]) -> tuple[TrainConfig, DistillSettings]:
    config, settings = split_settings({**_DEFAULTS, **kwargs}, DistillSettings, "distillation")
    settings.check()
    return config, settings


def distill(
    *, teacher_model: Sam | None = None, student_model: Sam | None = None, **kwargs: Any
) -> TrainResult | None:
    """Distil a student image encoder from a teacher; keywords are :class:`TrainConfig`'s and
    :class:`DistillSettings`' fields (``teacher``, ``student``, ``data``, ``epochs``, ``batch``,
    ``lr``, ``loss``, ``flip``, ``stage``, ``cache``, ``device``, ``resume`` ...).

    ``teacher_model`` / ``student_model``: already built networks instead of ``teacher`` /
    ``student`` names. ``weights/best.pt`` and ``last.pt`` in the run folder are complete
    checkpoints (student encoder + the teacher's prompt encoder and decoder) in the official
    layout. Returns the :class:`TrainResult` (``None`` in the launching process of a
    multi-GPU run, whose outputs are in the run folder).
    """
    defaults = {**setting_defaults(DistillSettings), **_DEFAULTS}
    kwargs = resume_settings(kwargs, defaults, "distilled")
    config, settings = _split(kwargs)
    config.check()
    gpus = distributed.cuda_devices(config.device)
    if len(gpus) > 1 and not distributed.under_torchrun():
        if teacher_model is not None or student_model is not None:
            raise SamkitError("multi-GPU distillation takes teacher= / student= by name or file")
        rc = distributed.spawn(
            "samkit.distillation.api:distill", kwargs, nproc=len(gpus), devices=gpus
        )
        if rc:
            raise SamkitError(f"torchrun exited with code {rc}")
        return None
    task = DistillTask(
        settings, teacher=teacher_model, student=student_model, progress=config.progress
    )
    result = fit(task, config)
    config_ = task.net.student.config
    if result.best is not None and getattr(config_, "encoder", None) == MOBILE_SAM_ENCODER:
        # Ultralytics picks the architecture from the file name: give it one it recognises.
        shutil.copyfile(result.best, result.best.with_name(ULTRALYTICS_NAME))
    return result


def cli_distill(args: dict[str, Any]) -> int:
    """Handler of ``samkit distill``."""
    result = distill(**cli_settings(args))
    if result is not None and result.run_dir is not None:
        print(f"results saved to {result.run_dir}; student checkpoint {result.best}")
    return 0

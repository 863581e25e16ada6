"""The student: a registered (or given) encoder architecture, randomly initialised or read from a
checkpoint, joined to the teacher's prompt encoder and mask decoder into one SAM network whose
state dict is a complete checkpoint in the official layout."""

from __future__ import annotations

import copy
import io
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from samkit.build import build_from_config
from samkit.entrance import load_network
from samkit.errors import ArgumentTypeError, SamkitError
from samkit.families import family_for_config, family_of
from samkit.io_utils import atomic_write_bytes
from samkit.modeling import Sam
from samkit.registry import EncoderConfig, SamConfig, get_variant

__all__ = ["build_student", "official_state_dict", "save_checkpoint", "student_encoder_config"]

StudentSpec = str | os.PathLike[str] | EncoderConfig | Sam | None


def student_encoder_config(student: str | EncoderConfig, image_size: int) -> EncoderConfig:
    """The encoder architecture of ``student`` (a registered name or alias, or a config) at the
    teacher's input side ``image_size``."""
    if _is_encoder_config(student):
        config: EncoderConfig = student  # type: ignore[assignment]
    else:
        try:
            config = get_variant(str(student)).config.encoder
        except KeyError as exc:
            raise SamkitError(f"student: {exc.args[0]}") from None
    if config.img_size == image_size:
        return config
    try:
        resized: EncoderConfig = config.at_image_size(image_size)
    except SamkitError as exc:
        raise SamkitError(f"student: {exc} (the teacher's input)") from None
    return resized


def _is_encoder_config(student: object) -> bool:
    """Whether ``student`` is an encoder config some registered family owns."""
    try:
        family_for_config(SamConfig(encoder=student))  # type: ignore[arg-type]
    except ArgumentTypeError:
        return False
    return True


def build_student(student: StudentSpec, teacher: Sam) -> Sam:
    """Student encoder + deep copies of the teacher's prompt encoder and mask decoder.

    ``student``: None (MobileSAM's TinyViT), a registered name or alias ("mobile_sam",
    "sam_b", ...) or an encoder config: randomly initialised; an existing checkpoint file or
    a :class:`Sam`: its image encoder's weights. The encoder is built at the teacher's input
    size, so its embedding grid equals the teacher's.
    """
    teacher_config = _config_of(teacher, "teacher")
    size = teacher.image_size
    weights: dict[str, torch.Tensor] | None = None
    if isinstance(student, Sam) or (
        isinstance(student, (str, os.PathLike)) and Path(student).is_file()
    ):
        source = load_network(student, "distill (student)")
        encoder_config = student_encoder_config(_config_of(source, "student").encoder, size)
        weights = source.image_encoder.state_dict()
    else:
        spec: Any = student if _is_encoder_config(student) else str(student or "mobile_sam")
        encoder_config = student_encoder_config(spec, size)
    model = build_from_config(replace(teacher_config, encoder=encoder_config))
    if weights is not None:
        model.image_encoder.load_state_dict(weights)
    model.prompt_encoder.load_state_dict(copy.deepcopy(teacher.prompt_encoder.state_dict()))
    model.mask_decoder.load_state_dict(copy.deepcopy(teacher.mask_decoder.state_dict()))
    return model


def _config_of(model: Sam, name: str) -> SamConfig:
    config = getattr(model, "config", None)
    if not isinstance(config, SamConfig):
        raise SamkitError(
            f"{name} must be built by samkit (build_sam / SAM), its config is unknown"
        )
    return config


def official_state_dict(model: Sam) -> dict[str, torch.Tensor]:
    """The model's tensors under the official key names (Meta's for ViT encoders, MobileSAM's
    for TinyViT, with TinyViT's unused classifier head added as the reference builders expect).
    """
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    _config_of(model, "model")
    official = family_of(model).official_keys
    return state if official is None else official(model, state)


def save_checkpoint(model: Sam, path: str | os.PathLike[str]) -> Path:
    """Write the model as a complete checkpoint in the official layout, atomically."""
    buffer = io.BytesIO()
    torch.save(official_state_dict(model), buffer)
    return atomic_write_bytes(path, buffer.getvalue())

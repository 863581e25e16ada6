"""Distillation: train a small image encoder to replace a large one (MobileSAM's recipe), with
the teacher's embeddings cached on disk and an optional prompt-in-the-loop stage (EdgeSAM)."""

from samkit.distillation.api import distill
from samkit.distillation.cache import CacheMismatchError, TeacherCache
from samkit.distillation.student import build_student, official_state_dict, save_checkpoint

__all__ = [
    "CacheMismatchError",
    "TeacherCache",
    "build_student",
    "distill",
    "official_state_dict",
    "save_checkpoint",
]

"""Distillation: train a small image encoder to replace a large one (MobileSAM's recipe), with
the teacher's embeddings cached on disk and an optional prompt-in-the-loop stage (EdgeSAM)."""

from samkit.distill.agreement import Agreement, teacher_agreement
from samkit.distill.cache import CacheMismatchError, TeacherCache, model_key
from samkit.distill.student import build_student, official_state_dict, save_checkpoint

__all__ = [
    "Agreement",
    "CacheMismatchError",
    "TeacherCache",
    "build_student",
    "model_key",
    "official_state_dict",
    "save_checkpoint",
    "teacher_agreement",
]

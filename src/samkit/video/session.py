"""A tracking session: everything the tracker knows about one video, passed to it explicitly.

Per object: its prompts per frame, its conditioning outputs (prompted frames), its
non-conditioning outputs (tracked frames), outputs of prompts not yet committed to memory, and
which frames were tracked in which direction. Per video: the frame source, its size and a
small cache of frame features.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import torch

from samkit.video.frames import FrameSource
from samkit.video.step import FrameFeatures, FrameOutput, Points


@dataclass
class ObjectState:
    """One object's prompts and outputs, by frame index."""

    obj_id: int
    points: dict[int, Points] = field(default_factory=dict)
    masks: dict[int, torch.Tensor] = field(default_factory=dict)
    cond: dict[int, FrameOutput] = field(default_factory=dict)
    non_cond: dict[int, FrameOutput] = field(default_factory=dict)
    pending: dict[int, tuple[bool, FrameOutput]] = field(default_factory=dict)
    tracked: dict[int, bool] = field(default_factory=dict)  # frame -> tracked in reverse

    def output(self, frame: int, is_cond: bool | None = None) -> FrameOutput | None:
        """The object's latest output on ``frame``: an uncommitted one (of the kind
        ``is_cond`` when given), else the committed conditioning, else non-conditioning one."""
        pending = self.pending.get(frame)
        if pending is not None and (is_cond is None or pending[0] == is_cond):
            return pending[1]
        return self.cond.get(frame, self.non_cond.get(frame))

    def clear_outputs(self) -> None:
        """Forget prompts and results (the object id stays)."""
        for d in (self.points, self.masks, self.cond, self.non_cond, self.pending, self.tracked):
            d.clear()


@dataclass
class TrackingSession:
    """State of one video. ``num_frames`` None for a source of unknown length;
    ``storage_device`` holds masks and memories (the CPU when offloading state)."""

    frames: FrameSource
    num_frames: int | None
    video_size: tuple[int, int]
    device: torch.device
    storage_device: torch.device
    feature_cache_size: int = 2
    objects: dict[int, ObjectState] = field(default_factory=dict)
    features: OrderedDict[int, FrameFeatures] = field(default_factory=OrderedDict)

    @property
    def obj_ids(self) -> list[int]:
        return list(self.objects)

    def get_object(self, obj_id: int) -> ObjectState:
        """The object ``obj_id``, created on first use."""
        obj = self.objects.get(obj_id)
        if obj is None:
            obj = self.objects[obj_id] = ObjectState(obj_id)
        return obj

    def cached_features(self, frame: int) -> FrameFeatures | None:
        feats = self.features.get(frame)
        if feats is not None:
            self.features.move_to_end(frame)
        return feats

    def cache_features(self, frame: int, feats: FrameFeatures) -> None:
        self.features[frame] = feats
        while len(self.features) > self.feature_cache_size:
            self.features.popitem(last=False)

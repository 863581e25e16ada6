"""Video: SAM 2 tracking through a video, beside the image engine (its own seam).

:class:`~samkit.video.tracker.Sam2Tracker` works on an explicit
:class:`~samkit.video.session.TrackingSession`; :mod:`samkit.video.meta_api` gives Meta's
``SAM2VideoPredictor`` calls on top of it.
"""

from samkit.video.frames import FolderFrames, FrameSource, VideoFileFrames, open_frames
from samkit.video.meta_api import SAM2VideoPredictor, build_sam2_video_predictor
from samkit.video.session import ObjectState, TrackingSession
from samkit.video.step import Points, TrackSettings
from samkit.video.tracker import FrameResult, Sam2Tracker

__all__ = [
    "FolderFrames",
    "FrameResult",
    "FrameSource",
    "ObjectState",
    "Points",
    "SAM2VideoPredictor",
    "Sam2Tracker",
    "TrackSettings",
    "TrackingSession",
    "VideoFileFrames",
    "build_sam2_video_predictor",
    "open_frames",
]

"""Ultralytics' per-call arguments on :meth:`samkit.SAM.predict` (``model(src, save=True,
device="cpu", imgsz=1024, verbose=True, ...)``): which are honoured, which are accepted and
ignored on purpose, and the writing of ``save`` / ``save_txt`` outputs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np

from samkit.errors import SamkitError
from samkit.results import Results

__all__ = ["CALL_ARGS", "IGNORED_ARGS", "CallOptions", "split_call_args", "write_result"]

logger = logging.getLogger("samkit")

# Honoured: name -> default.
CALL_ARGS: dict[str, Any] = {
    "device": None,  # move the model to this device for this call (and after it)
    "imgsz": None,  # must be the model's fixed input size (1024 for published models)
    "verbose": None,  # True: one line per result; False: no output at all (no progress bar)
    "save": False,  # write the overlay of each result into project/name (a video for videos)
    "save_txt": False,  # write YOLO-seg labels into project/name/labels
    "save_conf": False,  # end each label line with the mask's score
    "project": "runs/segment",
    "name": "predict",
    "exist_ok": False,
    "max_det": None,  # keep at most this many masks per image (the highest scores)
    "vid_stride": 1,  # read every n-th video frame
    "show_labels": True,  # saved overlays: the label text
    "show_conf": True,  # saved overlays: the score in the label
    "show_boxes": True,  # saved overlays: the boxes
    "line_width": None,  # saved overlays: box line width (default: from the image size)
}

# Accepted for Ultralytics code and ignored on purpose, with the reason.
IGNORED_ARGS: dict[str, str] = {
    "retina_masks": "masks are always at the original resolution (Ultralytics' SAM forces it too)",
    "show": "no window is opened; use Results.plot() / save",
    "half": "precision is set once on SAM(half=True / dtype=)",
    "batch": "images are encoded one at a time; batch_size= sets objects per decoder call",
    "task": "SAM only segments",
    "mode": "SAM only predicts",
}


@dataclass
class CallOptions:
    """The Ultralytics arguments of one call, parsed."""

    device: Any = None
    imgsz: Any = None
    verbose: bool | None = None
    save: bool = False
    save_txt: bool = False
    save_conf: bool = False
    project: str = "runs/segment"
    name: str = "predict"
    exist_ok: bool = False
    max_det: int | None = None
    vid_stride: int = 1
    show_labels: bool = True
    show_conf: bool = True
    show_boxes: bool = True
    line_width: int | None = None
    ignored: list[str] = field(default_factory=list)

    @property
    def writes(self) -> bool:
        return self.save or self.save_txt

    def plot_args(self) -> dict[str, Any]:
        """:meth:`Results.plot` keywords for the saved overlays."""
        return {"labels": self.show_labels, "conf": self.show_conf, "boxes": self.show_boxes,
                "line_width": self.line_width}  # fmt: skip


def split_call_args(kwargs: dict[str, Any]) -> tuple[CallOptions, dict[str, Any]]:
    """``kwargs`` -> (the Ultralytics call arguments, everything else)."""
    rest = dict(kwargs)
    values = {k: rest.pop(k) for k in list(rest) if k in CALL_ARGS}
    opts = CallOptions(**values)
    for key in [k for k in rest if k in IGNORED_ARGS]:
        rest.pop(key)
        opts.ignored.append(key)
        logger.info("samkit ignores %s=: %s", key, IGNORED_ARGS[key])
    flags = ("verbose", "save", "save_txt", "save_conf", "exist_ok", "show_labels", "show_conf")
    for key in (*flags, "show_boxes"):
        if not isinstance(getattr(opts, key), bool) and not (
            key == "verbose" and opts.verbose is None
        ):
            raise SamkitError(f"{key} must be True or False, got {getattr(opts, key)!r}")
    for key, low in (("max_det", 1), ("vid_stride", 1), ("line_width", 1)):
        value = getattr(opts, key)
        if value is not None and not _is_int(value, low):
            raise SamkitError(f"{key} must be an int >= {low}, got {value!r}")
    return opts, rest


def _is_int(value: Any, low: int) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool) and int(value) >= low


def keep_top(result: Results, max_det: int | None) -> Results:
    """``result`` with at most ``max_det`` masks: the highest scores, in their order."""
    if max_det is None or len(result) <= max_det:
        return result
    top = np.argsort(-result.scores, kind="stable")[:max_det]
    return result[np.sort(top)]


def check_predict_args(
    source: Any,
    prompted: bool,
    kwargs: dict[str, Any],
    multimask_output: bool,
    keep_all: bool | None,
    conf: float | None,
) -> tuple[CallOptions, dict[str, Any]]:
    """Check :meth:`samkit.SAM.predict`'s arguments before any work; returns the Ultralytics
    call arguments and the segment-everything settings."""
    if source is None or (isinstance(source, str) and not source.strip()):
        raise SamkitError(
            f"predict needs a source (an image path, folder, URL, array ...), got {source!r}"
        )
    call, everything = split_call_args(kwargs)
    if prompted and "prompts_from" in everything:
        raise SamkitError(
            "prompts_from (box prompts from a detector) replaces segment everything's point "
            "grid: give it without points=, bboxes= or masks="
        )
    if prompted and everything:
        raise SamkitError(
            f"unknown argument(s) {', '.join(sorted(everything))} for prompted prediction"
        )
    if keep_all and not multimask_output:
        raise SamkitError("keep_all=True needs multimask_output=True")
    if conf is not None and (
        isinstance(conf, bool) or not isinstance(conf, Real) or not 0 <= conf <= 1
    ):
        raise SamkitError(f"conf must be a number in [0, 1] or None, got {conf!r}")
    return call, everything


def check_imgsz(imgsz: Any, model_size: int) -> None:
    """``imgsz`` (int or (h, w)) must be the model's fixed input size."""
    if imgsz is None:
        return
    try:
        sizes = {int(v) for v in (imgsz if isinstance(imgsz, (list, tuple)) else [imgsz])}
    except (TypeError, ValueError):
        raise SamkitError(f"imgsz must be an int or (h, w), got {imgsz!r}") from None
    if sizes != {model_size}:
        raise SamkitError(
            f"imgsz must be the model's fixed input size {model_size}, got {imgsz!r} (SAM's "
            "encoder cannot run at another size; masks come back at the image's size anyway)"
        )


def with_outputs(
    results: Iterator[Results], opts: CallOptions, run: Any = None
) -> Iterator[Results]:
    """Pass ``results`` through, printing (``verbose``) and writing (``save`` / ``save_txt``)
    each into a new run folder ``project/name``, ``project/name2``, ... (a video source's
    overlays into one video, :class:`samkit.video_out.VideoWriters`); ``max_det`` keeps the
    best-scoring masks. ``run`` (a :class:`samkit.model.PredictRun`) gets the run folder."""
    from samkit.io_utils import increment_path
    from samkit.video_out import VideoWriters

    run_dir: Path | None = None
    videos = VideoWriters(opts.vid_stride)
    try:
        for i, result in enumerate(results):
            result = keep_top(result, opts.max_det)
            if opts.writes:
                if run_dir is None:
                    run_dir = increment_path(opts.project, opts.name, opts.exist_ok)
                    if run is not None:
                        run.save_dir = run_dir
                object.__setattr__(result, "save_dir", str(run_dir))  # a field set once, here
                write_result(result, run_dir, _stem(result, i), opts, videos)
            _print_line(result, opts.verbose)
            yield result
    finally:
        videos.close()
    if run_dir is not None and opts.verbose:
        print(f"Results saved to {run_dir}")


def _stem(result: Results, index: int) -> str:
    stem = Path(result.path).stem or f"image{index}"
    return stem if result.frame is None else f"{stem}_{result.frame:06d}"


def _print_line(result: Results, verbose: bool | None) -> None:
    """``verbose``: one line per result (size, masks, the ``speed`` stages)."""
    if not verbose:
        return
    h, w = result.orig_shape
    ms = ", ".join(f"{k} {v:.1f}ms" for k, v in result.speed.items())
    line = f"{result.path or 'array'}: {h}x{w} {len(result)} masks, {ms}"
    print(f"{line} ({_stats_line(result.stats)})" if result.stats else line)


def write_result(
    result: Results, run_dir: Path, stem: str, opts: CallOptions, videos: Any = None
) -> None:
    """One image's files in a predict run folder: overlay ``<stem>.jpg`` (a video frame goes
    into ``<video stem>.avi`` when ``videos``, a :class:`samkit.video_out.VideoWriters`, is
    given) and YOLO-seg ``labels/<stem>.txt`` (``samkit predict``, ``predict(save=...)`` and
    the Ray run write the same files)."""
    if opts.save:
        if videos is not None and result.frame is not None:
            videos.write(result, run_dir, result.plot(**opts.plot_args()))
        else:
            result.save(run_dir / f"{stem}.jpg", **opts.plot_args())
    if opts.save_txt:
        result.save_txt(run_dir / "labels" / f"{stem}.txt", save_conf=opts.save_conf)


def _stats_line(stats: dict[str, Any]) -> str:
    """Segment everything's account of one image (``Results.stats``), as ``verbose`` prints it."""
    from dataclasses import fields

    from samkit.amg.fast import EverythingStats

    known = {f.name for f in fields(EverythingStats)}
    return EverythingStats(**{k: v for k, v in stats.items() if k in known}).line()


def move_front(sam: Any, device: Any) -> None:
    """Move a :class:`~samkit.model.SAM`'s network to ``device`` and rebuild its engine (and
    drop its segment-everything generator) when the device changes."""
    if sam.model is None:
        if str(device).strip().lower() not in ("cpu", ""):
            raise SamkitError(
                f"device={device!r}: this SAM runs the ONNX export {sam.onnx_folder} on the CPU "
                "(load the checkpoint for another device)"
            )
        return
    from samkit.device import select_device

    target = select_device(device)
    if target != sam.model.device:
        sam.model = sam.model.to(target)
        sam.engine = sam._make_engine()
        sam._generator = None


def decoder_batch_arg(decoder_batch: int | None, batch_size: int | None) -> int | None:
    """The per-call decoder batch from its name or its old spelling ``batch_size``."""
    if decoder_batch is not None and batch_size is not None and decoder_batch != batch_size:
        raise SamkitError("give decoder_batch only (batch_size is its old spelling)")
    value = decoder_batch if decoder_batch is not None else batch_size
    name = "decoder_batch" if decoder_batch is not None else "batch_size"
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, Integral) or value < 1
    ):
        raise SamkitError(f"{name} must be a positive int, got {value!r}")
    return value


def results_device(model: Any) -> str | None:
    """Where Results' views put their tensors: the torch network's device; without one (ONNX
    Runtime) the CPU when torch is installed, else None (NumPy arrays)."""
    if model is not None:
        return str(model.device)
    from importlib.util import find_spec

    return "cpu" if find_spec("torch") is not None else None

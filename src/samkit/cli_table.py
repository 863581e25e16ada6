"""The table of ``samkit`` modes: each mode's handler (``"module:function"``, imported only when
the mode runs), its one-line help and its keys with types, defaults and help. Adding a mode is
one entry in :data:`MODES`; the grammar is :mod:`samkit.cli_grammar`.
"""

from __future__ import annotations

from samkit.cli_grammar import Key, Mode

__all__ = ["ENGINE_KEYS", "EVERYTHING_KEYS", "MODES", "PREDICT_KEYS", "ULTRALYTICS_PREDICT_KEYS"]

_MODEL = Key(
    str,
    "sam_b.pt",
    "checkpoint file or model name: sam_b (Ultralytics' default), mobile_sam (39 MiB, ~10x "
    "faster on CPU), sam_l, sam_h, or grabcut (no weights)",
)
_DEVICE = Key(str, None, "torch device, e.g. cpu or cuda:0 (default: CUDA when available)")

PREDICT_KEYS: dict[str, Key] = {
    "model": _MODEL,
    "source": Key(str, None, "image, folder, glob, URL or video", required=True),
    "points": Key(
        "literal",
        None,
        'points XY: "points=[x,y]"; "points=[[x,y],...]" = 1 object each (1 object if a '
        'label is 0); "points=[[[x,y],...],...]" = N objects',
    ),
    "labels": Key(
        "literal",
        None,
        'point labels shaped like points: "labels=[1,0]" (1 foreground, 0 background)',
    ),
    "bboxes": Key("literal", None, 'boxes XYXY: "bboxes=[x1,y1,x2,y2]" or "bboxes=[[...],...]"'),
    "masks": Key(str, None, "binary mask image (nonzero = object) or .npy (N, H, W) prompt"),
    "multimask_output": Key(bool, False, "3 candidate masks per object (as Ultralytics)"),
    "keep_all": Key(bool, None, "with multimask_output, false keeps each object's best candidate"),
    "conf": Key(float, None, "drop masks scoring below this (default: keep all)"),
    "device": _DEVICE,
    "recursive": Key(bool, False, "descend into subfolders of a folder source"),
    "decoder_batch": Key(int, None, "prompts per decoder pass (default: 4 on CPU, 512 on GPU)"),
    "save": Key(bool, True, "write overlay images"),
    "save_txt": Key(bool, True, "write YOLO-seg label files"),
    "save_json": Key(bool, True, "write predictions.json"),
    "project": Key(str, "runs", "parent folder of run folders"),
    "name": Key(str, "predict", "run folder name (numbered: predict, predict2, ...)"),
    "exist_ok": Key(bool, False, "reuse project/name instead of numbering a new folder"),
    "progress": Key(bool, None, "progress bar (default: for multi-image sources)"),
}

# Ultralytics' predict keys (``yolo predict ...`` spellings), with Ultralytics' meaning.
ULTRALYTICS_PREDICT_KEYS: dict[str, Key] = {
    "imgsz": Key("literal", None, "model input size: must be the model's (1024)"),
    "max_det": Key(int, None, "keep at most this many masks per image, best scores first"),
    "vid_stride": Key(int, 1, "video sources: read every n-th frame"),
    "save_conf": Key(bool, False, "end each YOLO-seg label line with the mask's score"),
    "show_labels": Key(bool, True, "overlays: draw the label text"),
    "show_conf": Key(bool, True, "overlays: put the score in the label"),
    "show_boxes": Key(bool, True, "overlays: draw the boxes"),
    "line_width": Key(int, None, "overlays: box line width (default: from the image size)"),
    "retina_masks": Key(bool, None, "accepted and ignored: masks are always full resolution"),
    "task": Key(str, None, "segment (the only task; samkit segment predict ... also works)"),
}

# Segment-everything settings accepted by predict when no prompt is given: Meta's names and
# Ultralytics' spellings (samkit.amg.params maps them). Unset keys keep the generator's defaults.
EVERYTHING_KEYS: dict[str, Key] = {
    "points_per_side": Key(int, None, "everything: grid points per side (32)"),
    "points_per_batch": Key(int, None, "everything: grid points per step (64)"),
    "pred_iou_thresh": Key(float, None, "everything: predicted-IoU filter (0.88)"),
    "stability_score_thresh": Key(float, None, "everything: stability filter (0.95)"),
    "stability_score_offset": Key(float, None, "everything: stability offset (1.0)"),
    "box_nms_thresh": Key(float, None, "everything: NMS IoU within a crop (0.7)"),
    "crop_n_layers": Key(int, None, "everything: crop layers (0)"),
    "crop_nms_thresh": Key(float, None, "everything: NMS IoU across crops (0.7)"),
    "crop_overlap_ratio": Key(float, None, "everything: crop overlap (512/1500)"),
    "crop_n_points_downscale_factor": Key(int, None, "everything: grid downscale per layer (1)"),
    "min_mask_region_area": Key(int, None, "everything: remove holes/islands below (0)"),
    "points_stride": Key(int, None, "everything: Ultralytics name of points_per_side"),
    "points_batch_size": Key(int, None, "everything: Ultralytics name of points_per_batch"),
    "conf_thres": Key(float, None, "everything: Ultralytics name of pred_iou_thresh"),
    "crop_downscale_factor": Key(int, None, "everything: Ultralytics name of the downscale"),
    "low_res_filter": Key(bool, None, "everything: judge masks on low-res logits (opt-in)"),
    "bf16": Key(bool, None, "everything: bfloat16 decoder (opt-in; changes masks)"),
    "skip_covered": Key(bool, None, "everything: same as fast=True"),
    "fast": Key(
        bool, None, "everything: sparse grid first, skip points inside their neighbours' masks"
    ),
    "verbose": Key(bool, None, "everything: print points decoded / skipped, masks kept"),
    "prompts_from": Key(
        str, None, "everything: box prompts from a detector (YOLO .pt, box-label folder, COCO JSON)"
    ),
}

# Where batch jobs run (predict everything over a folder, annotate, embed): this process or
# a Ray cluster (samkit.cluster.RayOptions has the same names).
ENGINE_KEYS: dict[str, Key] = {
    "engine": Key(str, "local", "local (this process) or ray (a Ray cluster: samkit[ray])"),
    "address": Key(str, None, "ray: cluster address, e.g. 10.0.0.1:6379 (default: local Ray)"),
    "encoder_actors": Key(int, 1, "ray: actors running the image encoder (one per GPU)"),
    "decoder_actors": Key(int, 1, "ray: CPU actors decoding and writing"),
    "detector_actors": Key(int, 1, "ray: actors running the detector (annotate)"),
    "encode_batch": Key(int, 1, "ray: images per encoder-actor call"),
    "gpus_per_actor": Key(float, 0.0, "ray: GPUs reserved by each encoder actor"),
    "cpus_per_actor": Key(float, 1.0, "ray: CPUs reserved by each actor"),
    "head_timeout": Key(float, 20.0, "ray: seconds the cluster's head may stay unreachable"),
}

MODES: dict[str, Mode] = {
    "predict": Mode(
        "samkit.cli_modes:predict",
        "segment a source with prompts (points/labels/bboxes/masks), or everything without",
        {**PREDICT_KEYS, **ULTRALYTICS_PREDICT_KEYS, **EVERYTHING_KEYS, **ENGINE_KEYS},
        renamed={"multimask": "multimask_output", "batch_size": "decoder_batch"},
    ),
    "export": Mode(
        "samkit.export:cli_export",
        "write deployment files: format=onnx gives encoder.onnx + decoder.onnx (checked vs torch)",
        {
            "model": _MODEL,
            "format": Key(str, "onnx", "export format: onnx"),
            "output": Key(str, None, "output folder (default: <model stem>_onnx)"),
            "bake_preprocess": Key(bool, False, "encoder takes the resized image (h, w, 3)"),
            "image_dtype": Key(str, None, "with bake_preprocess: uint8 (default) or float32"),
            "return_single_mask": Key(bool, False, "decoder returns only the best mask"),
            "return_low_res": Key(bool, False, "decoder 'masks' output is the 256x256 logits"),
            "opset": Key(int, 17, "ONNX opset (>= 17)"),
            "check": Key(bool, True, "compare ONNX Runtime with torch, fail beyond rtol"),
            "rtol": Key(float, 1e-3, "check tolerance, relative to max|torch|"),
            "int8": Key(bool, False, "also write int8 (dynamically quantised) copies"),
        },
    ),
    "track": Mode(
        "samkit.video.cli:cli_track",
        "SAM 2.1: prompt objects on one frame, track them through a video; indexed PNG masks",
        {
            "model": Key(str, "sam2.1_t.pt", "SAM 2.1 checkpoint file or name (sam2.1_t ... _l)"),
            "source": Key(str, None, "video file or folder of frames", required=True),
            "points": Key("literal", None, 'points XY of one object: "points=[[x,y],...]"'),
            "labels": Key("literal", None, 'their labels: "labels=[1,0]" (default all 1)'),
            "bboxes": Key("literal", None, 'one object per box: "bboxes=[[x1,y1,x2,y2],...]"'),
            "frame": Key(int, 0, "frame the prompts are on; tracking runs forward from it"),
            "window": Key(int, 16, "frames of tracked results kept (memory flat in length)"),
            "device": _DEVICE,
            "project": Key(str, "runs", "parent folder of run folders"),
            "name": Key(str, "track", "run folder name (numbered: track, track2, ...)"),
            "exist_ok": Key(bool, False, "reuse project/name instead of numbering a new folder"),
        },
    ),
    "annotate": Mode(
        "samkit.annotate.cli:cli_annotate",
        "detector boxes -> SAM masks -> YOLO-seg / COCO / LabelMe dataset (resumable)",
        {
            "data": Key(str, None, "folder of images (or an image, a glob)", required=True),
            "det_model": Key(
                str, None, "YOLO checkpoint, YOLO box-label folder or COCO JSON", required=True
            ),
            "sam_model": _MODEL,
            "device": _DEVICE,
            "output_dir": Key(
                str, None, "default: a labels folder beside data (images/ -> labels/)"
            ),
            "conf": Key(float, 0.25, "minimum detection score"),
            "iou": Key(float, 0.45, "NMS IoU (Ultralytics detectors)"),
            "imgsz": Key(int, 640, "detector input size (Ultralytics detectors)"),
            "max_det": Key(int, 300, "most boxes per image"),
            "classes": Key("literal", None, 'keep only these class ids, e.g. "classes=[0,2]"'),
            "format": Key(str, "yolo", "yolo, coco, labelme, or several: yolo,coco"),
            "names": Key(str, None, 'class names: a,b,c or "names=[a,b]" or a data.yaml'),
            "segmentation": Key(str, "rle", "COCO masks: rle (keeps holes) or polygon"),
            "polygon_mode": Key(str, None, "largest, all or merge (default: yolo merge, else all)"),
            "tolerance": Key(float, 0.0, "polygon simplification in pixels"),
            "min_area": Key(int, 0, "drop masks with fewer pixels"),
            "overwrite": Key(bool, False, "relabel images whose labels exist (default: resume)"),
            "recursive": Key(bool, False, "descend into subfolders"),
            "decoder_batch": Key(int, None, "boxes per decoder pass (default: 4 CPU, 512 GPU)"),
            "progress": Key(bool, True, "progress bar with images/s and ETA"),
            **ENGINE_KEYS,
        },
        positional=("data",),
        renamed={"batch": "decoder_batch"},
    ),
    "train": Mode(
        "samkit.train.api:cli_train",
        "fine-tune on labelled masks (decoder by default); writes runs/train with weights/best.pt",
        {
            "model": Key(str, "mobile_sam.pt", "checkpoint or model name to start from"),
            "data": Key(
                str, None, "COCO JSON, YOLO data.yaml, LabelMe or mask folder", required=True
            ),
            "val": Key(str, None, "held-out dataset (default: val_fraction of data)"),
            "val_fraction": Key(float, 0.1, "share of data held out when val is not given"),
            "epochs": Key(int, 10, "passes over the training images"),
            "batch": Key(int, 8, "images per optimiser step (all processes together)"),
            "accumulate": Key(int, 0, "micro-batches per optimiser step (0: as few as fit)"),
            "memory": Key(float, 0.0, "GB the process may use (0: 80 % of what is available)"),
            "lr": Key(float, 1e-4, "AdamW learning rate"),
            "weight_decay": Key(float, 0.01, "AdamW weight decay (not on biases / norms)"),
            "warmup": Key(int, None, "warm-up optimiser steps (default 5 %, at most 200)"),
            "schedule": Key(str, "cosine", "cosine, step or constant after warm-up"),
            "lr_final": Key(float, 0.01, "cosine: final lr as a fraction of lr"),
            "clip": Key(float, 1.0, "gradient norm clipping (0: off)"),
            "amp": Key(bool, True, "mixed precision on CUDA (bf16, else fp16 + scaler)"),
            "train": Key(str, "decoder", "parts to train: decoder,prompt_encoder,encoder"),
            "encoder_blocks": Key(int, 0, "with train=...encoder: only its last N blocks"),
            "lora_rank": Key(int, 0, "LoRA adapters of this rank on the encoder's attention"),
            "prompts": Key(str, "mixed", "simulated prompts: mixed, box or point"),
            "max_points": Key(int, 4, "most random interior points of a point prompt"),
            "clicks": Key(int, 2, "error-region click rounds after the first prompt"),
            "mask_prompt": Key(float, 0.5, "chance a click round feeds the previous logits"),
            "box_jitter": Key(float, 0.1, "box noise, fraction of the side (<= 20 px at 1024)"),
            "objects": Key(int, 16, "most objects per image per step (one shared embedding)"),
            "balance_below": Key(float, 0.5, "class-balanced focal loss for masks under this IoU"),
            "cache": Key(str, "ram", "frozen-encoder embeddings: ram, disk or a folder"),
            "device": _DEVICE,
            "seed": Key(int, 0, "seed of shuffling, prompts and the held-out split"),
            "project": Key(str, "runs", "parent folder of run folders"),
            "name": Key(str, "train", "run folder name (numbered: train, train2, ...)"),
            "exist_ok": Key(bool, False, "reuse project/name instead of numbering a new folder"),
            "resume": Key(str, None, "true (latest run) or a run folder to continue"),
            "save_period": Key(int, 0, "also keep weights/epochN.pt every N epochs"),
            "progress": Key(bool, True, "progress bar with loss and steps/s"),
        },
    ),
    "embed": Mode(
        "samkit.cli_modes:embed",
        "precompute image embeddings into a store that val, train, distill and label read",
        {
            "source": Key(str, None, "folder of images (or an image, a glob)", required=True),
            "model": _MODEL,
            "store": Key(str, "embeddings", "store folder (<store>/<model key>/<image>.npz)"),
            "device": _DEVICE,
            "dtype": Key(str, "float32", "storage precision: float32 (lossless) or float16"),
            "recursive": Key(bool, False, "descend into subfolders"),
            "progress": Key(bool, True, "progress bar"),
            **ENGINE_KEYS,
        },
        positional=("source",),
    ),
    "val": Mode(
        "samkit.evaluation.cli:cli_val",
        "measure models on a labelled dataset: box / point / center / clicks / everything / ...",
        {
            "model": Key(str, "sam_b.pt", "checkpoint(s) or ONNX folder(s); a,b for side by side"),
            "data": Key(
                str, None, "COCO JSON, data.yaml, YOLO / LabelMe / mask-PNG folder", required=True
            ),
            "images": Key(str, None, "image folder when not beside the annotations"),
            "protocols": Key(
                str, "box,point", "box, point, center, clicks, everything, detections, teacher"
            ),
            "device": _DEVICE,
            "backend": Key(str, None, "torch or onnxruntime (default: by model path)"),
            "cache": Key(str, None, "folder for a disk embedding cache"),
            "select": Key(
                str, None, "mask selection: single, best, first, oracle (default per protocol)"
            ),
            "box_jitter": Key(float, 0.0, "box noise std as a fraction of the box side"),
            "min_area": Key(int, 0, "leave out instances with fewer pixels"),
            "averaging": Key(str, "instance", "instance or image"),
            "max_clicks": Key(int, 20, "clicks per instance (clicks protocol)"),
            "early_stop": Key(bool, True, "stop clicking at IoU 0.90 after 5 clicks"),
            "seed": Key(int, 0, "seed of every random choice"),
            "batch": Key(int, 16, "instances decoded together"),
            "detections": Key(
                str,
                None,
                "detections: detector checkpoint, results/instances JSON, YOLO box folder",
            ),
            "teacher": Key(str, None, "teacher: the teacher model"),
            "points_per_side": Key(int, None, "everything: grid points per side (32)"),
            "max_images": Key(int, None, "evaluate the first N images"),
            "project": Key(str, "runs", "parent folder of run folders"),
            "name": Key(str, "val", "run folder name (numbered: val, val2, ...)"),
            "save": Key(bool, True, "write metrics.json, instances.csv and plots"),
            "plots": Key(bool, True, "write plots"),
            "progress": Key(bool, True, "progress bar with images/s"),
        },
        positional=("data",),
    ),
    "label": Mode(
        "samkit.label.cli:cli_label",
        "browser annotator: a click becomes a mask, saved as COCO / YOLO-seg / LabelMe",
        {
            "images": Key(str, None, "folder of images (or a glob)", required=True),
            "model": Key(str, "mobile_sam.pt", "checkpoint file or model name"),
            "classes": Key(str, None, "class names, e.g. person,car", required=True),
            "output_dir": Key(str, None, "label folder (default: <images>_labels next to it)"),
            "host": Key(
                str, "127.0.0.1", "address to bind; any other than localhost needs a token"
            ),
            "port": Key(int, 8765, "port (0: a free one)"),
            "token": Key(str, None, "bearer token (default: made up when host is not local)"),
            "device": _DEVICE,
            "format": Key(str, "coco,yolo,labelme", "label files written on every save"),
            "prefetch": Key(int, 2, "next images encoded in the background (0: off)"),
            "cache_dir": Key(str, None, "embedding cache (default: <samkit cache>/embeddings)"),
            "recursive": Key(bool, False, "descend into subfolders"),
            "det_model": Key(
                str, None, "boxes for auto-annotate proposals: YOLO .pt, label dir, COCO JSON"
            ),
            "import_coco": Key(
                str, None, "COCO instances JSON: starting objects for images without labels"
            ),
        },
        positional=("images",),
    ),
    "distill": Mode(
        "samkit.distillation.api:cli_distill",
        "distil a small image encoder from a teacher on unlabelled images (MobileSAM's recipe)",
        {
            "teacher": Key(str, "sam_h", "teacher checkpoint or model name"),
            "student": Key(str, "mobile_sam", "student architecture name, or a checkpoint file"),
            "data": Key(str, None, "image folder or any dataset samkit val reads", required=True),
            "images": Key(str, None, "image folder when not beside the annotations"),
            "val": Key(str, None, "held-out images (default: the last val_images of data)"),
            "val_images": Key(int, 8, "images held out of data when val is not given"),
            "cache": Key(str, None, "teacher-embedding cache folder (default: per teacher)"),
            "loss": Key(str, "mse", "stage-1 embedding loss: mse, huber or l1"),
            "flip": Key(bool, False, "also left-right flipped images (teacher runs on each)"),
            "stage": Key(int, 1, "1: embeddings only; 2: also prompts in the loop"),
            "prompt_weight": Key(float, 1.0, "stage 2: weight of the mask loss"),
            "prompts": Key(int, 4, "stage 2: random points (and their boxes) per image"),
            "train_decoder": Key(bool, False, "stage 2: train the decoder too"),
            "gt_prompts": Key(bool, True, "stage 2, labelled data: prompts from the GT masks"),
            "agreement": Key(bool, True, "teacher agreement (val's teacher protocol) each epoch"),
            "epochs": Key(int, 8, "passes over the training images"),
            "batch": Key(int, 8, "images per optimiser step (all processes together)"),
            "accumulate": Key(int, 0, "micro-batches per optimiser step (0: as few as fit)"),
            "memory": Key(float, 0.0, "GB the process may use (0: 80 % of what is available)"),
            "lr": Key(float, 1e-3, "AdamW learning rate"),
            "weight_decay": Key(float, 0.01, "AdamW weight decay (not on biases / norms)"),
            "warmup": Key(int, None, "warm-up optimiser steps (default 5 %, at most 200)"),
            "schedule": Key(str, "cosine", "cosine, step or constant after warm-up"),
            "clip": Key(float, 1.0, "gradient norm clipping (0: off)"),
            "amp": Key(bool, True, "mixed precision on CUDA (bf16, else fp16 + scaler)"),
            "device": _DEVICE,
            "seed": Key(int, 0, "seed of shuffling and prompts"),
            "project": Key(str, "runs", "parent folder of run folders"),
            "name": Key(str, "distill", "run folder name (numbered: distill, distill2, ...)"),
            "exist_ok": Key(bool, False, "reuse project/name instead of numbering a new folder"),
            "resume": Key(str, None, "true (latest run) or a run folder to continue"),
            "save_period": Key(int, 0, "also keep weights/epochN.pt every N epochs"),
            "progress": Key(bool, True, "progress bars"),
        },
    ),
    "info": Mode(
        "samkit.cli_modes:info",
        "print a model's summary",
        {
            "model": _MODEL,
            "device": _DEVICE,
            "json": Key(bool, False, "print JSON instead of a table"),
        },
    ),
    "models": Mode("samkit.cli_modes:models", "list model variants, their files and cache state"),
    "sample": Mode(
        "samkit.cli_modes:sample",
        'print the path of the bundled sample image: samkit predict source="$(samkit sample)"',
    ),
    "download": Mode(
        "samkit.cli_modes:download",
        "download a model's weights into the cache (samkit download sam_b)",
        {"name": Key(str, None, "model name, e.g. sam_b, mobile_sam", required=True)},
        positional=("name",),
    ),
    "benchmark": Mode(
        "samkit.cli_modes:benchmark",
        "run benchmarks/bench_engine.py of a source checkout (samkit vs the references)",
        {
            "models": Key(str, "mobile_sam,sam_b", "comma-separated variants"),
            "repeats": Key(int, None, "timed runs per task (default 5 MobileSAM, 3 SAM-B)"),
            "threads": Key(int, None, "torch CPU threads (default: cores)"),
            "bf16": Key(bool, True, "also time samkit with a bf16 encoder"),
            "reference": Key(bool, True, "time segment_anything / mobile_sam when installed"),
            "ultralytics": Key(bool, True, "time Ultralytics when installed"),
            "memory": Key(bool, True, "peak memory per task (child processes)"),
            "json": Key(str, None, "write raw timings to this file"),
        },
    ),
}

"""Bad input found by driving samkit as a newcomer would: each case ends in one clear error line
(exit 2 for CLI usage errors, 1 for other failures) naming the argument, before work starts,
with nothing partial left behind. Runs the CLI in-process (``samkit.cli.main``) to stay quick."""

from __future__ import annotations

import dataclasses
import http.server
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from front_helpers import TINY_CONFIG, save_random_checkpoint, write_image
from samkit import SAM
from samkit.build import build_from_config, build_sam
from samkit.cli import main
from samkit.embeddings import EmbeddingStore
from samkit.errors import (
    ArgumentError,
    ArgumentTypeError,
    CheckpointError,
    SamkitError,
    SourceError,
    UnknownKeyError,
)
from samkit.evaluation.clicks import centroid, interior_point
from samkit.registry import get_variant
from samkit.sources import read_url


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad_input")
    ckpt = save_random_checkpoint(root / "tiny.pt", TINY_CONFIG, seed=3)
    write_image(root / "img.png", 48, 64)
    (root / "a_file").write_text("not a folder")
    (root / "boxes").mkdir()  # a (empty) folder of YOLO box labels: a detector without weights
    (root / "evil.yaml").write_text("names: !!python/object/apply:os.system ['echo hi']\n")
    return {"root": root, "ckpt": ckpt, "image": root / "img.png"}


@pytest.fixture(scope="module")
def tiny(setup: dict[str, Path]) -> SAM:
    return SAM(setup["ckpt"], device="cpu")


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # one line, no traceback
    assert err[0].startswith("samkit: error: ")
    return code, err[0]


# (argv after the mode, exit code, text the one error line must hold); {ckpt}, {img}, {root}
CLI_CASES = [
    (["predict", "source=", "bboxes=[1,1,5,5]"], 2, "source is empty"),
    (["predict", "source={img}", "bboxes=[1,1,5,5]", "name=../../x"], 2, "single folder name"),
    (["predict", "source={img}", "bboxes=[1,1,5,5]", "project={root}/a_file"], 2, "is a file"),
    (["predict", "source={img}", "point=[[1,1]]"], 2, "Did you mean 'points'?"),
    (["predict", "source={img}", "box=[1,1,5,5]"], 2, "Did you mean 'bboxes'?"),
    (["predict", "source={img}", "decoder_batch=a"], 2, "bad value for decoder_batch: 'a'"),
    (
        ["predict", "source={img}", "points=" + "[" * 100_000 + "]" * 100_000],
        2,
        "bad value for points",
    ),
    (["predict", "source={img}", "bboxes=[1,1,5,5]", "device=banana"], 1, "device must be"),
    (["predict", "source={img}", "bboxes=[1,1,5,5]", "device=cuda:7"], 1, "device 'cuda:7'"),
    (["annotate", "{img}", "det_model=x.json", "names=[a,"], 2, "bad value for names: '[a,'"),
    (["annotate", "{img}", "det_model=x.json", "conf=high"], 2, "bad value for conf: 'high'"),
    (["annotate", "{img}", "det_model=x.json", 'classes=["a"]'], 1, "classes must be a list"),
    (
        ["annotate", "{img}", "det_model={root}/boxes", "names={root}/evil.yaml"],
        1,
        "not a plain YAML",
    ),
    (["annotate", "{img}", "det_model={root}/boxes", "output_dir={root}/a_file"], 1, "is a file"),
    (["export", "rtol=-1", "output={root}/exp"], 1, "rtol must be a positive number"),
    (["export", "output={root}/a_file"], 1, "is a file"),
]


@pytest.mark.parametrize(("argv", "code", "needle"), CLI_CASES, ids=lambda v: str(v)[:40])
def test_cli_bad_input_is_one_line(setup, capsys, argv, code, needle) -> None:
    fill = {"ckpt": setup["ckpt"], "img": setup["image"], "root": setup["root"]}
    args = [a.format(**fill) if "{" in a and len(a) < 1000 else a for a in argv]
    model_key = "sam_model" if args[0] == "annotate" else "model"
    got_code, line = _cli(capsys, *args, f"{model_key}={setup['ckpt']}")
    assert (got_code, needle in line) == (code, True), line
    assert not (setup["root"].parent / "x").exists()  # name=../../x wrote nothing
    assert not list((setup["root"] / "exp").glob("*")) if (setup["root"] / "exp").exists() else True


def test_detector_package_missing_is_one_line(setup, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ultralytics", None)  # import ultralytics -> ImportError
    code, line = _cli(capsys, "annotate", str(setup["image"]), "det_model=yolov8x.pt",
                      f"sam_model={setup['ckpt']}")  # fmt: skip
    assert code == 1 and "pip install 'samkit[detect]'" in line


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda ckpt: SAM(ckpt, device="banana"), "device must be"),
        (lambda ckpt: SAM(ckpt, device="cuda:7"), "device 'cuda:7'"),
        (lambda ckpt: build_sam(123), "checkpoint must be a file path or a model name"),
    ],
)
def test_front_constructor_errors(setup, call, needle) -> None:
    with pytest.raises(SamkitError, match=needle):
        call(setup["ckpt"])


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"point": [[1, 1]]}, "did you mean the prompt 'points'"),
        ({"box": [1, 1, 5, 5]}, "did you mean the prompt 'bboxes'"),
        ({"bboxes": [1, 1, 5, 5], "batch_size": "a"}, "batch_size must be a positive int, got 'a'"),
        ({"bboxes": [1, 1, 5, 5], "conf": "high"}, r"conf must be a number in \[0, 1\]"),
        ({"points": [[np.nan, 1]]}, "NaN"),
        ({"bboxes": [0, 0, 1e300, 5]}, "at most"),
        ({"stability_score_thresh": 5}, "stability_score_thresh must be a number in"),
    ],
)
def test_front_call_errors(tiny, setup, kwargs, needle) -> None:
    with pytest.raises(SamkitError, match=needle):
        tiny(setup["image"], **kwargs)


def test_empty_source_is_refused(tiny) -> None:
    for source in ("", "  "):  # (Path("") is Path("."), the current folder: a real source)
        with pytest.raises(SamkitError, match="source"):
            tiny(source, bboxes=[1, 1, 5, 5])


def test_prompt_outside_the_image_warns_with_prompt_and_size(tiny, setup) -> None:
    with pytest.warns(UserWarning, match=r"point \(900, 370\) outside the image \(64x48 pixels"):
        tiny(setup["image"], points=[[900, 370]])
    with pytest.warns(UserWarning, match=r"box 1 \[0, 0, 70, 10\] reaches outside the image"):
        tiny(setup["image"], bboxes=[[0, 0, 5, 5], [0, 0, 70, 10]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tiny(setup["image"], points=[[63, 47]], bboxes=[0, 0, 64, 48])  # inside: silent


# (call, samkit error, the builtin it was before and still is, text the message must hold)
LIBRARY_CASES = [
    (lambda: get_variant("sam_xl"), UnknownKeyError, KeyError, "unknown model 'sam_xl'; known"),
    (
        lambda: build_from_config(dataclasses.replace(TINY_CONFIG, encoder="vit_b")),
        ArgumentTypeError,
        TypeError,
        "config.encoder must be a .*ViTConfig or TinyViTConfig",
    ),
    (
        lambda: EmbeddingStore(None, "m", dtype="bfloat16"),
        ArgumentError,
        ValueError,
        "dtype must be 'float32' or 'float16', got 'bfloat16'",
    ),
    (
        lambda: EmbeddingStore(None, "m", memory_items=-1),
        ArgumentError,
        ValueError,
        "memory_items must be a non-negative int, got -1",
    ),
    (
        lambda: interior_point(np.zeros((3, 4), bool)),
        ArgumentError,
        ValueError,
        r"mask must have a pixel set for interior_point, got none of \(3, 4\)",
    ),
    (lambda: centroid(np.zeros((2, 2))), ArgumentError, ValueError, "pixel set for centroid"),
]


@pytest.mark.parametrize(("call", "error", "builtin", "needle"), LIBRARY_CASES)
def test_library_errors_are_samkit_errors(call, error, builtin, needle) -> None:
    """Bad arguments to library functions raise a samkit error that is still the builtin
    raised before (so ``except KeyError`` / ``ValueError`` callers keep working)."""
    with pytest.raises(error, match=needle) as info:
        call()
    assert isinstance(info.value, SamkitError) and isinstance(info.value, builtin)


def test_unknown_model_key_error_prints_its_message_unquoted() -> None:
    with pytest.raises(KeyError) as info:
        get_variant("sam_xl")
    assert str(info.value).startswith("unknown model 'sam_xl'")  # KeyError would quote it
    assert info.value.args[0] == str(info.value)


def test_nan_weights_are_refused(tmp_path) -> None:
    model = build_from_config(TINY_CONFIG)
    state = model.state_dict()
    state["mask_decoder.iou_prediction_head.layers.0.weight"][0, 0] = float("nan")
    torch.save(state, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match="NaN or infinite weights in 1 tensor"):
        build_sam(tmp_path / "nan.pt")


def test_endless_url_stream_is_capped() -> None:
    class Endless(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.end_headers()
            chunk = b"\0" * 65536
            try:
                while True:
                    self.wfile.write(chunk)
            except OSError:
                pass

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/feed.jpg"
        with pytest.raises(SourceError, match="sends more than 1 MiB"):
            read_url(url, timeout=10, max_bytes=2**20)
    finally:
        server.shutdown()
        server.server_close()


def test_failed_export_leaves_no_files(setup, tmp_path) -> None:
    """The check fails after both graphs were written: nothing may stay behind (it used to
    leave encoder.onnx / decoder.onnx without a manifest)."""
    pytest.importorskip("onnxruntime")
    from samkit.export import export

    with pytest.raises(SamkitError, match="differs from torch"):
        export(setup["ckpt"], output=tmp_path / "exp", rtol=1e-30)
    assert list((tmp_path / "exp").iterdir()) == []


def test_cli_warns_in_one_line_for_a_point_outside(setup, capsys, tmp_path) -> None:
    code = main(["predict", f"model={setup['ckpt']}", f"source={setup['image']}",
                 "points=[[900,370]]", f"project={tmp_path}", "save=false"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0
    assert "samkit: warning: points: object 0 has the point (900, 370) outside the image" in err
    assert "UserWarning" not in err

"""The installed ``samkit`` console script, run in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from front_helpers import HAS_EVERYTHING, TINY_CONFIG, save_random_checkpoint, write_image
from samkit.cli import MODES, parse_args


def _samkit() -> str:
    found = shutil.which("samkit") or shutil.which("samkit", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("the samkit console script is not installed")
    return found


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    ckpt = save_random_checkpoint(root / "weights.pt", TINY_CONFIG, seed=3)
    images = root / "images"
    images.mkdir()
    write_image(images / "one.png", 48, 64, seed=1)
    write_image(images / "two.jpg", 40, 40, seed=2)
    (images / "readme.txt").write_text("not an image")
    return {"root": root, "ckpt": ckpt, "images": images}


def run(setup, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SAMKIT_HOME": str(setup["root"] / "cache")}
    return subprocess.run(
        [_samkit(), *args], capture_output=True, text=True, cwd=cwd or setup["root"], env=env,
        timeout=300,
    )  # fmt: skip


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("samkit: error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_predict_with_prompts_writes_numbered_runs(setup, tmp_path):
    image = str(setup["images"] / "one.png")
    args = ["predict", f"model={setup['ckpt']}", f"source={image}",
            "points=[[[30,20],[5,5]],[[10,40]]]", "labels=[[1,0],[1]]", "multimask=True"]  # fmt: skip
    first = run(setup, *args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    run_dir = tmp_path / "runs" / "predict"
    assert (run_dir / "one.jpg").is_file()
    summary = json.loads((run_dir / "predictions.json").read_text())
    assert summary["counts"] == {"images": 1, "masks": 6, "skipped": 0}  # 3 per object
    assert [o["object_id"] for o in summary["images"][0]["objects"]] == [0, 0, 0, 1, 1, 1]
    lines = (run_dir / "labels" / "one.txt").read_text().splitlines()
    assert all(line.startswith("0 ") for line in lines)
    # The same run with --flags goes to a new folder, with the same masks.
    flags = ["predict", "--model", str(setup["ckpt"]), f"--source={image}",
             "--points", "[[[30,20],[5,5]],[[10,40]]]", "--labels=[[1,0],[1]]", "--multimask"]  # fmt: skip
    second = run(setup, *flags, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    again = json.loads((tmp_path / "runs" / "predict2" / "predictions.json").read_text())
    seg = [o["segmentation"] for o in again["images"][0]["objects"]]
    assert seg == [o["segmentation"] for o in summary["images"][0]["objects"]]
    assert (run_dir / "one.jpg").is_file()  # the first run is untouched


def test_predict_folder_reports_non_image(setup, tmp_path):
    proc = run(setup, "predict", f"model={setup['ckpt']}", f"source={setup['images']}",
               "bboxes=[2,2,30,30]", "project=out", "name=exp", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "readme.txt" in proc.stderr
    summary = json.loads((tmp_path / "out" / "exp" / "predictions.json").read_text())
    assert summary["counts"] == {"images": 2, "masks": 2, "skipped": 1}
    assert Path(summary["skipped"][0]["path"]).name == "readme.txt"
    assert sorted(p.name for p in (tmp_path / "out" / "exp" / "labels").iterdir()) == [
        "one.txt",
        "two.txt",
    ]


def test_predict_without_prompts(setup, tmp_path):
    image = str(setup["images"] / "one.png")
    args = ["predict", f"model={setup['ckpt']}", f"source={image}"]
    if not HAS_EVERYTHING:
        proc = run(setup, *args, cwd=tmp_path)
        assert proc.returncode == 1
        assert "not available yet" in _one_line_error(proc)
        return
    quick = ["points_per_side=4", "pred_iou_thresh=0", "stability_score_thresh=0"]
    proc = run(setup, *args, *quick, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "runs" / "predict" / "predictions.json").read_text())
    assert summary["counts"]["masks"] >= 1
    assert "stability_score" in summary["images"][0]["objects"][0]


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["predict", "source=x.png", "poinst=[1,2]"], 2, "Did you mean 'points'?"),
        (["predict", "source=x.png", "--multimsk"], 2, "Did you mean 'multimask_output'?"),
        (["predict", "source=x.png", "conf=abc"], 2, "bad value for conf: 'abc'"),
        (["predict", "source=x.png", "points=__import__('os')"], 2, "bad value for points"),
        (["predict", "source=missing.png", "points=[1,2]"], 1, "does not exist"),
        (["predikt"], 2, "Did you mean 'predict'?"),
        (["predict"], 2, "needs source="),
        (["download", "sam_q"], 1, "unknown model 'sam_q'"),
    ],
)
def test_usage_errors_are_one_line(setup, args, code, needle):
    extra = [f"model={setup['ckpt']}"] if args[0] == "predict" else []
    proc = run(setup, *args, *extra)
    assert proc.returncode == code, proc.stderr
    assert needle in _one_line_error(proc)


def test_unreadable_single_image_fails(setup):
    proc = run(setup, "predict", f"model={setup['ckpt']}", f"source={setup['images'] / 'readme.txt'}",
               "points=[1,2]")  # fmt: skip
    assert proc.returncode == 1
    assert "cannot read" in _one_line_error(proc)


def test_help_info_models_download(setup):
    main_help = run(setup, "--help")
    assert main_help.returncode == 0 and all(m in main_help.stdout for m in MODES)
    predict_help = run(setup, "predict", "--help")
    assert predict_help.returncode == 0 and "bboxes" in predict_help.stdout
    info = run(setup, "info", f"model={setup['ckpt']}", "--json")
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["params_total"] > 0
    cache = setup["root"] / "cache"
    cache.mkdir(exist_ok=True)
    shutil.copy(setup["ckpt"], cache / "mobile_sam.pt")  # pretend it was downloaded
    models = run(setup, "models")
    assert models.returncode == 0
    row = next(line for line in models.stdout.splitlines() if line.startswith("mobile_sam"))
    assert " yes " in row
    download = run(setup, "download", "mobile_sam")
    assert download.returncode == 0 and download.stdout.strip() == str(cache / "mobile_sam.pt")


def test_parse_grammar_in_process():
    mode = MODES["predict"]
    a = parse_args(
        "predict", mode, ["source=a.jpg", "points=[[1,2]]", "multimask=true", "conf=0.5"]
    )
    b = parse_args(
        "predict", mode, ["--source", "a.jpg", "--points=[[1,2]]", "--multimask", "--conf", "0.5"]
    )
    assert a == b and a["points"] == [[1, 2]] and a["multimask_output"] is True
    assert a["conf"] == 0.5


def test_cli_keys_are_the_api_names_old_spellings_accepted(capsys):
    mode = MODES["predict"]
    new = parse_args("predict", mode, ["source=a.jpg", "multimask_output=true", "decoder_batch=8"])
    old = parse_args("predict", mode, ["source=a.jpg", "multimask=true", "batch_size=8"])
    assert new == old and new["decoder_batch"] == 8 and "batch_size" not in new
    assert "multimask= is now multimask_output=" in capsys.readouterr().err
    args = parse_args("annotate", MODES["annotate"], ["data=x", "det_model=y", "batch=3"])
    assert args["decoder_batch"] == 3 and "batch" not in args
    assert parse_args("predict", mode, ["source=a.jpg", "points=((1,2),)"])["points"] == ((1, 2),)

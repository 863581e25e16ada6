"""Detector checkpoints that would run code are refused before Ultralytics unpickles them, on
every path that takes one (annotate, predict prompts_from, val detections, label det_model);
a genuine Ultralytics checkpoint still loads."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch

from samkit.annotate.detector_files import TRUST_VARIABLE, check_detector_file
from samkit.errors import CheckpointError
from shapes_data import make_shapes_dataset

pytest.importorskip("ultralytics")


class _System:
    """Unpickles as ``os.system(<command>)``."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.command,))


class _Exec:
    """Unpickles as ``builtins.exec(<code>)``."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        import builtins

        return (builtins.exec, (self.code,))


class _CallsLayer:
    """Unpickles as a call of an Ultralytics class with arguments (not a rebuild)."""

    def __reduce__(self) -> tuple[Any, ...]:
        from ultralytics.nn.tasks import DetectionModel

        return (DetectionModel, ("yolov8n.yaml",))


def _payloads(folder: Path, marker: Path) -> list[Path]:
    """Files that write ``marker`` (or call a layer class) when fully unpickled."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for name, payload in (
        ("system.pt", _System(f"touch {marker}")),
        ("exec.pt", _Exec(f"open({str(marker)!r}, 'w').write('ran')")),
        ("layer_call.pt", _CallsLayer()),
    ):
        torch.save({"model": payload, "epoch": 1}, folder / name)
        files.append(folder / name)
    plain = folder / "plain_pickle.pt"  # not a torch zip: torch.load would unpickle it at once
    plain.write_bytes(pickle.dumps(_System(f"touch {marker}")))
    files.append(plain)
    return files


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], Path]:
    folder = tmp_path_factory.mktemp("crafted")
    marker = folder / "ran.txt"
    return _payloads(folder / "files", marker), marker


def test_crafted_files_run_nothing_and_say_why(crafted: tuple[list[Path], Path]) -> None:
    files, marker = crafted
    for path in files:
        with pytest.raises(CheckpointError) as info:
            check_detector_file(path, "det_model")
        message = str(info.value)
        assert message.startswith(f"det_model: {path} was not loaded")
        assert TRUST_VARIABLE in message
    assert not marker.exists()


def test_every_command_refuses_a_crafted_detector(
    crafted: tuple[list[Path], Path],
    tiny_checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """annotate det_model=, predict prompts_from=, val detections=, label det_model=: exit 1
    with the samkit error naming the key; the payload wrote nothing."""
    from samkit.cli import main

    files, marker = crafted
    shapes = make_shapes_dataset(tmp_path / "shapes", 1, seed=1)
    image = next((tmp_path / "shapes" / "images").glob("*.png"))
    for evil in files:
        commands = {
            "det_model": ["annotate", str(image.parent), f"det_model={evil}",
                          f"sam_model={tiny_checkpoint}", f"output_dir={tmp_path / 'out'}",
                          "progress=false"],
            "prompts_from": ["predict", f"model={tiny_checkpoint}", f"source={image}",
                             f"prompts_from={evil}", f"project={tmp_path / 'runs'}"],
            "detections": ["val", f"data={shapes}", f"model={tiny_checkpoint}",
                           "protocols=detections", f"detections={evil}",
                           f"project={tmp_path / 'runs'}"],
            "label det_model": ["label", str(image.parent), f"model={tiny_checkpoint}",
                                "classes=a", f"det_model={evil}",
                                f"output_dir={tmp_path / 'labels'}",
                                f"cache_dir={tmp_path / 'cache'}"],
        }  # fmt: skip
        for key, argv in commands.items():
            assert main(argv) == 1, (key, evil.name)
            err = capsys.readouterr().err
            assert f"{key.split()[-1]}: {evil} was not loaded" in err, (key, err)
            assert not marker.exists(), (key, evil.name)


def test_label_build_refuses_a_crafted_detector(
    crafted: tuple[list[Path], Path], tiny_checkpoint: Path, tmp_path: Path
) -> None:
    pytest.importorskip("fastapi")
    from label_helpers import write_images
    from samkit.label import build

    files, marker = crafted
    images = write_images(tmp_path / "images", 1)
    with pytest.raises(CheckpointError, match=r"det_model: .* was not loaded"):
        build(images[0].parent, str(tiny_checkpoint), "a", det_model=files[0],
              output_dir=tmp_path / "o", cache_dir=tmp_path / "c")  # fmt: skip
    assert not marker.exists()


def test_genuine_ultralytics_checkpoint_still_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint Ultralytics saved itself (random weights from its yaml, nothing downloaded)
    passes the check and becomes a working detector; a trusted crafted file is let through."""
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "ultralytics_cfg"))
    import numpy as np
    import ultralytics

    from samkit.annotate import UltralyticsDetector, make_box_source

    torch.manual_seed(0)
    path = tmp_path / "yolov8n_random.pt"
    ultralytics.YOLO("yolov8n.yaml").save(path)
    check_detector_file(path)
    det = make_box_source(str(path), conf=0.0, max_det=2, imgsz=64, device="cpu")
    assert isinstance(det, UltralyticsDetector) and len(det.names) == 80
    found = det(np.full((64, 64, 3), 128, np.uint8), "x.png")
    assert found.boxes.shape[1] == 4

    (plain,) = _payloads(tmp_path / "trusted", tmp_path / "never.txt")[-1:]
    monkeypatch.setenv(TRUST_VARIABLE, os.pathsep.join(["/elsewhere.pt", str(plain)]))
    check_detector_file(plain)  # listed: the user vouched for it (not loaded here)
    monkeypatch.setenv(TRUST_VARIABLE, "/elsewhere.pt")
    with pytest.raises(CheckpointError):
        check_detector_file(plain)

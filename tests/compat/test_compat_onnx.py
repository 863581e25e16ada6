"""The baked-preprocess ONNX encoder's input contract: uint8 (samkit's default) or float32
pixel values (what samexporter / AnyLabeling send), and samkit's ONNX Runtime backend feeding
whichever the export takes."""

from __future__ import annotations

import numpy as np
import pytest

from front_helpers import TINY_CONFIG
from reference import make_image, randomize
from samkit.build import build_from_config
from samkit.errors import SamkitError

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def model():
    net = build_from_config(TINY_CONFIG)
    randomize(net, 3)
    return net.eval()


@pytest.mark.parametrize("image_dtype", [pytest.param("uint8", marks=pytest.mark.slow), "float32"])
def test_baked_encoder_input_dtype(model, image_dtype, tmp_path) -> None:
    from samkit import SAM
    from samkit.export import export

    folder = tmp_path / "onnx"
    export(model, output=folder, bake_preprocess=True, image_dtype=image_dtype, log=print)
    session = ort.InferenceSession(str(folder / "encoder.onnx"), providers=["CPUExecutionProvider"])
    kind = session.get_inputs()[0].type
    assert kind == ("tensor(uint8)" if image_dtype == "uint8" else "tensor(float)")
    # A client that resizes itself and sends the dtype the encoder declares:
    image = make_image(256, 192, seed=1)
    got = session.run(None, {"image": image.astype(image_dtype)})[0]
    assert got.shape == (1, 256, 16, 16) and np.isfinite(got).all()
    # samkit's backend feeds either export; masks equal the torch front's.
    rgb = make_image(120, 90, seed=2)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    onnx_r = SAM(folder)(bgr, bboxes=[10, 10, 80, 100])[0]
    torch_r = SAM(model, device="cpu")(bgr, bboxes=[10, 10, 80, 100])[0]
    off = int((np.asarray(onnx_r.masks) != np.asarray(torch_r.masks)).sum())
    print(f"{image_dtype}: {off} of {rgb.shape[0] * rgb.shape[1]} pixels differ from torch")
    assert off <= 10
    np.testing.assert_allclose(onnx_r.scores, torch_r.scores, atol=1e-3)


def test_image_dtype_checked_before_work(model, tmp_path) -> None:
    from samkit.export import export

    with pytest.raises(SamkitError, match="image_dtype"):
        export(model, output=tmp_path / "x", bake_preprocess=True, image_dtype="float16")
    assert not (tmp_path / "x" / "encoder.onnx").exists()

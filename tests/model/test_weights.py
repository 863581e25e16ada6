"""samkit.weights: cache location, name resolution, resumable verified downloads from a loopback
server, safe checkpoint loading, and architecture recognition from tensors. All offline."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import pickle
import re
import socket
import threading
from collections.abc import Callable, Iterator
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from samkit import architecture, registry, weights
from samkit.errors import CheckpointError, DownloadError
from samkit.registry import SamConfig, TinyViTConfig, ViTConfig

SAM_B_FILE = registry.VARIANTS["sam_b"].weights.filename


# --------------------------------------------------------------------------------------------
# Loopback HTTP server
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class FakeServer:
    """What the loopback server serves and what it saw."""

    url: str
    payload: bytes = b""
    cut_after: int | None = None  # close the connection after this many body bytes, once
    ignore_range: bool = False
    requests: list[dict[str, str | None]] = dataclasses.field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        state: FakeServer = self.server.state  # type: ignore[attr-defined]
        rng = self.headers.get("Range")
        state.requests.append({"path": self.path, "range": rng})
        if self.path != f"/{SAM_B_FILE}":
            self.send_error(404)
            return
        data, start = state.payload, 0
        match = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if match and not state.ignore_range:
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if state.cut_after is not None:
            body, state.cut_after = body[: state.cut_after], None
            self.close_connection = True
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[FakeServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    state = FakeServer(url=f"http://127.0.0.1:{httpd.server_address[1]}")
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _checkpoint_bytes() -> bytes:
    buf = io.BytesIO()
    torch.save({"a": torch.arange(300_000, dtype=torch.float32), "b": torch.ones(3, 4)}, buf)
    return buf.getvalue()


@pytest.fixture
def sam_b_mirror(
    server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Path]:
    """Point sam_b at the loopback server serving a small checkpoint; returns a setter of the
    expected sha256 / size that gives back the cache destination."""
    server.payload = _checkpoint_bytes()
    monkeypatch.setenv("SAMKIT_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("SAMKIT_WEIGHTS_URL", server.url + "/")

    def set_spec(sha256: str | None = None, size: int | None = -1) -> Path:
        variant = registry.VARIANTS["sam_b"]
        spec = dataclasses.replace(
            variant.weights,
            sha256=sha256 or hashlib.sha256(server.payload).hexdigest(),
            size=len(server.payload) if size == -1 else size,
        )
        monkeypatch.setitem(registry.VARIANTS, "sam_b", dataclasses.replace(variant, weights=spec))
        return tmp_path / "cache" / SAM_B_FILE

    set_spec()
    return set_spec


def _part(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


# --------------------------------------------------------------------------------------------
# cache_dir / resolve_checkpoint
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SAMKIT_HOME": "/x/samkit_home", "XDG_CACHE_HOME": "/x/xdg"}, "/x/samkit_home"),
        ({"XDG_CACHE_HOME": "/x/xdg"}, "/x/xdg/samkit"),
        ({"HOME": "/x/home"}, "/x/home/.cache/samkit"),
    ],
)
def test_cache_dir_precedence(
    env: dict[str, str], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("SAMKIT_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert weights.cache_dir() == Path(expected)


def test_download_lands_in_cache_and_is_reused(
    server: FakeServer, sam_b_mirror: Callable[..., Path]
) -> None:
    dest = sam_b_mirror()
    path = weights.resolve_checkpoint("sam_b", progress=False)
    assert path == dest
    assert path.read_bytes() == server.payload
    assert not _part(dest).exists()
    assert [r["path"] for r in server.requests] == [f"/{SAM_B_FILE}"]
    # Ultralytics' file name maps to the same official file; no second request.
    assert weights.resolve_checkpoint("sam_b.pt", progress=False) == dest
    assert weights.resolve_checkpoint(SAM_B_FILE, download=False) == dest
    assert len(server.requests) == 1
    assert torch.equal(weights.load_state_dict(path)["b"], torch.ones(3, 4))


def test_interrupted_download_resumes_with_range(
    server: FakeServer, sam_b_mirror: Callable[..., Path]
) -> None:
    dest = sam_b_mirror()
    server.cut_after = 100_000
    with pytest.raises(DownloadError, match="interrupted") as info:
        weights.resolve_checkpoint("sam_b", progress=False)
    assert str(dest) in str(info.value)
    assert _part(dest).stat().st_size == 100_000
    assert not dest.exists()

    assert weights.resolve_checkpoint("sam_b", progress=False) == dest
    assert server.requests[-1]["range"] == "bytes=100000-"
    assert weights.sha256sum(dest) == hashlib.sha256(server.payload).hexdigest()
    assert not _part(dest).exists()


def test_server_ignoring_range_restarts_from_zero(
    server: FakeServer, sam_b_mirror: Callable[..., Path]
) -> None:
    dest = sam_b_mirror()
    dest.parent.mkdir(parents=True)
    _part(dest).write_bytes(b"junk" * 100)
    server.ignore_range = True
    weights.resolve_checkpoint("sam_b", progress=False)
    assert server.requests[0]["range"] == "bytes=400-"
    assert dest.read_bytes() == server.payload


def test_complete_part_with_unknown_size_is_verified_after_416(
    server: FakeServer, sam_b_mirror: Callable[..., Path]
) -> None:
    dest = sam_b_mirror(size=None)
    dest.parent.mkdir(parents=True)
    _part(dest).write_bytes(server.payload)
    assert weights.resolve_checkpoint("sam_b", progress=False) == dest
    assert [r["range"] for r in server.requests] == [f"bytes={len(server.payload)}-"]
    assert dest.read_bytes() == server.payload


def test_oversized_part_is_discarded(server: FakeServer, sam_b_mirror: Callable[..., Path]) -> None:
    dest = sam_b_mirror()
    dest.parent.mkdir(parents=True)
    _part(dest).write_bytes(server.payload + b"extra")
    weights.resolve_checkpoint("sam_b", progress=False)
    assert server.requests[0]["range"] is None
    assert dest.read_bytes() == server.payload


def test_hash_mismatch_leaves_nothing_behind(
    server: FakeServer, sam_b_mirror: Callable[..., Path]
) -> None:
    dest = sam_b_mirror(sha256="0" * 64)
    actual = hashlib.sha256(server.payload).hexdigest()
    with pytest.raises(DownloadError) as info:
        weights.resolve_checkpoint("sam_b", progress=False)
    message = str(info.value)
    assert SAM_B_FILE in message
    assert "0" * 64 in message
    assert actual in message
    assert not dest.exists()
    assert not _part(dest).exists()


def test_size_mismatch_is_refused(server: FakeServer, sam_b_mirror: Callable[..., Path]) -> None:
    dest = sam_b_mirror(size=len(server.payload) + 1)
    with pytest.raises(DownloadError, match=r"expected \d+ bytes"):
        weights.resolve_checkpoint("sam_b", progress=False)
    assert not dest.exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_offline_error_says_where_to_put_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAMKIT_HOME", str(tmp_path))
    url = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("SAMKIT_WEIGHTS_URL", url)
    with pytest.raises(DownloadError) as info:
        weights.resolve_checkpoint("vit_b", progress=False)
    message = str(info.value)
    assert "offline" in message
    assert f"{url}/{SAM_B_FILE}" in message
    assert f"put {SAM_B_FILE} at {tmp_path / SAM_B_FILE}" in message
    assert "SAMKIT_HOME" in message


def test_download_disabled_without_cache(
    server: FakeServer, sam_b_mirror: Callable[..., Path]
) -> None:
    dest = sam_b_mirror()
    with pytest.raises(DownloadError, match="offline") as info:
        weights.resolve_checkpoint("sam_b", download=False)
    assert f"put {SAM_B_FILE} at {dest} (or set SAMKIT_HOME)" in str(info.value)
    assert server.requests == []


def test_http_error_is_a_download_error(
    server: FakeServer, sam_b_mirror: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    sam_b_mirror()
    monkeypatch.setenv("SAMKIT_WEIGHTS_URL", server.url + "/missing")
    with pytest.raises(DownloadError, match="HTTP 404"):
        weights.resolve_checkpoint("sam_b", progress=False)


def test_download_file_creates_parents_and_serialises_concurrent_calls(
    server: FakeServer, tmp_path: Path
) -> None:
    server.payload = _checkpoint_bytes()
    dest = tmp_path / "a" / "b" / "weights.pth"
    sha = hashlib.sha256(server.payload).hexdigest()
    results: list[Path | BaseException] = []

    def fetch() -> None:
        try:
            results.append(
                weights.download_file(
                    f"{server.url}/{SAM_B_FILE}", dest, sha256=sha, size=None, progress=False
                )
            )
        except BaseException as exc:  # reported by the assertion below
            results.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [dest, dest]
    assert len(server.requests) == 1  # the second caller found the finished file
    assert dest.read_bytes() == server.payload


def test_existing_path_is_used_as_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMKIT_HOME", str(tmp_path / "cache"))
    mine = tmp_path / "finetuned.bin"
    mine.write_bytes(b"not checked")
    assert weights.resolve_checkpoint(mine, download=False) == mine
    assert weights.resolve_checkpoint(str(mine), download=False) == mine
    # A local file named like a known model wins over the cache.
    monkeypatch.chdir(tmp_path)
    Path("sam_b.pt").write_bytes(b"local")
    assert weights.resolve_checkpoint("sam_b.pt", download=False) == Path("sam_b.pt")


@pytest.mark.parametrize(
    ("name", "suggestion"), [("sam_bb", "sam_b"), ("mobile-sam", "mobile_sam")]
)
def test_unknown_name_suggests_a_close_match(name: str, suggestion: str) -> None:
    with pytest.raises(CheckpointError) as info:
        weights.resolve_checkpoint(name, download=False)
    message = str(info.value)
    assert repr(name) in message
    assert "does not exist" in message
    assert f"Did you mean '{suggestion}'" in message
    assert "sam_h" in message  # the list of known names


def test_missing_path_is_not_a_model_name(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        weights.resolve_checkpoint(tmp_path / "nowhere" / "sam_b.pt", download=False)


# --------------------------------------------------------------------------------------------
# load_state_dict
# --------------------------------------------------------------------------------------------


class NotATensor:
    """A custom class: weights_only loading must refuse it."""


def _tensors() -> dict[str, torch.Tensor]:
    return {"w": torch.randn(4, 3), "b": torch.zeros(4)}


def _save(obj: object) -> Callable[[Path], None]:
    return lambda p: torch.save(obj, p)


def _truncated(legacy: bool) -> Callable[[Path], None]:
    def write(p: Path) -> None:
        buf = io.BytesIO()
        torch.save(_tensors(), buf, _use_new_zipfile_serialization=not legacy)
        p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])

    return write


BAD_CHECKPOINTS: list[tuple[str, Callable[[Path], None], str]] = [
    ("missing", lambda p: None, "does not exist"),
    ("directory", lambda p: p.mkdir(), "not a file"),
    ("empty", lambda p: p.write_bytes(b""), "empty"),
    ("truncated_zip", _truncated(legacy=False), r"not a readable PyTorch checkpoint \(truncated"),
    ("truncated_legacy", _truncated(legacy=True), "not a readable PyTorch checkpoint"),
    ("random_bytes", lambda p: p.write_bytes(os.urandom(4096)), "not a readable PyTorch"),
    ("text", lambda p: p.write_text("hello"), "not a readable PyTorch"),
    ("plain_pickle_list", lambda p: p.write_bytes(pickle.dumps([1, 2])), "not a readable"),
    ("torch_list", _save([torch.ones(2), torch.ones(3)]), "not a state dict"),
    ("custom_class", _save({"w": NotATensor()}), "arbitrary Python objects; samkit loads weights"),
    ("non_tensor_values", _save({"w": torch.ones(2), "epoch": 3}), "not a state dict"),
    ("empty_dict", _save({}), "not a state dict"),
]


@pytest.mark.parametrize(
    ("make", "expected"), [c[1:] for c in BAD_CHECKPOINTS], ids=[c[0] for c in BAD_CHECKPOINTS]
)
def test_load_state_dict_rejects_bad_files(
    make: Callable[[Path], None], expected: str, tmp_path: Path
) -> None:
    path = tmp_path / "weights_under_test.pth"
    make(path)
    with pytest.raises(CheckpointError, match=expected) as info:
        weights.load_state_dict(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"model": sd, "epoch": 3, "optimizer": {"lr": 0.1}},
        lambda sd: {"state_dict": sd},
        lambda sd: {f"module.{k}": v for k, v in sd.items()},
        lambda sd: {"model": {f"module.{k}": v for k, v in sd.items()}},
    ],
    ids=["plain", "nested_model", "nested_state_dict", "dataparallel", "nested_dataparallel"],
)
def test_load_state_dict_unwraps(wrap: Callable[[dict], object], tmp_path: Path) -> None:
    sd = _tensors()
    torch.save(wrap(sd), tmp_path / "ok.pth")
    loaded = weights.load_state_dict(tmp_path / "ok.pth")
    assert loaded.keys() == sd.keys()
    for k, v in sd.items():
        assert torch.equal(loaded[k], v)
        assert loaded[k].device.type == "cpu"


def test_partial_module_prefix_is_kept(tmp_path: Path) -> None:
    torch.save({"module.w": torch.ones(1), "b": torch.ones(1)}, tmp_path / "ok.pth")
    assert set(weights.load_state_dict(tmp_path / "ok.pth")) == {"module.w", "b"}


def test_load_is_weights_only_and_maps_to_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.save(_tensors(), tmp_path / "ok.pth")
    seen: dict[str, object] = {}
    real_load = torch.load

    def spy(*args: object, **kwargs: object) -> object:
        seen.update(kwargs)
        return real_load(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(torch, "load", spy)
    weights.load_state_dict(tmp_path / "ok.pth")
    assert seen["weights_only"] is True
    assert seen["map_location"] == "cpu"


def test_sha256sum_matches_hashlib(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 + 5)
    (tmp_path / "f").write_bytes(data)
    assert weights.sha256sum(tmp_path / "f", chunk_size=1024) == hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------------
# infer_config
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def meta_sam() -> object:
    return pytest.importorskip("segment_anything")


@pytest.fixture(scope="module")
def mobile_sam() -> object:
    return pytest.importorskip("mobile_sam")


def test_infer_sam_b(meta_sam: object) -> None:
    sd = meta_sam.sam_model_registry["vit_b"]().state_dict()  # type: ignore[attr-defined]
    assert len(sd) == 314
    config = architecture.infer_config(sd)
    assert config == registry.VARIANTS["sam_b"].config
    assert registry.find_variant(config) is registry.VARIANTS["sam_b"]


@pytest.mark.parametrize(("ref", "name"), [("vit_l", "sam_l"), ("vit_h", "sam_h")])
def test_infer_sam_l_h_on_meta_device(meta_sam: object, ref: str, name: str) -> None:
    with torch.device("meta"):
        sd = meta_sam.sam_model_registry[ref]().state_dict()  # type: ignore[attr-defined]
    assert architecture.infer_config(sd) == registry.VARIANTS[name].config


def test_infer_mobile_sam_with_classifier_head(mobile_sam: object) -> None:
    sd = mobile_sam.sam_model_registry["vit_t"]().state_dict()  # type: ignore[attr-defined]
    assert len(sd) == 439
    assert "image_encoder.norm_head.weight" in sd
    assert "image_encoder.head.weight" in sd
    config = architecture.infer_config(sd)
    assert config == registry.VARIANTS["mobile_sam"].config
    assert registry.find_variant(config) is registry.VARIANTS["mobile_sam"]


def _decoder_parts(modeling: object, dim: int, grid: int, img: int) -> dict[str, object]:
    m = modeling
    return {
        "prompt_encoder": m.PromptEncoder(  # type: ignore[attr-defined]
            embed_dim=dim,
            image_embedding_size=(grid, grid),
            input_image_size=(img, img),
            mask_in_chans=8,
        ),
        "mask_decoder": m.MaskDecoder(  # type: ignore[attr-defined]
            num_multimask_outputs=2,
            transformer=m.TwoWayTransformer(  # type: ignore[attr-defined]
                depth=3, embedding_dim=dim, mlp_dim=512, num_heads=8
            ),
            transformer_dim=dim,
            iou_head_depth=2,
            iou_head_hidden_dim=64,
        ),
    }


DECODER_FIELDS = {
    "mask_in_chans": 8,
    "decoder_depth": 3,
    "decoder_mlp_dim": 512,
    "num_multimask_outputs": 2,
    "iou_head_depth": 2,
    "iou_head_hidden_dim": 64,
}


def test_infer_reduced_vit_round_trips(meta_sam: object, tmp_path: Path) -> None:
    from segment_anything import modeling

    encoder = modeling.ImageEncoderViT(
        img_size=512,
        patch_size=16,
        embed_dim=64,
        depth=4,
        num_heads=4,
        mlp_ratio=2.0,
        out_chans=128,
        qkv_bias=True,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        use_rel_pos=True,
        global_attn_indexes=(1, 3),
        window_size=8,
    )
    sam = modeling.Sam(image_encoder=encoder, **_decoder_parts(modeling, 128, 32, 512))
    torch.save(sam.state_dict(), tmp_path / "tiny.pth")
    config = architecture.infer_config(weights.load_state_dict(tmp_path / "tiny.pth"))
    expected = SamConfig(
        encoder=ViTConfig(
            embed_dim=64,
            depth=4,
            num_heads=4,
            global_attn_indexes=(1, 3),
            window_size=8,
            mlp_ratio=2.0,
            img_size=512,
            out_chans=128,
        ),
        prompt_embed_dim=128,
        **DECODER_FIELDS,
    )
    assert config == expected
    assert registry.find_variant(config) is None


def test_infer_reduced_tiny_vit(mobile_sam: object) -> None:
    from mobile_sam import modeling

    encoder = modeling.TinyViT(
        img_size=1024,
        embed_dims=[32, 64, 96, 128],
        depths=[1, 1, 2, 1],
        num_heads=[1, 2, 3, 4],
        window_sizes=[7, 7, 14, 7],
        mlp_ratio=2.0,
        mbconv_expand_ratio=2.0,
        local_conv_size=5,
    )
    sam = modeling.Sam(image_encoder=encoder, **_decoder_parts(modeling, 256, 64, 1024))
    config = architecture.infer_config(sam.state_dict())
    expected = SamConfig(
        encoder=TinyViTConfig(
            embed_dims=(32, 64, 96, 128),
            depths=(1, 1, 2, 1),
            num_heads=(1, 2, 3, 4),
            window_sizes=(7, 7, 14, 7),
            mlp_ratio=2.0,
            mbconv_expand_ratio=2.0,
            local_conv_size=5,
        ),
        **DECODER_FIELDS,
    )
    assert config == expected


def test_infer_rejects_non_sam_tensors() -> None:
    with pytest.raises(
        CheckpointError, match=r"no registered model family.*recognises.*fc\.weight"
    ):
        architecture.infer_config({"fc.weight": torch.ones(2, 2), "fc.bias": torch.ones(2)})


def test_infer_names_a_missing_tensor(meta_sam: object) -> None:
    with torch.device("meta"):
        sd = meta_sam.sam_model_registry["vit_b"]().state_dict()  # type: ignore[attr-defined]
    del sd["mask_decoder.mask_tokens.weight"]
    with pytest.raises(CheckpointError, match=r"mask_decoder\.mask_tokens\.weight.*missing"):
        architecture.infer_config(sd)

"""What a careful user hits with ``samkit distill``: two runs sharing one teacher-embedding
cache, a damaged or cut-short shard, a bad image in the data, a data folder too small for the
held-out images, and a progress bar that advances per image."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from reference import SMALL_VIT, randomize
from samkit.build import build_from_config
from samkit.datasets import open_dataset
from samkit.distillation import TeacherCache
from samkit.distillation.cache import fill
from samkit.embeddings import EmbeddingStore
from samkit.errors import SamkitError
from samkit.registry import SamConfig, TinyViTConfig
from shapes_data import make_shapes_dataset

SHAPE = (4, 3, 3)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    make_shapes_dataset(root, 12, size=(48, 64), seed=5)
    return root / "images"


def _target(image: np.ndarray, flip: bool) -> np.ndarray:
    """A stand-in teacher: an embedding that depends on the image (and the flip)."""
    image = image[:, ::-1] if flip else image
    values = [*image.reshape(-1, 3).mean(0).tolist(), float(image[0, 0, 0])]
    return np.repeat(np.asarray(values, np.float32)[:, None, None], 9, 1).reshape(SHAPE) / 255


def _encode(images: list[np.ndarray], flip: bool) -> np.ndarray:
    return np.stack([_target(im, flip) for im in images])


def _cache(root: Path, shard_size: int = 2) -> TeacherCache:
    return TeacherCache(root, "teacher-key", image_size=64, embed_shape=SHAPE,
                        shard_size=shard_size)  # fmt: skip


def _check_targets(cache: TeacherCache, samples: list) -> None:
    for sample in samples:
        got = np.asarray(cache.get(EmbeddingStore.key(sample.path)), np.float32)
        want = _target(sample.image(), False)
        assert np.abs(got - want).max() < 1e-2, f"{sample.path} reads another image's target"


# ---------------------------------------------------------------------------- shared cache
def test_two_runs_open_at_once_read_only_their_own_targets(images: Path, tmp_path: Path) -> None:
    samples = list(open_dataset(images))
    first, second = samples[:6], samples[6:]
    a, b = _cache(tmp_path), _cache(tmp_path)  # both open before either writes
    fill(a, first, _encode)
    fill(b, second, _encode)
    _check_targets(a, first)
    _check_targets(b, second)
    _check_targets(_cache(tmp_path), samples)  # the index holds both runs' entries


def test_two_threads_filling_one_cache_folder(images: Path, tmp_path: Path) -> None:
    samples = list(open_dataset(images))
    halves = [samples[0::2], samples[1::2]]
    caches = [_cache(tmp_path, shard_size=1), _cache(tmp_path, shard_size=1)]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            start.wait()
            fill(caches[i], halves[i], _encode)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for cache, half in zip(caches, halves, strict=True):
        _check_targets(cache, half)
    merged = _cache(tmp_path)
    assert len(merged) == len(samples)
    _check_targets(merged, samples)


# ---------------------------------------------------------------------------- damaged shards
def _shards(root: Path) -> list[Path]:
    return [root / n for n in json.loads((root / "index.json").read_text())["shards"]]


def test_flipped_bytes_in_a_shard_are_named_and_recomputed(
    images: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    samples = list(open_dataset(images))[:4]
    fill(_cache(tmp_path), samples, _encode)
    shard = _shards(tmp_path)[0]
    data = bytearray(shard.read_bytes())
    for i in range(len(data) - 40, len(data) - 8, 2):
        data[i] ^= 0x7F
    shard.write_bytes(bytes(data))
    cache = _cache(tmp_path)
    report, _ = fill(cache, samples, _encode)
    assert report.computed == 2 and report.reused == 2  # the damaged shard's two entries
    assert any(shard.name in r.getMessage() for r in caplog.records)
    _check_targets(cache, samples)


def test_cut_short_shard_is_named(images: Path, tmp_path: Path) -> None:
    from samkit.distillation.cache import CacheDamagedError

    samples = list(open_dataset(images))[:2]
    _, hashes = fill(_cache(tmp_path), samples, _encode)
    shard = _shards(tmp_path)[0]
    shard.write_bytes(shard.read_bytes()[:-20])
    with pytest.raises(CacheDamagedError, match=shard.name):
        _cache(tmp_path).get(hashes[0])
    report, _ = fill(_cache(tmp_path), samples, _encode)  # and a new pass computes it again
    assert report.computed == 2


# ---------------------------------------------------------------------------- progress
def test_progress_advances_for_every_image(images: Path, tmp_path: Path) -> None:
    samples = list(open_dataset(images))[:5]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    cache = _cache(tmp_path)
    fill(cache, samples[:3], _encode)
    steps: list[int] = []
    broken = open_dataset(images)[0].__class__(bad, 48, 64, ())
    report, hashes = fill(cache, [*samples, broken], _encode, progress=steps.append)
    assert sum(steps) == 6 and report.reused == 3 and report.computed == 2
    assert hashes[-1] == "" and report.problems[0][0] == str(bad)


# ---------------------------------------------------------------------------- whole runs
def _teacher() -> torch.nn.Module:
    teacher = build_from_config(SamConfig(encoder=replace(SMALL_VIT, img_size=128)))
    randomize(teacher, 0)
    return teacher.eval()


def _student() -> torch.nn.Module:
    torch.manual_seed(1)
    tiny = TinyViTConfig(embed_dims=(32, 64, 96, 128), depths=(1, 1, 2, 1),
                         num_heads=(1, 2, 3, 4), window_sizes=(7, 7, 14, 7), img_size=128)  # fmt: skip
    return build_from_config(SamConfig(encoder=tiny))


def test_bad_image_in_the_data_is_named_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import samkit

    make_shapes_dataset(tmp_path / "ds", 5, size=(48, 64), seed=2)
    bad = tmp_path / "ds" / "images" / "shapes_003.png"
    bad.write_bytes(b"")  # an empty file: not even a header
    result = samkit.distill(teacher_model=_teacher(), student_model=_student(),
                            data=str(tmp_path / "ds" / "images"), val_images=1, epochs=1,
                            batch=1, agreement=False, cache=str(tmp_path / "cache"),
                            project=str(tmp_path / "runs"), progress=False)  # fmt: skip
    assert result is not None and result.best is not None and result.best.is_file()
    assert any("shapes_003.png" in r.getMessage() for r in caplog.records)


def test_too_few_images_names_val_images(images: Path, tmp_path: Path) -> None:
    import samkit

    with pytest.raises(SamkitError, match="val_images=20"):
        samkit.distill(teacher_model=_teacher(), student_model=_student(), data=str(images),
                       val_images=20, epochs=1, cache=str(tmp_path / "c"),
                       project=str(tmp_path / "runs"), progress=False)  # fmt: skip

"""Checkpoints: resolve a name or path, cache, download (progress, resume, hash) and safe load.
Recognising the architecture from the tensors lives in :mod:`samkit.architecture`.

Cache location: ``$SAMKIT_HOME`` if set, else ``$XDG_CACHE_HOME/samkit``, else ``~/.cache/samkit``.
Mirror: ``$SAMKIT_WEIGHTS_URL`` replaces the host of every official URL (``<base>/<file name>``).

Concurrency: a download writes to ``<dest>.part`` while holding an exclusive ``fcntl`` lock on
``<dest>.lock``; a second process waits for the lock, then finds the finished file and returns
it. On platforms without ``fcntl`` (Windows) there is no lock, and two simultaneous downloads of
the same file may interfere; the hash check still refuses a corrupted result.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from samkit import __version__, registry
from samkit.errors import CheckpointError, DownloadError

try:  # POSIX only; see the module docstring for what happens without it.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "cache_dir",
    "download_file",
    "load_state_dict",
    "resolve_checkpoint",
    "sha256sum",
]

# Said by every failed or disabled download: how to try samkit without any weights.
NO_DOWNLOAD_HINT = (
    "To try samkit without a download, use model=grabcut (OpenCV GrabCut seeded from the "
    "prompts, a classical baseline; no weights)."
)

# Errors that mean "the network did not deliver": reported as offline / failed downloads.
_NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, OSError)


def cache_dir() -> Path:
    """Directory where downloaded checkpoints live (not created here)."""
    home = os.environ.get("SAMKIT_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "samkit"
    return Path.home() / ".cache" / "samkit"


def sha256sum(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks of ``chunk_size`` bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Resolving names and paths
# --------------------------------------------------------------------------------------------


def resolve_checkpoint(
    model: str | os.PathLike[str], *, download: bool = True, progress: bool = True
) -> Path:
    """The local checkpoint file for ``model``, downloading it into :func:`cache_dir` if needed.

    ``model`` is an existing file (used as is, no hash check), or a variant name, alias, official
    file name or Ultralytics file name (``"sam_b"``, ``"vit_h"``, ``"sam_vit_b_01ec64.pth"``,
    ``"sam_b.pt"``), which maps to ``cache_dir() / <official file name>``.

    Raises:
        CheckpointError: ``model`` is neither an existing file nor a known model name.
        DownloadError: the file is not cached and could not be downloaded (or ``download`` is
            False); the message says where to put the file by hand.
    """
    path = Path(model).expanduser()
    if path.is_file():
        return path
    if path.exists():
        raise CheckpointError(f"checkpoint {str(model)!r} is a directory, not a file")
    try:
        variant: Any = registry.get_variant(str(model))
        spec: Any = variant.weights
    except KeyError:
        from samkit.sam2.variants import find_sam2_variant

        variant = spec = find_sam2_variant(str(model))  # SAM 2 / 2.1: filename, url, size
        if variant is None:
            raise CheckpointError(_unknown_model_message(str(model))) from None
    dest = cache_dir() / spec.filename
    if dest.is_file():
        return dest
    url = _weights_url(spec.filename, spec.url)
    hint = f"put {spec.filename} at {dest} (or set SAMKIT_HOME)"
    if not download:
        raise DownloadError(
            f"{variant.name} weights are not cached and downloading is disabled (offline mode); "
            f"download {url} and {hint}.\n{NO_DOWNLOAD_HINT}"
        )
    try:
        return download_file(
            url,
            dest,
            sha256=getattr(spec, "sha256", None) or None,
            size=spec.size,
            progress=progress,
        )
    except DownloadError as exc:
        raise DownloadError(
            f"{str(exc).rstrip('.')}.\nTo install the weights by hand, {hint}.\n{NO_DOWNLOAD_HINT}"
        ) from exc


def _weights_url(filename: str, official_url: str) -> str:
    base = os.environ.get("SAMKIT_WEIGHTS_URL")
    return f"{base.rstrip('/')}/{filename}" if base else official_url


def _unknown_model_message(name: str) -> str:
    from samkit.sam2.variants import SAM2_ALIASES

    known = sorted(set(registry.ALIASES) | set(SAM2_ALIASES))
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    if not close:
        close = difflib.get_close_matches(name.lower(), known, n=3, cutoff=0.6)
    suggestion = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return (
        f"checkpoint {name!r} does not exist and is not a known model name.{suggestion} "
        f"Known names: {', '.join(known)}"
    )


# --------------------------------------------------------------------------------------------
# Downloading
# --------------------------------------------------------------------------------------------


def download_file(
    url: str,
    dest: Path,
    *,
    sha256: str | None,
    size: int | None,
    progress: bool = True,
    chunk_size: int = 1 << 20,
    timeout: float = 30,
) -> Path:
    """Download ``url`` to ``dest`` with resume, progress bar and verification.

    Bytes go to ``<dest>.part``; an existing ``.part`` is resumed with an HTTP ``Range`` request.
    After the transfer the size (if ``size`` is given) and SHA-256 (if ``sha256`` is given) are
    checked; only then is the ``.part`` atomically renamed to ``dest``. A mismatch deletes the
    ``.part``. An interrupted transfer keeps it, so the next call resumes.

    Raises:
        DownloadError: network failure, HTTP error, or size / hash mismatch.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(dest.suffix + ".part")
    with _file_lock(dest.with_suffix(dest.suffix + ".lock")):
        if dest.is_file() and _problem(dest, sha256, size) is None:
            return dest  # another process finished it while we waited for the lock
        for _ in range(2):  # the second round restarts from zero after a useless .part
            if _fetch(url, part, size, progress, chunk_size, timeout):
                break
            part.unlink(missing_ok=True)
        problem = _problem(part, sha256, size)
        if problem is not None:
            part.unlink(missing_ok=True)
            raise DownloadError(f"downloaded {dest.name} from {url} is corrupt: {problem}")
        os.replace(part, dest)
    return dest


@contextlib.contextmanager
def _file_lock(lock_path: Path) -> Iterator[None]:
    """Exclusive inter-process lock on ``lock_path`` (no-op without ``fcntl``)."""
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            # Leave no .lock in the cache. A process still waiting on this (now unlinked) file
            # gets the lock next and finds the finished file, or downloads again (hash-checked).
            lock_path.unlink(missing_ok=True)
            fcntl.flock(handle, fcntl.LOCK_UN)


def _problem(path: Path, sha256: str | None, size: int | None) -> str | None:
    """Why ``path`` does not match the expected size / hash, or None when it does."""
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return f"expected {size} bytes, got {actual_size} bytes"
    if sha256 is not None:
        actual = sha256sum(path)
        if actual.lower() != sha256.lower():
            return f"expected sha256 {sha256.lower()}, got sha256 {actual}"
    return None


def _fetch(
    url: str, part: Path, size: int | None, progress: bool, chunk_size: int, timeout: float
) -> bool:
    """Bring ``part`` to the end of the remote file, resuming it if it exists.

    Returns False when the existing ``.part`` cannot be resumed and must be restarted from zero
    (server answered 416 with a ``.part`` that is not the complete file).
    """
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        part.unlink()
        offset = 0
    if size is not None and offset == size:
        return True  # already complete; the caller verifies it
    request = urllib.request.Request(url, headers={"User-Agent": f"samkit/{__version__}"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            # Range not satisfiable: the .part is the whole file already, or junk.
            return size is None
        raise DownloadError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from exc
    except _NETWORK_ERRORS as exc:
        raise DownloadError(f"download of {url} failed (offline?): {_reason(exc)}") from exc

    with response:
        if offset and (response.status != 206 or _range_start(response) != offset):
            offset = 0  # the server ignored the range: start again from the first byte
        length = response.headers.get("Content-Length")
        expected = offset + int(length) if length and length.isdigit() else size
        with open(part, "ab" if offset else "wb") as out:
            received = _stream(response, out, offset, expected, part.name, progress, chunk_size)
    if expected is not None and received < expected:
        raise DownloadError(
            f"download of {url} was interrupted after {received} of {expected} bytes; "
            f"run again to resume from {part}"
        )
    return True


def _range_start(response: http.client.HTTPResponse) -> int | None:
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _stream(
    response: http.client.HTTPResponse,
    out: IO[bytes],
    offset: int,
    total: int | None,
    desc: str,
    progress: bool,
    chunk_size: int,
) -> int:
    """Copy the body of ``response`` to ``out``; returns the file's size afterwards."""
    from tqdm.auto import tqdm

    received = offset
    bar = tqdm(
        total=total,
        initial=offset,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=desc,
        disable=None if progress else True,  # None: hide the bar when not on a terminal
    )
    with bar:
        while True:
            try:
                chunk = response.read(chunk_size)
            except _NETWORK_ERRORS as exc:
                out.flush()
                raise DownloadError(
                    f"download of {response.geturl()} was interrupted after {received} bytes "
                    f"({_reason(exc)}); run again to resume from {out.name}"
                ) from exc
            if not chunk:
                return received
            out.write(chunk)
            received += len(chunk)
            bar.update(len(chunk))


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason) if reason is not None else f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``, tensors mapped to the CPU).

    A dict nested under ``"model"`` or ``"state_dict"`` is unwrapped and a ``"module."`` prefix
    carried by every key (DataParallel) is stripped. Returns a ``dict[str, torch.Tensor]``.

    Raises:
        CheckpointError: naming the file and what is wrong with it; never falls back to unsafe
            unpickling.
    """
    import pickle

    import torch

    file = Path(path)
    if not file.exists():
        raise CheckpointError(f"checkpoint {file} does not exist")
    if not file.is_file():
        raise CheckpointError(f"checkpoint {file} is not a file")
    if file.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {file} is empty (0 bytes; an interrupted download?)")
    if file.suffix == ".safetensors":
        return _as_state_dict(_load_safetensors(file), file)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            obj = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc):
            raise CheckpointError(
                f"checkpoint {file} contains arbitrary Python objects; samkit loads weights only "
                "(re-save it with torch.save(model.state_dict(), path))"
            ) from exc
        raise CheckpointError(
            f"checkpoint {file} is not a readable PyTorch checkpoint (truncated or corrupt?)"
        ) from exc
    except Exception as exc:  # zipfile, EOF, OSError, RuntimeError... all mean unreadable
        raise CheckpointError(
            f"checkpoint {file} is not a readable PyTorch checkpoint (truncated or corrupt?): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return _as_state_dict(obj, file)


def _load_safetensors(file: Path) -> dict[str, Any]:
    """A ``.safetensors`` file (Hugging Face's format: tensors only, no pickle)."""
    try:
        from safetensors.torch import load_file
    except ImportError as exc:
        raise CheckpointError(
            f"reading {file} needs the safetensors package: pip install safetensors"
        ) from exc
    try:
        return dict(load_file(str(file), device="cpu"))
    except Exception as exc:  # header or length errors all mean unreadable
        raise CheckpointError(
            f"checkpoint {file} is not a readable safetensors file (truncated or corrupt?): "
            f"{type(exc).__name__}: {exc}"
        ) from exc


# MobileSAMv2's decoder file stores two state dicts under these keys (its spelling).
MOBILESAMV2_PARTS = {"PromtEncoder": "prompt_encoder", "MaskDecoder": "mask_decoder"}


def _as_state_dict(obj: object, file: Path) -> dict[str, Any]:
    import torch

    if isinstance(obj, Mapping) and all(isinstance(obj.get(k), Mapping) for k in MOBILESAMV2_PARTS):
        # MobileSAMv2's fine-tuned decoder file: {"PromtEncoder": {...}, "MaskDecoder": {...}}
        obj = {
            f"{prefix}.{k}": v
            for part, prefix in MOBILESAMV2_PARTS.items()
            for k, v in obj[part].items()
        }
    if isinstance(obj, Mapping):
        for key in ("model", "state_dict"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"checkpoint {file} is not a state dict: it holds a {type(obj).__name__}, "
            "expected a dict of tensors"
        )
    if not obj:
        raise CheckpointError(f"checkpoint {file} is not a state dict: it is an empty dict")
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"checkpoint {file} is not a state dict: entry {key!r} is a "
                f"{type(value).__name__}, expected a tensor"
            )
    state = dict(obj)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state

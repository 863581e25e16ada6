"""Where and in which precision the networks run.

- :func:`select_device`: ``""`` / ``None`` / ``"auto"`` picks the best available device
  (CUDA > MPS > CPU); ``"cuda"``, ``"cuda:1"``, ``"mps"``, ``"cpu"`` or a ``torch.device``
  name one and fail clearly when it is not there.
- :func:`select_dtype`: ``dtype="fp32" | "bf16" | "fp16"`` (or a torch dtype), or
  ``half=True`` for the device's fast 16-bit type: fp16 on CUDA and MPS, bf16 on CPU.
  fp16 on CPU is refused (PyTorch's CPU fp16 kernels are slow or missing; use bf16). bf16 on a
  CPU without native bf16 support (AVX512-BF16 / AMX) works but warns that it will be slow.
  Reduced precision runs under ``torch.autocast``: matrix products and convolutions in 16
  bits, normalisation and softmax in fp32; the weights stay fp32.
- :func:`set_cpu_threads`: intra-op threads for CPU inference.
- :class:`ThreadPolicy` / :func:`thread_policy` / :func:`token_work`: the CPU thread policy.
  The networks mark their token-sized sections with :func:`token_work`; whether such a section
  runs on one thread is decided by the policy the engine (the predictor) sets around its
  calls. Without a policy (training, direct calls to the modules) nothing is serialised.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

import torch

from samkit.errors import SamkitError

_DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "float": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
}
_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def select_device(device: str | torch.device | None = "") -> torch.device:
    """Resolve a device request; ``""``, ``None`` or ``"auto"`` = CUDA > MPS > CPU."""
    if isinstance(device, torch.device):
        device = str(device)
    if device is None or device.strip().lower() in ("", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    text = device.strip().lower()
    if text.isdigit():  # "0" as in Ultralytics: the first CUDA device
        text = f"cuda:{text}"
    try:
        dev = torch.device(text)
    except RuntimeError as err:
        raise SamkitError(
            f"device must be '', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}"
        ) from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SamkitError(f"device {device!r}: CUDA is not available in this PyTorch install")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise SamkitError(f"device {device!r}: only {count} CUDA device(s) are visible")
        return torch.device(
            "cuda", dev.index if dev.index is not None else torch.cuda.current_device()
        )
    if dev.type == "mps":
        if not _mps_available():
            raise SamkitError(f"device {device!r}: MPS (Apple GPU) is not available")
        return dev
    if dev.type == "cpu":
        return dev
    raise SamkitError(f"device must be '', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}")


def cpu_supports_bf16() -> bool:
    """True when this CPU runs bf16 matrix products natively (AVX512-BF16 or AMX)."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:  # pragma: no cover - builds without oneDNN
        return False


def select_dtype(
    dtype: str | torch.dtype | None = None, half: bool = False, device: torch.device | None = None
) -> torch.dtype:
    """Resolve the compute dtype for ``device`` (default CPU).

    ``dtype`` wins over ``half``; ``half=True`` means fp16 on CUDA / MPS and bf16 on CPU.
    """
    dev = device if device is not None else torch.device("cpu")
    if dtype is None:
        if not half:
            return torch.float32
        return torch.bfloat16 if dev.type == "cpu" else torch.float16
    if isinstance(dtype, torch.dtype):
        resolved = dtype
    else:
        key = str(dtype).strip().lower().removeprefix("torch.")
        if key not in _DTYPES:
            raise SamkitError(
                f"dtype must be one of 'fp32', 'bf16', 'fp16' (or None), got {dtype!r}"
            )
        resolved = _DTYPES[key]
    if resolved not in _NAMES:
        raise SamkitError(f"dtype must be float32, bfloat16 or float16, got {resolved}")
    if resolved == torch.float16 and dev.type == "cpu":
        raise SamkitError(
            "dtype='fp16' is not supported on CPU (slow or missing kernels); use dtype='bf16' "
            "(or half=True, which picks bf16 on CPU)"
        )
    if resolved == torch.bfloat16 and dev.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise SamkitError(f"dtype='bf16' needs a GPU with bf16 support; {dev} has none: use 'fp16'")
    if resolved == torch.bfloat16 and dev.type == "cpu" and not cpu_supports_bf16():
        warnings.warn(
            "this CPU has no native bf16 (AVX512-BF16 / AMX): bf16 will be emulated and slow",
            stacklevel=2,
        )
    return resolved


def dtype_name(dtype: torch.dtype) -> str:
    """'fp32', 'bf16' or 'fp16'."""
    return _NAMES.get(dtype, str(dtype))


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype) -> Iterator[None]:
    """Run the enclosed networks in ``dtype`` (no-op for fp32)."""
    if dtype == torch.float32:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def set_cpu_threads(num_threads: int | None = None) -> int:
    """Set PyTorch's intra-op CPU threads; None = ``SAMKIT_THREADS`` or the core count.

    Returns the number set. One thread per physical core is what measures best for these
    networks; more threads than cores only adds contention.
    """
    if num_threads is None:
        env = os.environ.get("SAMKIT_THREADS")
        num_threads = int(env) if env else (os.cpu_count() or 1)
    if num_threads < 1:
        raise SamkitError(f"num_threads must be >= 1, got {num_threads}")
    torch.set_num_threads(num_threads)
    return num_threads


@contextlib.contextmanager
def serial(enabled: bool = True) -> Iterator[None]:
    """Run the enclosed CPU operations on one intra-op thread (the calling thread's setting,
    restored on exit).

    For stretches of tiny operations (a few prompt tokens): waking a second OpenMP thread costs
    ~0.1 ms per operation when threads wait passively (``OMP_WAIT_POLICY=PASSIVE``, the setting
    for shared machines), ten times the work of a (7, 256) x (256, 256) product. Changing the
    count is ~0.2 us; large operations outside the section keep every thread.
    """
    threads = torch.get_num_threads() if enabled else 1
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class ThreadPolicy:
    """How the CPU threads serve the networks' small, token-side operations.

    serial_rows: a section marked with :func:`token_work` whose tensor has at most this many
    token rows (batch x tokens) runs on one intra-op thread (see :func:`serial`); 0 turns it
    off. 256 rows: a (256, 256) x (256, 256) product still costs less than waking a thread.
    """

    serial_rows: int = 256


_POLICY: ContextVar[ThreadPolicy | None] = ContextVar("samkit_thread_policy", default=None)


@contextlib.contextmanager
def thread_policy(policy: ThreadPolicy | None) -> Iterator[None]:
    """Apply ``policy`` to the :func:`token_work` sections run inside (None: none)."""
    token = _POLICY.set(policy)
    try:
        yield
    finally:
        _POLICY.reset(token)


def token_work(
    x: torch.Tensor | None = None, rows: int | None = None, enabled: bool = True
) -> contextlib.AbstractContextManager[None]:
    """Mark a section of token-sized CPU work on ``x`` (B, N, ...) or on ``rows`` token rows:
    serial under the active :class:`ThreadPolicy` when small enough, else a no-op."""
    policy = _POLICY.get()
    if policy is None or not enabled or policy.serial_rows <= 0:
        return contextlib.nullcontext()
    if x is not None:
        if x.device.type != "cpu":
            return contextlib.nullcontext()
        rows = int(x.shape[0]) * int(x.shape[1])
    return serial(rows is not None and rows <= policy.serial_rows)

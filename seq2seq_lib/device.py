"""Where the model runs and in which number format: device choice, precision choice, banner.

Mixed precision keeps the master weights, the optimizer state and the loss in float32 and runs
the matrix products (GRU, attention, projection) in a 16-bit format under ``torch.autocast``:

* ``bf16`` where the device computes it natively: CUDA GPUs from Ampere on, CPUs with
  AVX512-BF16 or AMX (recent Xeons, AMD Zen 4 and later), Arm CPUs with the BF16 extension;
* ``fp16`` only when asked for (or by ``--amp`` on a CUDA GPU without native bf16, e.g. a
  Colab T4), always with a gradient scaler;
* ``fp32`` everywhere else. ``auto`` picks bf16 where it is native and fp32 otherwise.

Nothing here creates a float64 tensor: Apple's MPS has no float64.
"""

from __future__ import annotations

import contextlib
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, TypeVar

import torch

Precision = Literal["auto", "fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def choose_device(preference: str = "auto", verbose: bool = True) -> torch.device:
    """CUDA when available, else Apple MPS, else CPU (or the device named by ``preference``)."""
    if preference != "auto":
        device = _named_device(preference)
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    elif _mps_available():
        device = torch.device("mps")
    else:
        device = torch.device("cpu")
    if verbose:
        print(describe_device(device))
    return device


def _named_device(preference: str) -> torch.device:
    """``preference`` (``cpu``, ``cuda``, ``cuda:N``, ``mps``) as a device this machine has."""
    try:
        device = torch.device(preference)
    except RuntimeError:
        raise ValueError(f"device={preference!r}: use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={preference!r} asked for, but no CUDA GPU is available")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            gpus = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
            raise ValueError(f"device={preference!r} asked for, but this machine has {count} CUDA "
                             f"GPU{'s' if count > 1 else ''} ({gpus})")
    if device.type == "mps" and not _mps_available():
        raise ValueError(f"device={preference!r} asked for, but Apple's MPS is not available")
    return device


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def describe_device(device: torch.device) -> str:
    """One line naming the device, e.g. for the training banner."""
    if device.type == "cuda":
        return f"device: cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"device: cpu ({torch.get_num_threads()} threads)"
    return f"device: {device.type}"


@lru_cache(maxsize=1)
def cpu_bf16_instructions() -> str | None:
    """The CPU instruction set that computes bf16 natively (``"AMX"``, ``"AVX512-BF16"``,
    ``"Arm BF16"``), or None when there is none and bf16 would be emulated (slower than fp32).

    Read from the flags the operating system lists (:func:`cpu_flags`).
    ``torch.backends.cpu.get_cpu_capability()`` names only the widest vector unit (``"AVX512"``),
    not bf16, so where the system lists no flags (Windows) torch's own probes are the fallback.
    """
    flags = cpu_flags()
    if flags is None:
        return _bf16_from_torch()
    return bf16_from_flags(flags, platform.machine())


def bf16_from_flags(flags: set[str], machine: str) -> str | None:
    """The bf16 instruction set among CPU ``flags`` (Linux's names), on a ``machine`` (x86_64,
    arm64, ...)."""
    if "amx_bf16" in flags:
        return "AMX"
    if "avx512_bf16" in flags:
        return "AVX512-BF16"
    if machine.lower() in ("arm64", "aarch64") and "bf16" in flags:
        return "Arm BF16"
    return None


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags as the system lists them: Linux's ``/proc/cpuinfo`` (``flags`` on
    x86, ``Features`` on Arm), ``bf16`` on a Mac with FEAT_BF16 (Apple M2 and later); None where
    the system lists none."""
    if platform.system() == "Darwin":
        return _mac_flags()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            return parse_cpuinfo_flags(fh.read())
    except OSError:
        return None


def parse_cpuinfo_flags(text: str) -> set[str]:
    """The flags of the first CPU in a ``/proc/cpuinfo`` text (``flags`` or ``Features`` lines)."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def _mac_flags() -> set[str] | None:
    try:
        out = subprocess.run(["sysctl", "-n", "hw.optional.arm.FEAT_BF16"],
                             capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"bf16"} if out.strip() == "1" else set()


def _bf16_from_torch() -> str | None:
    """torch's own probes, for systems that list no CPU flags (private API, hence the fallback)."""
    cpu = getattr(torch, "cpu", None)
    probe = lambda name: bool(getattr(cpu, name, lambda: False)())
    if probe("_is_amx_tile_supported"):
        return "AMX"
    if probe("_is_avx512_bf16_supported"):
        return "AVX512-BF16"
    return None


def cuda_bf16_native(device: torch.device) -> bool:
    """Whether this CUDA GPU computes bf16 in hardware (Ampere and later), not by emulation."""
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # older PyTorch without the keyword
        return torch.cuda.get_device_capability(device)[0] >= 8


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a run uses and why, e.g. ``bf16 (autocast; this CPU has AVX512-BF16)``.

    ``name``: ``"fp32"``, ``"bf16"`` or ``"fp16"``; ``dtype``: the autocast dtype (None for
    fp32); ``scaler``: whether gradients need a :class:`torch.amp.GradScaler` (fp16 only).
    """

    name: str
    reason: str

    @property
    def dtype(self) -> torch.dtype | None:
        return None if self.name == "fp32" else DTYPES[self.name]

    @property
    def scaler(self) -> bool:
        return self.name == "fp16"

    def __str__(self) -> str:
        return f"precision: {self.name} ({self.reason})"


def resolve_precision(requested: str, device: torch.device) -> PrecisionChoice:
    """Turn ``auto`` / ``fp32`` / ``bf16`` / ``fp16`` / ``amp`` into what runs on ``device``.

    ``auto`` never slows a run down: bf16 only where it is native. ``amp`` (the ``--amp`` flag)
    also takes fp16 on a CUDA GPU without native bf16. An explicit ``bf16`` or ``fp16`` that the
    device cannot compute is refused with a ValueError that says what to use instead.
    """
    if requested not in (*PRECISIONS, "amp"):
        raise ValueError(f"precision={requested!r}: choose one of {', '.join(PRECISIONS)}")
    kind = device.type
    if requested == "fp32":
        return PrecisionChoice("fp32", "asked for")
    native = _native_bf16(device)
    if requested in ("auto", "amp"):
        if native:
            return PrecisionChoice("bf16", f"autocast; {native}")
        if requested == "amp" and kind == "cuda":
            return PrecisionChoice("fp16", "autocast with a gradient scaler; this GPU has no "
                                           "native bf16")
        why = {"cpu": "this CPU has no native bf16 (no AVX512-BF16, AMX or Arm BF16), and "
                      "emulated bf16 is slower than fp32",
               "cuda": "this GPU has no native bf16",
               "mps": "mixed precision is not used on MPS"}.get(kind, f"no mixed precision on {kind}")
        return PrecisionChoice("fp32", why)
    if requested == "bf16":
        if not native:
            raise ValueError(f"precision='bf16': this {kind.upper()} has no native bf16; "
                             "use 'fp32'" + (" or 'fp16'" if kind == "cuda" else ""))
        return PrecisionChoice("bf16", f"asked for; {native}")
    # fp16
    if kind not in ("cuda", "mps"):
        raise ValueError(f"precision='fp16' needs a CUDA or MPS GPU, not {kind}: use 'fp32' "
                         "or 'auto'")
    return PrecisionChoice("fp16", "asked for; autocast with a gradient scaler")


def _native_bf16(device: torch.device) -> str | None:
    """Why bf16 is native on ``device`` (a short phrase), or None."""
    if device.type == "cuda":
        return "this GPU computes bf16 natively" if cuda_bf16_native(device) else None
    if device.type == "cpu":
        found = cpu_bf16_instructions()
        return f"this CPU has {found}" if found else None
    return None


def autocast(device: torch.device, choice: PrecisionChoice):
    """``torch.autocast`` for the chosen precision, or a do-nothing context for fp32."""
    if choice.dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=choice.dtype)


T = TypeVar("T")


def best_time(task: Callable[[], T], repeats: int = 3) -> tuple[float, T]:
    """Run ``task`` ``repeats`` times; the fastest run's seconds (the one least disturbed by
    other programs) and the last result."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = task()
        times.append(time.perf_counter() - start)
    return min(times), result  # type: ignore[return-value]

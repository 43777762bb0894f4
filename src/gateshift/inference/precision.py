"""Numeric precision: which autocast dtype a precision setting means on a device, and the one
autocast context that training, evaluation, prediction and profiling all run under.

A setting is ``auto``, ``fp32``, ``bf16`` or ``fp16``; it resolves to an autocast dtype, or None
for plain float32. Resolution depends on the device (fp16 is GPU only, ``auto`` is fp32 off
CUDA), so it happens once, where the device is known, and errors name the setting's key.

bf16 on a CPU without the instructions oneDNN's bf16 kernels need (AVX-512, best with
AVX512-BF16 or AMX) still runs, emulated and slowly: the demo recipe's training step took 4.9x
as long as fp32 on a 2-core AVX2-only AMD EPYC (``benchmarks/train_throughput.py``). That is a
warning, not an error: the results are right, only slow.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Literal, get_args

import torch

Precision = Literal["auto", "fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)

log = logging.getLogger(__name__)


def cpu_has_bf16_kernels() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (torch's own check; True where it cannot
    tell)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a private op: absent in some builds
        return True


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles (Intel Sapphire Rapids and later), where oneDNN runs bf16
    matrix products on the tile unit: the CPU on which bf16 training was measured faster than
    fp32 for the demo's small network too (see :func:`gateshift.engine.demo.demo_precision`).
    False where torch cannot tell."""
    check = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private, absent in some builds
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:
        return False


def resolve_precision(
    setting: str, device: torch.device, *, what: str = "train.precision"
) -> torch.dtype | None:
    """Autocast dtype for a precision ``setting`` on ``device`` (None: plain fp32).

    ``auto``: bf16 on CUDA GPUs that support it, else fp16 there; fp32 on CPU and MPS (bf16 on
    CPU is opt-in: it is faster only on CPUs with bf16 instructions). ``what`` names the setting
    in error messages (``train.precision``, ``eval.precision``).
    """
    if setting == "fp32" or (setting == "auto" and device.type != "cuda"):
        return None
    if setting == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if setting == "fp16":
        if device.type == "cpu":
            raise ValueError(f"{what}=fp16 needs a GPU; use bf16 (or fp32) on CPU")
        return torch.float16
    if setting == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError(f"{what}=bf16: this GPU has no bf16; use fp16")
        if device.type == "cpu" and not cpu_has_bf16_kernels():
            log.warning(
                "%s=bf16: this CPU has no bf16 kernels (they need AVX-512; AVX512-BF16 or AMX "
                "make them fast), so bf16 runs emulated, several times slower than fp32",
                what,
            )
        return torch.bfloat16
    raise ValueError(f"{what}: unknown value {setting!r} (one of {', '.join(PRECISIONS)})")


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager[Any]:
    """Autocast to ``dtype`` on ``device``'s type; a no-op for None (plain fp32)."""
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)

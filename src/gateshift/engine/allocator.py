"""Keep freed memory in the process, so that large tensors are not page-faulted in every step.

PyTorch's CPU allocator takes every tensor from the C library's ``malloc``. glibc serves a block
larger than its mmap threshold (which adapts, but never above 32 MiB on 64-bit Linux) with a
fresh ``mmap`` and gives it back with ``munmap`` when the tensor dies. So in training, where
such tensors are made and freed on every step (a ResNet-50 at 8x224, batch 2, holds its stage-1
activations in 51 MB tensors), the kernel page-faults and zeroes every one of their pages again
on every step. ``benchmarks/allocator.py`` measured this on a 2-core AMD EPYC: a ResNet-50 TSN
training step took 21-40% longer under glibc than under tcmalloc, which keeps freed memory
(two runs; this module's way made the step 17-30% faster).

PyTorch's CPU performance guide answers this by preloading tcmalloc or jemalloc
(``LD_PRELOAD``; ``torch.backends.xeon.run_cpu`` does it). That still works and this module
then leaves the allocator alone. A library cannot preload anything into a process that has
already started, but glibc's own switches, ``mallopt``, can be set at any time:
``M_MMAP_MAX = 0`` serves large blocks from the heap (glibc still falls back to ``mmap`` when
the heap cannot grow) and a high ``M_TRIM_THRESHOLD`` keeps freed pages in the process instead
of returning them to the system. The cost is the one tcmalloc has: the process keeps its peak
memory until it exits.

:func:`keep_freed_memory` is what ``gateshift train`` and ``gateshift demo`` call (config key
``train.keep_freed_memory``, default on); anything but glibc on Linux, or a process that
already has tcmalloc or jemalloc loaded, is left as it is.
"""

from __future__ import annotations

import ctypes
import logging
import platform
import sys
from pathlib import Path

log = logging.getLogger(__name__)

#: glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
#: mallopt takes an int: free memory at the top of the heap is returned above 1 GiB only
TRIM_THRESHOLD = 1 << 30

_done: str | None = None


def preloaded_allocator() -> str | None:
    """``tcmalloc`` or ``jemalloc`` when the process has one of them loaded, else None."""
    maps = Path("/proc/self/maps")
    try:
        text = maps.read_text()
    except OSError:
        return None
    for name in ("tcmalloc", "jemalloc"):
        if name in text:
            return name
    return None


def keep_freed_memory() -> str:
    """Make glibc keep freed memory for reuse (see the module docstring); returns what was done:
    ``"glibc: kept"``, ``"tcmalloc"`` / ``"jemalloc"`` (preloaded: left alone) or
    ``"unchanged: <why>"``. Calling it again does nothing more."""
    global _done
    if _done is not None:
        return _done
    _done = _keep_freed_memory()
    log.debug("allocator: %s", _done)
    return _done


def _keep_freed_memory() -> str:
    if not sys.platform.startswith("linux"):
        return f"unchanged: {sys.platform} is not Linux"
    preloaded = preloaded_allocator()
    if preloaded is not None:
        return preloaded
    if platform.libc_ver()[0] != "glibc":
        return "unchanged: the C library is not glibc"
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return "unchanged: mallopt not found"
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) != 1 or mallopt(M_MMAP_MAX, 0) != 1:
        return "unchanged: mallopt refused"
    return "glibc: kept"

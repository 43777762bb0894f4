"""What every benchmark table names: the CPU it ran on and the instructions torch can use there.

The project's machines change between sessions (an AMD EPYC with AVX512-BF16, an Intel Xeon with
AMX), and the same code gives different ratios on each, so every table's header says which.
"""

from __future__ import annotations

from pathlib import Path

#: /proc/cpuinfo flags that change which kernels torch picks
FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16")


def _cpuinfo() -> list[str]:
    info = Path("/proc/cpuinfo")
    return info.read_text().splitlines() if info.exists() else []


def cpu_name() -> str:
    """The CPU's model name, with the flags of :data:`FLAGS` it has, e.g.
    ``AMD EPYC (avx2 avx512f avx512_bf16 avx512_vnni)``; ``?`` where /proc/cpuinfo is missing."""
    lines = _cpuinfo()
    name = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "?")
    flags = next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), [])
    have = [f for f in FLAGS if f in flags]
    return f"{name} ({' '.join(have)})" if have else name

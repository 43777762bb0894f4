"""engine.allocator: glibc keeps freed memory, so a large tensor is not page-faulted in twice."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from gateshift.engine import allocator


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux's")
def test_it_is_done_once_per_process() -> None:
    done = allocator.keep_freed_memory()
    assert done in ("glibc: kept", "tcmalloc", "jemalloc"), done
    assert allocator.keep_freed_memory() == done


# 64 MB is 16384 pages of 4 KiB: glibc's mmap of a block above 32 MiB faults them all in again
# on every allocation unless freed memory is kept. The kernel may still reclaim kept pages that
# sit idle (this VM runs DAMON), so of four later tries one must take no new pages. Measured in
# a fresh interpreter: inside pytest the freed block was not handed back to the next request.
CHILD = """
import resource, sys, torch
from gateshift.engine import allocator
if sys.argv[1] == "keep":
    allocator.keep_freed_memory()
counts = []
for _ in range(5):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.empty(64 * 1024 * 1024 // 4)
    x.fill_(1.0)
    del x
    counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(min(counts[1:]))  # the first time the pages are new
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux's")
def test_without_it_glibc_faults_every_page_in_again() -> None:
    """What the switch is for, in fresh processes (the allocator cannot be switched back)."""
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}

    def faults(mode: str) -> int:
        cmd = [sys.executable, "-c", CHILD, mode]
        return int(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout)

    if allocator.preloaded_allocator() is None and platform.libc_ver()[0] == "glibc":
        assert faults("plain") > 10_000  # 16384 pages
    assert faults("keep") < 1000


def test_the_trainer_switch_is_a_config_key() -> None:
    from gateshift.config import load_config

    base = ["data.root=/nonexistent"]
    assert load_config(None, base).train.keep_freed_memory is True
    off = load_config(None, [*base, "train.keep_freed_memory=false"])
    assert off.train.keep_freed_memory is False

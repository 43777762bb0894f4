"""Shared fixtures: small datasets made on the fly (nothing is downloaded)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

# pytest-xdist runs one process per core: one torch thread each, so that the processes do not
# fight over the cores (OpenMP threads spin while they wait)
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, torch.get_num_threads() // _workers)))


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker per core this process may use, at most 4 (each worker holds its
    own torch and, in the export tests, a few GB)."""
    from gateshift.engine.demo import usable_cores

    return min(4, usable_cores())


@pytest.fixture(autouse=True)
def _seed_rngs() -> None:
    """Every test starts from the same random state, whatever ran before it (or in which
    xdist worker): a test that draws from the global RNGs gets the same numbers every run."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded dataset at toy size: 11 classes x (2 train + 1 val) videos of 8 frames."""
    from gateshift.data.synthetic import generate

    root = tmp_path_factory.mktemp("synthetic")
    generate(root, seed=0, videos_per_class=2, val_per_class=1, size=32, num_frames=8, force=True)
    return root

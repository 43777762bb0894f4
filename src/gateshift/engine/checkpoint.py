"""Training checkpoints: atomic, complete, loaded with ``weights_only=True``.

A checkpoint holds everything a resumed run needs to continue as if never stopped: model,
optimiser, scheduler and grad-scaler states, the RNG states, epoch and step counters, the best
metric so far and the resolved config. It is written to a temporary file in the same folder,
flushed to disk, then renamed over the target (``os.replace`` is atomic on POSIX), so a crash at
any moment leaves either the old file or the new one, never a torn one.

Layout of ``<out_dir>/checkpoints/``: ``last.pt`` (every save), ``best.pt`` (best validation
metric), and ``epoch_NNN.pt`` / ``step_NNNNNNN.pt`` of which the newest ``keep`` are kept.
"""

from __future__ import annotations

import logging
import os
import random
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gateshift._files import publish

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, or from another model or config."""


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` through a temp file + fsync + rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def rng_state() -> dict[str, Any]:
    """Every RNG a run draws from, as tensors and numbers (so ``weights_only`` loads it)."""
    numpy_state = np.random.get_state(legacy=True)
    assert isinstance(numpy_state, tuple)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]),
        "python_pos": random.getstate()[2],
        "numpy": torch.from_numpy(numpy_state[1].astype(np.int64)),
        "numpy_pos": int(numpy_state[2]),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), state["python_pos"]))
    keys = state["numpy"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, int(state["numpy_pos"]), 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`atomic_save`; a clear error if it is not one."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for damaged files
        raise CheckpointError(f"{path} is not a readable checkpoint ({err})") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{path} is not a gateshift training checkpoint")
    return payload


def check_compatible(
    payload: Mapping[str, Any], *, model_name: str, num_classes: int, path: Path
) -> None:
    """Refuse a checkpoint of another model or class count, naming the mismatch."""
    theirs = (payload.get("model_name"), payload.get("num_classes"))
    if theirs != (model_name, num_classes):
        raise CheckpointError(
            f"{path} was saved by {theirs[0]} with {theirs[1]} classes; this run builds "
            f"{model_name} with {num_classes} classes"
        )


_NUMBERED = re.compile(r"^(epoch|step)_(\d+)\.pt$")


def numbered_checkpoints(folder: Path) -> list[Path]:
    """``epoch_*.pt`` and ``step_*.pt`` in ``folder``, oldest first (by modification time)."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if _NUMBERED.match(p.name)]
    return sorted(found, key=lambda p: p.stat().st_mtime_ns)


def prune(folder: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` numbered checkpoints."""
    for old in numbered_checkpoints(folder)[: max(len(numbered_checkpoints(folder)) - keep, 0)]:
        old.unlink(missing_ok=True)


def latest_checkpoint(folder: Path) -> Path | None:
    """The checkpoint to resume from: ``last.pt``, else the newest readable numbered one."""
    candidates = [folder / "last.pt", *reversed(numbered_checkpoints(folder))]
    for path in candidates:
        if not path.is_file():
            continue
        try:
            load_checkpoint(path)
        except CheckpointError as err:
            log.warning("skipping unusable checkpoint: %s", err)
            continue
        return path
    return None

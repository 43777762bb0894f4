"""Atomic checkpoint writes and refusing bad checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from gateshift.engine import checkpoint as ckpt


def _payload(step: int) -> dict[str, object]:
    return {"format": ckpt.FORMAT_VERSION, "step": step, "model": {"w": torch.full((3,), step)}}


def test_crash_between_write_and_rename_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "last.pt"
    ckpt.atomic_save(_payload(1), target)

    def crash(src: str, dst: str) -> None:
        raise KeyboardInterrupt("killed between write and rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        ckpt.atomic_save(_payload(2), target)
    monkeypatch.undo()
    assert ckpt.load_checkpoint(target)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


def test_torn_file_is_refused_and_skipped_on_resume(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    ckpt.atomic_save(_payload(3), folder / "epoch_003.pt")
    ckpt.atomic_save(_payload(4), folder / "last.pt")
    data = (folder / "last.pt").read_bytes()
    (folder / "last.pt").write_bytes(data[: len(data) // 2])  # as if written without care
    with pytest.raises(ckpt.CheckpointError, match=r"last\.pt is not a readable checkpoint"):
        ckpt.load_checkpoint(folder / "last.pt")
    assert ckpt.latest_checkpoint(folder) == folder / "epoch_003.pt"


def test_other_model_is_refused_with_the_mismatch(tmp_path: Path) -> None:
    payload = {**_payload(1), "model_name": "resnet50_gsm", "num_classes": 174}
    with pytest.raises(ckpt.CheckpointError, match="saved by resnet50_gsm with 174 classes"):
        ckpt.check_compatible(payload, model_name="resnet50_tsm", num_classes=174, path=tmp_path)


def test_prune_keeps_the_newest(tmp_path: Path) -> None:
    for i in range(5):
        ckpt.atomic_save(_payload(i), tmp_path / f"step_{i:07d}.pt")
        os.utime(tmp_path / f"step_{i:07d}.pt", ns=(i * 10**9, i * 10**9))
    ckpt.prune(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_0000003.pt", "step_0000004.pt"]


def test_rng_state_round_trip() -> None:
    state = ckpt.rng_state()
    a = (torch.rand(3), __import__("random").random())
    ckpt.set_rng_state(state)
    b = (torch.rand(3), __import__("random").random())
    assert torch.equal(a[0], b[0]) and a[1] == b[1]


def test_atomic_files_get_the_mode_of_a_new_file(tmp_path: Path) -> None:
    """mkstemp's temporaries are 0600; a published file is 0666 less the umask, as open() makes
    it, so other users of a shared run folder can read checkpoints (and bundles, exports)."""
    old = os.umask(0o022)
    try:
        ckpt.atomic_save(_payload(1), tmp_path / "last.pt")
        (tmp_path / "plain.txt").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "last.pt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "plain.txt").stat().st_mode & 0o777 == 0o644

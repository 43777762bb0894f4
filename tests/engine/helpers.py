"""A tiny training config for engine tests."""

from __future__ import annotations

from pathlib import Path

import torch

TINY = """
model:
  name: resnet18_gsm
  num_segments: 4
  width: 8
  dropout: 0.3
data:
  format: folder
  root: {root}
  crop_size: 32
  resize_size: 32
  num_workers: 0
optim:
  lr: 0.2
  warmup_epochs: 0.5
train:
  epochs: 2
  batch_size: 4
  log_every: 1
  tensorboard: false
  channels_last: false
eval:
  batch_size: 4
out_dir: {out}
seed: 3
"""


def write_config(tmp: Path, root: Path, name: str = "run") -> tuple[Path, Path]:
    out = tmp / name
    path = tmp / f"{name}.yaml"
    path.write_text(TINY.format(root=root, out=out))
    return path, out


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    payload = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    return payload["model"]

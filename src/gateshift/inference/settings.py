"""What an inference run is asked for: the test views and the precision, read from a config.

Both ``evaluate`` and ``predict`` take them from the run's saved config (``config.yaml`` in its
bundle) with dotted overrides applied, so there is one home for each choice:

- views: ``eval.num_clips`` clips x ``eval.num_crops`` crops per video (the papers' protocol);
- precision: ``eval.precision``, which by default (unset) follows the run's ``train.precision``
  (itself ``auto``: fp32 on CPU, bf16 or fp16 autocast on GPUs);
- memory format: the run's ``train.channels_last`` (same outputs either way; channels_last is
  faster on CPU).

The command-line flags ``--clips``, ``--crops`` and ``--precision`` (and the same keyword
arguments of :func:`~gateshift.deploy.predict.predict`) are nothing but these keys: they become
overrides through :func:`eval_overrides`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gateshift.config import Config
from gateshift.inference.precision import resolve_precision


@dataclass(frozen=True)
class Views:
    """Test views of a video: ``num_clips`` clips in time, each seen as ``num_crops`` crops."""

    num_clips: int = 1
    num_crops: int = 1

    @property
    def count(self) -> int:
        """K, the views scored per video."""
        return self.num_clips * self.num_crops


@dataclass(frozen=True)
class InferenceSettings:
    views: Views
    precision: str  # auto, fp32, bf16 or fp16
    precision_key: str  # the config key it came from, named in errors
    channels_last: bool = True  # the model's memory format

    def dtype(self, device: torch.device) -> torch.dtype | None:
        """The autocast dtype on ``device`` (None: plain fp32)."""
        return resolve_precision(self.precision, device, what=self.precision_key)


def inference_settings(cfg: Config) -> InferenceSettings:
    """Views and precision of ``cfg.eval`` (precision unset: ``train.precision``) and the
    memory format of ``train.channels_last``."""
    views = Views(num_clips=cfg.eval.num_clips, num_crops=cfg.eval.num_crops)
    fmt = cfg.train.channels_last
    if cfg.eval.precision is not None:
        return InferenceSettings(views, cfg.eval.precision, "eval.precision", fmt)
    return InferenceSettings(views, cfg.train.precision, "train.precision", fmt)


def eval_overrides(
    *,
    num_clips: int | None = None,
    num_crops: int | None = None,
    precision: str | None = None,
) -> list[str]:
    """The ``eval.*`` overrides that view and precision options stand for (None: not given)."""
    keys = {"eval.num_clips": num_clips, "eval.num_crops": num_crops, "eval.precision": precision}
    return [f"{key}={value}" for key, value in keys.items() if value is not None]

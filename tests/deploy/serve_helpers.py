"""A tiny served run for the `gateshift serve` tests (API and browser)."""

from __future__ import annotations

import json
from pathlib import Path

from ..inference.helpers import make_run


def served_run(tmp: Path, root: Path) -> Path:
    """A ResNet-18 GSM bundle (4 frames, 32 px, seeded initial weights) over the dataset at
    ``root``, recording 1 s training clips (so a 4 s video gets a timeline)."""
    folder, _ = make_run(tmp, root)
    index = json.loads((folder / "bundle" / "bundle.json").read_text())
    index["clips"] = {"num_frames": 12, "duration_s": 1.0, "fps": 12.0, "probed": 22}
    (folder / "bundle" / "bundle.json").write_text(json.dumps(index))
    return folder


def long_video(root: Path, path: Path) -> Path:
    """Six val clips of the dataset at ``root`` one after another: 48 frames at 12 fps, 4 s."""
    from gateshift.data.synthetic import write_mp4

    from .test_timeline import _val_clips

    names = ["moving_left", "still", "appearing", "moving_up", "receding", "still"]
    write_mp4(path, _val_clips(root, names))
    return path

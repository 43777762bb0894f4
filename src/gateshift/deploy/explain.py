"""``explain``: what a run's model looks at in one video, and where its gates route features.

One view of the video (the first clip and first crop of the run's test sampling, preprocessed
by :class:`~gateshift.inference.preprocess.VideoViews` as ``predict`` does) goes through the
model once, in fp32, with the gates of every GSM/GSF module captured (:mod:`.gates`) and the
backbone's last features kept for Grad-CAM (:mod:`.gradcam`). Written to the output folder:

- ``gates.png``: modules x frames, each module's backward and forward gate planes ``|G|`` laid
  over the frames (GSM arXiv 1912.00381: the gate should open on moving parts);
- ``routing.png``: per module the share of the feature magnitude sent forward, sent backward
  and kept (defined exactly in :mod:`.gates`);
- ``gradcam.png``: Grad-CAM of the predicted class (of each label set) and of ``target``;
- ``explain.gif`` and ``explain.mp4`` (the same frames): per frame, the frame, its Grad-CAM
  maps and every gate plane;
- ``explain.json``: the prediction of this view, the Grad-CAM targets, the routing shares per
  module and the files. TSN and TSM models have no gates: they get Grad-CAM and a note.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gateshift.data.datasets import BadItem
from gateshift.deploy import explain_plots as plots
from gateshift.deploy.gates import BACKWARD, FORWARD, ModuleGates, capture_gates
from gateshift.deploy.gradcam import capture_features, grad_cam
from gateshift.inference.bundle import Bundle, load_bundle
from gateshift.inference.device import resolve_device
from gateshift.inference.preprocess import VideoViews
from gateshift.inference.scoring import top_classes
from gateshift.inference.settings import Views
from gateshift.models.recognizer import Recognizer

NO_GATES = (
    "{model} is a {temporal} model: it has no GSM/GSF gates to show (TSN does no temporal "
    "modelling, TSM shifts a fixed channel share); only Grad-CAM is drawn"
)


@dataclass
class Target:
    """A class Grad-CAM explains: its name, index into the concatenated logits, and why."""

    label: str
    index: int
    role: str  # "predicted" (top-1 of a label set) or "target" (asked for)


@dataclass
class Explanation:
    logits: Tensor  # (classes,)
    targets: list[Target]
    cams: dict[int, Tensor]  # logit index -> (T, H, W) in [0, 1]
    gates: list[ModuleGates]  # one per GSM/GSF module, forward order


def short_name(path: str) -> str:
    """A module's path without the recognizer's prefix and the wrapper's suffix."""
    return path.removeprefix("backbone.").removesuffix(".temporal")


def find_label(classes: list[list[str]], label: str) -> int:
    """Index of ``label`` in the concatenated logits of all label sets."""
    offset = 0
    for names in classes:
        if label in names:
            return offset + names.index(label)
        offset += len(names)
    known = ", ".join(n for names in classes for n in names[:10])
    raise ValueError(f"unknown label {label!r}; the run's classes include {known}, ...")


def explain_clip(
    model: Recognizer, clip: Tensor, classes: list[list[str]], *, target: str | None = None
) -> Explanation:
    """Gates and Grad-CAM of one clip ``(1, T, C, H, W)``; Grad-CAM of every label set's top-1
    and of ``target``."""
    asked = None if target is None else Target(target, find_label(classes, target), "target")
    with (
        torch.enable_grad(),
        capture_gates(model) as gates,
        capture_features(model.backbone) as features,
    ):
        logits = model(clip.detach().requires_grad_(True))  # (1, classes), graph kept
    targets = []
    offset = 0
    for names, head in zip(classes, torch.split(logits[0], [len(n) for n in classes]), strict=True):
        best = int(head.argmax())
        targets.append(Target(names[best], offset + best, "predicted"))
        offset += len(names)
    if asked is not None:
        targets.append(asked)
    size = (int(clip.shape[-2]), int(clip.shape[-1]))
    cams = {t.index: grad_cam(features[-1], logits[0, t.index], size) for t in targets}
    return Explanation(logits[0].detach(), targets, cams, list(gates))


def explain(
    run: str | Path,
    video: str | Path,
    out: str | Path,
    *,
    target: str | None = None,
    device: str = "cpu",
    top_k: int = 5,
) -> dict[str, Any]:
    """Explain ``video`` with the run's model; write the files above to ``out``; return the
    content of ``explain.json``."""
    dev = resolve_device(device, what="device")
    bundle = load_bundle(run, device=dev, channels_last=False)
    return explain_bundle(bundle, video, out, target=target, top_k=top_k)


def explain_bundle(
    bundle: Bundle,
    video: str | Path,
    out: str | Path,
    *,
    target: str | None = None,
    top_k: int = 5,
    animation: bool = True,
    lock: AbstractContextManager[Any] | None = None,
) -> dict[str, Any]:
    """:func:`explain` with a bundle already loaded (``gateshift serve`` loads it once).

    ``animation=False`` skips the GIF and MP4. ``lock`` is held around the model's forward and
    backward pass: the capture hooks are on the model itself, so no other call may run it then.
    """
    if target is not None:
        find_label(bundle.classes, target)  # an unknown label fails before any work
    clips = VideoViews(bundle, Views(num_clips=1, num_crops=1))(video)
    if isinstance(clips, BadItem):
        raise ValueError(f"cannot read {video}: {clips.reason}")
    dev = next(bundle.model.parameters()).device
    clip = clips[:1].to(dev)  # (1, T, C, H, W): the first clip, first crop
    with lock if lock is not None else nullcontext():
        result = explain_clip(bundle.model, clip, bundle.classes, target=target)
    frames = plots.display_frames(clip[0], bundle.input_spec)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    files = write_pictures(folder, result, frames, title=bundle.model.name, animation=animation)
    report = _report(bundle.model, str(video), result, bundle.classes, top_k) | {"files": files}
    (folder / "explain.json").write_text(json.dumps(report, indent=2))
    return report


def _report(
    model: Recognizer, video: str, result: Explanation, classes: list[list[str]], top_k: int
) -> dict[str, Any]:
    top = top_classes(result.logits, classes, top_k)
    routing = []
    for g in result.gates:
        shares = g.shares()
        opened = g.mean_open()
        routing.append(
            {
                "module": g.name,
                "kind": g.kind,
                "channels": g.channels,
                "gated_channels": g.gated_channels,
                "forward": shares.forward,
                "backward": shares.backward,
                "kept": shares.kept,
                "mean_gate_forward": opened[0],
                "mean_gate_backward": opened[1],
                # where each plane's gated half goes, in frames from t ("backward" and
                # "forward" name the planes; a causal module sends both to later frames)
                "offsets": dict(zip(("backward", "forward"), g.offsets(), strict=True)),
            }
        )
    note = None if result.gates else NO_GATES.format(model=model.name, temporal=model.temporal)
    return {
        "video": video,
        "model": model.name,
        "temporal": model.temporal,
        "num_segments": model.num_segments,
        "view": "first clip, first crop of the run's test sampling",
        "prediction": [
            [{"label": n, "index": i, "probability": p} for n, i, p in head] for head in top
        ],
        "grad_cam": [vars(t) for t in result.targets],
        "has_gates": bool(result.gates),
        "note": note,
        "routing": routing,
    }


def write_pictures(
    folder: Path, result: Explanation, frames: np.ndarray, *, title: str, animation: bool = True
) -> dict[str, str]:
    """The PNGs (grids with a colour legend), the GIF and the MP4; returns {kind: file name}."""
    size = plots.tile_size(frames.shape[1])
    files = {}
    cam_rows: list[tuple[str, list[np.ndarray]]] = [("frames", list(frames))]
    for t in result.targets:
        cam = result.cams[t.index]
        cam_rows.append(
            (
                f"{t.role}: {t.label}"[:20],
                [plots.overlay(f, c, cmap="jet") for f, c in zip(frames, cam, strict=True)],
            )
        )
    plots.save_png(folder / "gradcam.png", plots.grid_image(cam_rows, size, plots.CAM_LEGEND))
    files["gradcam"] = "gradcam.png"
    gate_rows = [("frames", list(frames))]
    for g in result.gates:
        for plane, word in zip((BACKWARD, FORWARD), g.plane_labels(), strict=True):
            heat = g.gate[0, :, plane].abs()  # (T, H, W)
            maps = [plots.overlay(f, h) for f, h in zip(frames, heat, strict=True)]
            gate_rows.append((f"{short_name(g.name)} {word}"[-20:], maps))
    if result.gates:
        plots.save_png(folder / "gates.png", plots.grid_image(gate_rows, size, plots.GATE_LEGEND))
        names = [short_name(g.name) for g in result.gates]
        shares = [(s.forward, s.backward, s.kept) for s in (g.shares() for g in result.gates)]
        labels = ("to t+1", "to t+2") if result.gates[0].causal else ("forward", "backward")
        plots.plot_routing(
            folder / "routing.png", names, shares, title=f"{title}: routing", labels=labels
        )
        files |= {"gates": "gates.png", "routing": "routing.png"}
    if animation:
        files |= _write_animation(folder, frames, cam_rows, gate_rows, size)
    return files


def _write_animation(
    folder: Path,
    frames: np.ndarray,
    cam_rows: list[tuple[str, list[np.ndarray]]],
    gate_rows: list[tuple[str, list[np.ndarray]]],
    size: int,
) -> dict[str, str]:
    animation = []
    for step in range(len(frames)):
        head = [(f"frame {step}", frames[step])]
        head += [(label.split(":")[0], row[step]) for label, row in cam_rows[1:]]
        # module i of explain.json's routing list: its backward and forward planes side by side
        planes = [
            (f"{i // 2} {label[-3:]}", row[step]) for i, (label, row) in enumerate(gate_rows[1:])
        ]
        animation.append(plots.mosaic([head, planes], size, columns=8 if planes else len(head)))
    plots.save_gif(folder / "explain.gif", animation)
    plots.save_mp4(folder / "explain.mp4", animation)
    return {"animation": "explain.gif", "video": "explain.mp4"}

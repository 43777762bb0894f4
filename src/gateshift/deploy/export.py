"""ONNX export with enforced parity: a trained recognizer leaves the library as one ``.onnx``.

Why these tools: ``torch.onnx.export(..., dynamo=True)`` (torch.export + onnxscript) is
PyTorch's maintained exporter; it traces the model with ``torch.export``, under which every
temporal module takes its ``reference`` path (:func:`gateshift.models.temporal.gsm.choose_path`):
the published definition as plain tensor ops, no autograd function, no C++ kernel, nothing ONNX
lacks. ONNX Runtime is the runtime most deployments use (servers, desktop apps, browsers) and
the one the parity check runs.

The batch axis is dynamic (traced at batch 2, runs at any batch); the number of segments and the
crop size are fixed, as the network was trained. The file's metadata carries what prediction
needs (see :mod:`gateshift.inference.onnx_runtime`). Every export is checked before it is kept:
ONNX Runtime against the PyTorch model on the clips given (a run's validation clips, or random
ones), and a file whose largest relative logit error exceeds ``tolerance`` (fp32: 1e-4) or whose
top-1 class disagrees on any clip is an error and is deleted.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gateshift._version import __version__
from gateshift.inference.bundle import Bundle, load_bundle, load_bundle_config
from gateshift.inference.onnx_runtime import (
    METADATA_KEY,
    METADATA_VERSION,
    OnnxNetwork,
    import_onnxruntime,
)
from gateshift.models.recognizer import Recognizer

log = logging.getLogger(__name__)

PRECISIONS = ("fp32",)  # fp16 and calibrated int8 are the export issue's next steps


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote and how closely ONNX Runtime follows PyTorch (``--json``)."""

    path: str
    precision: str
    max_rel_error: float
    top1_agreement: float
    clips: int
    source: str  # where the checked clips came from: "validation" or "random"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def default_metadata(model: Recognizer) -> dict[str, Any]:
    """Metadata for a model without a run (``create_model`` + weights): class numbers as names,
    the backbone's input spec, TSN segment sampling, one view."""
    return {
        "model": model.name,
        "num_segments": model.num_segments,
        "classes": [[str(i) for i in range(k)] for k in model.head.splits],
        "input_spec": model.input_spec.to_dict(),
        "sampling": {"mode": "segments", "num_segments": model.num_segments},
        "views": {"num_clips": 1, "num_crops": 1},
    }


def random_clips(
    model: Recognizer, count: int, *, size: int | None = None, seed: int = 0
) -> Tensor:
    """``count`` random clips ``(count, T, 3, size, size)``; ``size`` defaults to the model's
    crop size."""
    size = size or model.input_spec.crop_size
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(count, model.num_segments, 3, size, size, generator=gen)


def export_onnx(
    model: Recognizer,
    path: str | Path,
    *,
    precision: str = "fp32",
    opset: int | None = None,
    clips: Tensor | None = None,
    metadata: dict[str, Any] | None = None,
    tolerance: float = 1e-4,
) -> Path:
    """Export ``model`` to ``path`` and check it; see :func:`export_checked`."""
    report = export_checked(
        model,
        path,
        precision=precision,
        opset=opset,
        clips=clips,
        metadata=metadata,
        tolerance=tolerance,
    )
    return Path(report.path)


def export_checked(
    model: Recognizer,
    path: str | Path,
    *,
    precision: str = "fp32",
    opset: int | None = None,
    clips: Tensor | None = None,
    clips_source: str = "random",
    metadata: dict[str, Any] | None = None,
    tolerance: float = 1e-4,
) -> ExportReport:
    """Write ``model`` as ONNX to ``path`` only if ONNX Runtime reproduces it on ``clips``
    (default: 8 random clips at the crop size); ``metadata`` (default :func:`default_metadata`)
    goes in the file. The file takes clips of the checked clips' size (its input spec says so).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"export precision {precision!r}: this version exports {PRECISIONS}")
    import_onnxruntime()  # the clear error before a long export
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = dict(metadata or default_metadata(model))
    size = int(metadata["input_spec"]["crop_size"])
    if clips is None:
        clips = random_clips(model, 8, size=size)
    elif clips.shape[-1] != size:  # the file is fixed to the size it is exported (and checked) at
        metadata["input_spec"] = _at_size(metadata["input_spec"], int(clips.shape[-1]))
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".onnx", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _write(model, tmp, opset, metadata)
        report = _parity(model, tmp, clips, precision, tolerance)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("exported %s to %s (max relative error %.2e)", model.name, path, report[0])
    return ExportReport(str(path), precision, report[0], report[1], len(clips), clips_source)


def _at_size(spec: dict[str, Any], size: int) -> dict[str, Any]:
    """An input spec cropping ``size`` pixels, resizing in the same proportion as before."""
    resize = max(size, round(size * spec["resize_size"] / spec["crop_size"]))
    return {**spec, "crop_size": size, "resize_size": resize}


def _write(model: Recognizer, path: Path, opset: int | None, metadata: dict[str, Any]) -> None:
    import onnx

    was_training = model.training
    # traced at batch 2: torch.export specialises a dimension of size 1 to a constant (and did
    # so for mobilenetv2_tsm), which would fix the batch axis
    example = random_clips(model, 2, size=int(metadata["input_spec"]["crop_size"]))
    try:
        model.eval()
        batch = torch.export.Dim("batch", min=1, max=4096)
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=["clips"],
            output_names=["logits"],
            dynamic_shapes={"clips": {0: batch}},
            verbose=False,
        )
    finally:
        model.train(was_training)
    if program is None:
        raise RuntimeError(f"torch.onnx.export returned no program for {model.name}")
    program.save(str(path))
    proto = onnx.load(str(path))
    opsets = [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")]
    info = {"format": METADATA_VERSION, "gateshift": __version__, "opset": opsets[0], **metadata}
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(info)
    onnx.save(proto, str(path))


def _parity(
    model: Recognizer, path: Path, clips: Tensor, precision: str, tolerance: float
) -> tuple[float, float]:
    """(max relative logit error, top-1 agreement) of the file against ``model``; an error
    above the thresholds."""
    network = OnnxNetwork(path)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            want = torch.cat([model(c[None].float()).float() for c in clips])
    finally:
        model.train(was_training)
    got = torch.cat([network(c[None]) for c in clips])
    scale = want.abs().amax(dim=1).clamp(min=1e-12)
    error = float(((got - want).abs().amax(dim=1) / scale).max())
    agreement = float((got.argmax(1) == want.argmax(1)).float().mean())
    log.info(
        "%s parity: max relative error %.2e (limit %.0e), top-1 agreement %.3f on %d clips",
        *(precision, error, tolerance, agreement, len(clips)),
    )
    if error > tolerance or agreement < 1.0:
        raise ValueError(
            f"the {precision} ONNX export does not reproduce {model.name}: max relative logit "
            f"error {error:.2e} (limit {tolerance:.0e}), top-1 agreement {agreement:.3f} on "
            f"{len(clips)} clips; nothing was written"
        )
    return error, agreement


def run_clips(bundle: Bundle, count: int) -> tuple[Tensor, str]:
    """Up to ``count`` clips of the run's validation split with its test preprocessing, or, when
    that data cannot be reached, ``count`` random clips; and which it was."""
    from gateshift.data.annotations import load_annotations
    from gateshift.data.datasets import BadItem
    from gateshift.inference.preprocess import VideoViews
    from gateshift.inference.settings import Views

    cfg = load_bundle_config(bundle.folder)
    try:
        split = load_annotations(
            cfg.data.format, cfg.data.root, cfg.data.val_split, **cfg.data.annotations
        )
    except (FileNotFoundError, ValueError) as err:
        log.info("validation data not reachable (%s): checking on random clips", err)
        return random_clips(bundle.model, count, size=bundle.input_spec.crop_size), "random"
    views = VideoViews(bundle, Views())
    clips: list[Tensor] = []
    for record in split.records:
        item = views(record.path)
        if not isinstance(item, BadItem):
            clips.append(item[0])  # (T, C, H, W): one clip, one crop
        if len(clips) == count:
            break
    if not clips:
        return random_clips(bundle.model, count, size=bundle.input_spec.crop_size), "random"
    return torch.stack(clips), "validation"


def export_run(
    run: str | Path,
    out: str | Path | None = None,
    *,
    opset: int | None = None,
    clips: int = 8,
    tolerance: float = 1e-4,
) -> ExportReport:
    """Export a training run's model with its bundle's labels, input spec, sampling and views in
    the file (default ``RUN/export/model.onnx``), checked on its validation clips."""
    if clips < 1:
        raise ValueError("the parity check needs at least one clip")
    bundle = load_bundle(run, channels_last=False)
    path = Path(out) if out is not None else Path(run) / "export" / "model.onnx"
    metadata = {
        **default_metadata(bundle.model),
        "classes": bundle.classes,
        "input_spec": bundle.input_spec.to_dict(),
        "sampling": bundle.sampling,
        "views": {"num_clips": bundle.views.num_clips, "num_crops": bundle.views.num_crops},
    }
    check, source = run_clips(bundle, clips)
    return export_checked(
        bundle.model,
        path,
        opset=opset,
        clips=check,
        clips_source=source,
        metadata=metadata,
        tolerance=tolerance,
    )

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
ones), and a file whose largest relative logit error exceeds ``tolerance`` or whose top-1 class
agrees on fewer clips than ``min_agreement`` is an error and is deleted.

Precisions (the fp32 graph is always written and checked first; the others derive from it):

=========  ==========================================================================  ========
``fp32``   the exported graph                                                          1e-4, 1
``fp16``   weights and activations in float16, inputs and logits float32              1e-2, 0.98
           (ONNX Runtime's float16 converter, ``keep_io_types``): for GPUs
``int8``   static quantisation with ONNX Runtime's tools in QDQ format: int8 weights   --, 0.98
           per output channel, uint8 activations, ranges calibrated (min/max) on the
           ``calibration`` clips (a run's training clips). The gates' 3x3x3
           convolutions stay float: they are ~1% of the arithmetic, ONNX Runtime has
           no fast int8 3-D convolution, and a tanh gate near zero needs the resolution
=========  ==========================================================================  ========

(the last column: the default ``tolerance`` on the max relative logit error and
``min_agreement`` on top-1 agreement with the PyTorch fp32 model.)
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gateshift._files import staged
from gateshift._version import __version__
from gateshift.deploy._onnx_rewrite import batchnorms_as_depthwise_convs, pools_as_depthwise_convs
from gateshift.inference.bundle import Bundle, load_bundle, load_bundle_config
from gateshift.inference.onnx_runtime import (
    METADATA_KEY,
    METADATA_VERSION,
    OnnxNetwork,
    import_onnxruntime,
)
from gateshift.models.recognizer import Recognizer

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")
#: default (max relative logit error, top-1 agreement) a file of each precision must meet
LIMITS = {"fp32": (1e-4, 1.0), "fp16": (1e-2, 0.98), "int8": (float("inf"), 0.98)}


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


@contextmanager
def _quiet_tools() -> Iterator[None]:
    """The exporter's and quantiser's INFO chatter (hundreds of lines: onnx_ir's passes, and
    onnxruntime.quantization logging on the root logger) held back to warnings; gateshift's
    own messages keep their level."""
    names = ["", "onnx_ir", "onnxscript", "onnxruntime"]
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    own = logging.getLogger("gateshift")
    own_level = own.level
    own.setLevel(own.getEffectiveLevel())
    for lg in loggers:
        if lg.getEffectiveLevel() < logging.WARNING:
            lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
        own.setLevel(own_level)


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
    calibration: Tensor | None = None,
    clips: Tensor | None = None,
    metadata: dict[str, Any] | None = None,
    tolerance: float | None = None,
    min_agreement: float | None = None,
) -> Path:
    """Export ``model`` to ``path`` and check it; see :func:`export_checked`.

    ``calibration`` (int8 only, required there): clips ``(N, T, C, H, W)`` prepared as for the
    model's input, whose activation ranges set the quantisation.
    """
    report = export_checked(
        model,
        path,
        precision=precision,
        opset=opset,
        calibration=calibration,
        clips=clips,
        metadata=metadata,
        tolerance=tolerance,
        min_agreement=min_agreement,
    )
    return Path(report.path)


def export_checked(
    model: Recognizer,
    path: str | Path,
    *,
    precision: str = "fp32",
    opset: int | None = None,
    calibration: Tensor | None = None,
    clips: Tensor | None = None,
    clips_source: str = "random",
    metadata: dict[str, Any] | None = None,
    tolerance: float | None = None,
    min_agreement: float | None = None,
) -> ExportReport:
    """Write ``model`` as ONNX to ``path`` only if ONNX Runtime reproduces it on ``clips``
    (default: 8 random clips at the crop size); ``metadata`` (default :func:`default_metadata`)
    goes in the file. The file takes clips of the checked clips' size (its input spec says so).
    ``tolerance`` and ``min_agreement`` default to the precision's :data:`LIMITS`; an fp16 or
    int8 file is compared with the PyTorch fp32 model, after its fp32 graph passed the fp32
    check.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"export precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    limit, agree = LIMITS[precision]
    limit = limit if tolerance is None else tolerance
    agree = agree if min_agreement is None else min_agreement
    if not 0.0 <= agree <= 1.0:
        raise ValueError(f"min_agreement {agree} is not a fraction in [0, 1]")
    if precision == "int8" and (calibration is None or len(calibration) == 0):
        raise ValueError("an int8 export needs calibration clips (a run's training clips)")
    import_onnxruntime()  # the clear error before a long export
    path = Path(path)
    metadata = dict(metadata or default_metadata(model))
    size = int(metadata["input_spec"]["crop_size"])
    if clips is None:
        clips = random_clips(model, 8, size=size)
    elif clips.shape[-1] != size:  # the file is fixed to the size it is exported (and checked) at
        metadata["input_spec"] = _at_size(metadata["input_spec"], int(clips.shape[-1]))
    with staged(path, ".onnx") as tmp:
        with _quiet_tools():
            _write(model, tmp, opset, {**metadata, "precision": precision})
        want = _reference_logits(model, clips)
        # the fp32 graph must be exact before anything is derived from it
        exact = (limit, agree) if precision == "fp32" else LIMITS["fp32"]
        report = _parity(model.name, tmp, clips, want, "fp32", *exact)
        if precision == "fp16":
            _to_fp16(tmp)
        elif precision == "int8":
            assert calibration is not None
            with _quiet_tools():
                _to_int8(tmp, calibration)
        if precision != "fp32":
            report = _parity(model.name, tmp, clips, want, precision, limit, agree)
    log.info("exported %s to %s (max relative error %.2e)", model.name, path, report[0])
    return ExportReport(str(path), precision, report[0], report[1], len(clips), clips_source)


def _at_size(spec: dict[str, Any], size: int) -> dict[str, Any]:
    """An input spec cropping ``size`` pixels, resizing in the same proportion as before."""
    resize = max(size, round(size * spec["resize_size"] / spec["crop_size"]))
    return {**spec, "crop_size": size, "resize_size": resize}


def _write(model: Recognizer, path: Path, opset: int | None, metadata: dict[str, Any]) -> None:
    # traced at batch 2: torch.export specialises a dimension of size 1 to a constant (and did
    # so for mobilenetv2_tsm), which would fix the batch axis
    example = random_clips(model, 2, size=int(metadata["input_spec"]["crop_size"]))
    batch = torch.export.Dim("batch", min=1, max=4096)
    write_onnx(
        model,
        (example,),
        path,
        opset=opset,
        metadata=metadata,
        input_names=["clips"],
        output_names=["logits"],
        dynamic_shapes={"clips": {0: batch}},
        name=model.name,
    )


def write_onnx(
    module: torch.nn.Module,
    args: tuple[Any, ...],
    path: Path,
    *,
    opset: int | None,
    metadata: dict[str, Any],
    input_names: list[str],
    output_names: list[str],
    dynamic_shapes: Any,
    name: str,
) -> None:
    """``module`` (in eval mode, as traced on ``args``) written to ``path`` by PyTorch's
    exporter, with the gateshift ``metadata`` in the file."""
    import onnx

    was_training = module.training
    try:
        module.eval()
        program = torch.onnx.export(
            module,
            args,
            dynamo=True,
            opset_version=opset,
            input_names=input_names,
            output_names=output_names,
            dynamic_shapes=dynamic_shapes,
            verbose=False,
        )
    finally:
        module.train(was_training)
    if program is None:
        raise RuntimeError(f"torch.onnx.export returned no program for {name}")
    program.save(str(path))
    proto = onnx.load(str(path))
    opsets = [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")]
    info = {"format": METADATA_VERSION, "gateshift": __version__, "opset": opsets[0], **metadata}
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(info)
    onnx.save(proto, str(path))


def _reference_logits(model: Recognizer, clips: Tensor) -> Tensor:
    """The PyTorch fp32 logits of ``clips``, one clip at a time, in eval mode."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            return torch.cat([model(c[None].float()).float() for c in clips])
    finally:
        model.train(was_training)


def _parity(
    name: str,
    path: Path,
    clips: Tensor,
    want: Tensor,
    precision: str,
    tolerance: float,
    min_agreement: float,
) -> tuple[float, float]:
    """(max relative logit error, top-1 agreement) of the file against the PyTorch logits
    ``want``; an error past the limits."""
    network = OnnxNetwork(path)
    got = torch.cat([network(c[None]) for c in clips])
    scale = want.abs().amax(dim=1).clamp(min=1e-12)
    error = float(((got - want).abs().amax(dim=1) / scale).max())
    agreement = float((got.argmax(1) == want.argmax(1)).float().mean())
    log.info(
        "%s parity: max relative error %.2e (limit %.0e), top-1 agreement %.3f (least %.3f) on "
        "%d clips",
        *(precision, error, tolerance, agreement, min_agreement, len(clips)),
    )
    if error > tolerance or agreement < min_agreement:
        raise ValueError(
            f"the {precision} ONNX export does not reproduce {name}: max relative logit "
            f"error {error:.2e} (limit {tolerance:.0e}), top-1 agreement {agreement:.3f} "
            f"(least {min_agreement:.3f}) on {len(clips)} clips; nothing was written"
        )
    return error, agreement


def _to_fp16(path: Path) -> None:
    """Rewrite the fp32 file at ``path`` in float16, keeping float32 inputs and outputs."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    proto = onnx.load(str(path))
    onnx.save(convert_float_to_float16(proto, keep_io_types=True), str(path))


def _to_int8(path: Path, calibration: Tensor) -> None:
    """Quantise the fp32 file at ``path`` in place: QDQ, int8 weights per channel, uint8
    activations with min/max ranges from ``calibration``; the gates' convolutions stay float
    (:func:`_float_nodes`)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Clips(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(calibration.float().numpy())

        def get_next(self) -> dict[str, Any] | None:
            clip = next(self.items, None)
            return None if clip is None else {"clips": clip[None]}

    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".quant.") as folder:
        prepared = Path(folder) / "prepared.onnx"
        quant_pre_process(str(path), str(prepared))
        proto = onnx.load(str(prepared))
        # fast int8 kernels for both (see _onnx_rewrite)
        if pools_as_depthwise_convs(proto) + batchnorms_as_depthwise_convs(proto):
            onnx.save(proto, str(prepared))
        float_nodes = _float_nodes(proto)
        quantize_static(
            str(prepared),
            str(path),
            Clips(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            nodes_to_exclude=float_nodes,
        )
    # quantize_static keeps the metadata of the prepared model, which quant_pre_process keeps
    # from the original: checked here, not assumed
    meta = {p.key for p in onnx.load(str(path), load_external_data=False).metadata_props}
    if METADATA_KEY not in meta:
        raise RuntimeError(f"int8 quantisation dropped the {METADATA_KEY!r} metadata of {path}")


#: op types int8 leaves in float (see :func:`_float_nodes`)
FLOAT_OPS = ("BatchNormalization",)


def _float_nodes(proto: Any) -> list[str]:
    """Nodes int8 leaves in float: the gates' convolutions (their tanh planes scale every
    shifted feature; 3x3 with 6 outputs, dense or grouped) and any batch norm left (those on
    frames became depthwise convolutions, :func:`.batchnorms_as_depthwise_convs`)."""
    shapes = {t.name: tuple(t.dims) for t in proto.graph.initializer}

    def gate_conv(node: Any) -> bool:
        shape = shapes.get(node.input[1], ())
        return len(shape) == 5 or (len(shape) == 4 and shape[0] == 6 and shape[2:] == (3, 3))

    return [
        n.name
        for n in proto.graph.node
        if (n.op_type == "Conv" and gate_conv(n)) or n.op_type in FLOAT_OPS
    ]


def split_clips(bundle: Bundle, split: str, count: int) -> Tensor | None:
    """Up to ``count`` clips of the run's ``split`` ("train", "val"), one test view each (the
    bundle's test preprocessing), from records spread evenly over the split (a folder dataset
    lists its classes one after another); None when the split's data cannot be reached."""
    from gateshift.data.annotations import load_annotations
    from gateshift.data.datasets import BadItem
    from gateshift.inference.preprocess import VideoViews
    from gateshift.inference.settings import Views

    cfg = load_bundle_config(bundle.folder)
    name = cfg.data.train_split if split == "train" else cfg.data.val_split
    try:
        records = load_annotations(
            cfg.data.format, cfg.data.root, name, **cfg.data.annotations
        ).records
    except (FileNotFoundError, ValueError) as err:
        log.info("the %s split is not reachable (%s)", name, err)
        return None
    step = max(1.0, len(records) / count)
    order = [int(i * step) for i in range(min(count, len(records)))]
    chosen = set(order)
    order += [i for i in range(len(records)) if i not in chosen]  # stand-ins for bad ones
    views = VideoViews(bundle, Views())
    clips: list[Tensor] = []
    for index in order:
        item = views(records[index].path)
        if not isinstance(item, BadItem):
            clips.append(item[0])  # (T, C, H, W): one clip, one crop
        if len(clips) == count:
            break
    return torch.stack(clips) if clips else None


def run_clips(bundle: Bundle, count: int) -> tuple[Tensor, str]:
    """Up to ``count`` clips of the run's validation split with its test preprocessing, or, when
    that data cannot be reached, ``count`` random clips; and which it was."""
    clips = split_clips(bundle, "val", count)
    if clips is None:
        log.info("validation data not reachable: checking on random clips")
        return random_clips(bundle.model, count, size=bundle.input_spec.crop_size), "random"
    return clips, "validation"


def run_metadata(bundle: Bundle) -> dict[str, Any]:
    """What a run's exported file carries: its labels, input spec, sampling and test views."""
    return {
        **default_metadata(bundle.model),
        "classes": bundle.classes,
        "input_spec": bundle.input_spec.to_dict(),
        "sampling": bundle.sampling,
        "views": {"num_clips": bundle.views.num_clips, "num_crops": bundle.views.num_crops},
    }


def export_run(
    run: str | Path,
    out: str | Path | None = None,
    *,
    precision: str = "fp32",
    opset: int | None = None,
    clips: int | None = None,
    calibration_clips: int = 32,
    tolerance: float | None = None,
    min_agreement: float | None = None,
) -> ExportReport:
    """Export a training run's model with its bundle's labels, input spec, sampling and views in
    the file (default ``RUN/export/model.onnx``), checked on ``clips`` of its validation clips
    (default 8 for fp32, 100 for fp16 and int8, whose agreement is a fraction). An int8 export is
    calibrated on ``calibration_clips`` clips of the training split, which must be reachable."""
    clips = clips if clips is not None else (8 if precision == "fp32" else 100)
    if clips < 1:
        raise ValueError("the parity check needs at least one clip")
    if precision == "int8" and calibration_clips < 1:
        raise ValueError("int8 calibration needs at least one clip")
    bundle = load_bundle(run, channels_last=False)
    path = Path(out) if out is not None else Path(run) / "export" / "model.onnx"
    metadata = run_metadata(bundle)
    calibration = None
    if precision == "int8":
        calibration = split_clips(bundle, "train", calibration_clips)
        if calibration is None:
            raise ValueError(
                f"int8 calibration needs the training split of {run}, which cannot be read: "
                "check data.root in its config (an fp32 or fp16 export needs no data)"
            )
    check, source = run_clips(bundle, clips)
    return export_checked(
        bundle.model,
        path,
        precision=precision,
        opset=opset,
        calibration=calibration,
        clips=check,
        clips_source=source,
        metadata=metadata,
        tolerance=tolerance,
        min_agreement=min_agreement,
    )

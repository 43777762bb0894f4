"""An exported ``.onnx`` model run by ONNX Runtime, behind the same :class:`.Network` call.

The file carries everything prediction needs in its metadata (key ``gateshift``, one JSON
object written by :func:`gateshift.deploy.export.export_onnx`): label names per head, input
spec, sampling spec, test views, model name, number of segments. :func:`load_onnx` reads it back
into an :class:`ExportedModel`, so ``gateshift predict model.onnx clip.mp4`` needs the file
alone. ONNX Runtime is imported lazily: it is an optional dependency (``pip install
gateshift[export]``). The same file also runs on OpenVINO (:mod:`.openvino_runtime`):
``load_onnx(path, backend="openvino")``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gateshift.inference.network import Network
from gateshift.inference.settings import Views
from gateshift.input_spec import InputSpec

METADATA_KEY = "gateshift"
METADATA_VERSION = 1
#: the runtimes that run an exported file
RUNTIMES = ("onnxruntime", "openvino")


def import_onnxruntime() -> Any:
    """The ``onnxruntime`` module, or an error saying how to install it."""
    try:
        import onnxruntime
    except ImportError as err:
        raise ValueError(
            "ONNX export and the onnxruntime backend need the export extra: "
            "pip install 'gateshift[export]'"
        ) from err
    return onnxruntime


def ort_session(path: str | Path, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session on ``path``; a clear error for a file it cannot load."""
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    # idle worker threads sleep instead of spinning: predict decodes video between runs, and
    # spinning threads would take those cores from the decoder (and from other runtimes)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # ORT raises its own exception types for bad files
        raise ValueError(f"{path} is not a model ONNX Runtime can load: {err}") from None


class OnnxNetwork:
    """An ONNX Runtime session as a :class:`~gateshift.inference.network.Network`: float32
    ``(B, T, C, H, W)`` clips -> ``(B, classes)`` float32 logits on the CPU."""

    def __init__(self, path: str | Path, *, threads: int | None = None) -> None:
        self.session = ort_session(path, threads)
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, clips: Tensor, /) -> Tensor:
        feed = {self.input_name: clips.detach().to("cpu", torch.float32).contiguous().numpy()}
        (logits,) = self.session.run(None, feed)
        return torch.from_numpy(np.asarray(logits))


@dataclass
class ExportedModel:
    """An exported model and what came with it: the same fields predict reads from a bundle."""

    path: Path
    network: Network
    model_name: str
    num_segments: int
    classes: list[list[str]]
    input_spec: InputSpec
    sampling: dict[str, Any]
    views: Views
    meta: dict[str, Any]


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The ``gateshift`` metadata of an ``.onnx`` file; a clear error for a corrupt file or one
    that gateshift did not write."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no ONNX file {path}")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # protobuf's DecodeError and friends
        raise ValueError(f"{path} is not a readable ONNX file: {err}") from None
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in props:
        raise ValueError(
            f"{path} was not exported by gateshift (no '{METADATA_KEY}' metadata): its labels, "
            "input spec and sampling are unknown; export it with `gateshift export RUN`"
        )
    try:
        meta: dict[str, Any] = json.loads(props[METADATA_KEY])
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: its gateshift metadata is not JSON: {err}") from None
    return meta


def runtime_network(
    path: str | Path,
    runtime: str = "onnxruntime",
    *,
    threads: int | None = None,
    dtype: torch.dtype | None = None,
    precision: str | None = None,
) -> Network:
    """The file's network on ``runtime`` (one of :data:`RUNTIMES`). ``dtype`` (an autocast
    precision) only OpenVINO takes (bf16); ONNX Runtime runs the precision the file holds.
    ``precision`` is the file's stored precision when the caller has read its metadata already
    (else it is read here, for OpenVINO, which refuses int8 files)."""
    if runtime == "onnxruntime":
        if dtype is not None:
            raise ValueError(
                "the onnxruntime backend runs the precision the file was exported in; autocast "
                "precisions (eval.precision, train.precision) are for the torch and openvino "
                "backends"
            )
        return OnnxNetwork(path, threads=threads)
    if runtime == "openvino":
        from gateshift.inference.openvino_runtime import OpenVinoNetwork

        if (precision or _stored_precision(path)) == "int8":
            raise ValueError(
                f"{path} is an int8 export, which OpenVINO does not run faithfully (on the demo "
                "run it agreed with PyTorch on 36% of the top-1 classes, ONNX Runtime on 100%): "
                "run it with --backend onnxruntime, or give OpenVINO the fp32 export (--precision "
                "bf16 for speed)"
            )
        return OpenVinoNetwork(path, threads=threads, dtype=dtype)
    raise ValueError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")


def _stored_precision(path: str | Path) -> str | None:
    """The precision a gateshift export records in its metadata (None: not a gateshift file, or
    one from before precisions were recorded)."""
    try:
        return str(read_metadata(path).get("precision", "fp32"))
    except (ValueError, FileNotFoundError):
        return None  # the runtime itself names what is wrong with the file


def load_onnx(
    path: str | Path,
    *,
    threads: int | None = None,
    runtime: str = "onnxruntime",
    dtype: torch.dtype | None = None,
) -> ExportedModel:
    """An exported model, ready to run on ``runtime``, from the ``.onnx`` file alone."""
    path = Path(path)
    meta = read_metadata(path)
    if "stream" in meta:
        raise ValueError(
            f"{path} is a streaming export (one frame and its state per call), not a clip "
            "model: run it with `gateshift stream RUN --backend onnxruntime --onnx FILE`, or "
            "export the clip model with `gateshift export RUN`"
        )
    try:
        exported = ExportedModel(
            path=path,
            # the metadata is read once: the runtime is told the stored precision
            network=runtime_network(
                path,
                runtime,
                threads=threads,
                dtype=dtype,
                precision=str(meta.get("precision", "fp32")),
            ),
            model_name=str(meta["model"]),
            num_segments=int(meta["num_segments"]),
            classes=[list(names) for names in meta["classes"]],
            input_spec=InputSpec.from_dict(meta["input_spec"]),
            sampling=dict(meta["sampling"]),
            views=Views(**meta["views"]),
            meta=meta,
        )
    except (KeyError, TypeError) as err:
        raise ValueError(f"{path}: incomplete gateshift metadata ({err})") from None
    return exported

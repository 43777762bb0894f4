"""An exported ``.onnx`` model run by OpenVINO, behind the same :class:`.Network` call.

Why OpenVINO: it is Intel's maintained runtime for its CPUs and reads ONNX files directly
(no conversion step, no second file), picking kernels for the instruction sets the CPU has
(AVX-512, VNNI, AMX). The same exported file and its metadata serve both runtimes, so predict
and evaluate only swap the network. OpenVINO is imported lazily: it is an optional dependency
(``pip install 'gateshift[openvino]'``).

Precision: on CPUs with bf16 instructions OpenVINO would by default run an fp32 file in bf16;
here it runs in the precision asked for (``f32`` unless the caller passes ``torch.bfloat16``),
so that ``--backend openvino`` gives the exported model's fp32 logits unless told otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor


def import_openvino() -> Any:
    """The ``openvino`` module, or an error saying how to install it."""
    try:
        import openvino
    except ImportError as err:
        raise ValueError(
            "the openvino backend needs OpenVINO: pip install 'gateshift[openvino]'"
        ) from err
    return openvino


class OpenVinoNetwork:
    """An OpenVINO model compiled for the CPU as a :class:`~gateshift.inference.network.Network`:
    float32 ``(B, T, C, H, W)`` clips -> ``(B, classes)`` float32 logits.

    ``dtype`` is the inference precision: None (float32) or ``torch.bfloat16`` (AMX /
    AVX512-BF16 CPUs). The batch axis stays dynamic, as exported.
    """

    def __init__(
        self, path: str | Path, *, threads: int | None = None, dtype: torch.dtype | None = None
    ) -> None:
        ov = import_openvino()
        if dtype not in (None, torch.float32, torch.bfloat16):
            raise ValueError(f"the openvino backend runs fp32 or bf16 on the CPU, not {dtype}")
        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": "bf16" if dtype == torch.bfloat16 else "f32",
            "PERFORMANCE_HINT": "LATENCY",
        }
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        core = ov.Core()
        try:
            self.compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        except Exception as err:  # OpenVINO raises RuntimeError subclasses for bad files
            raise ValueError(f"{path} is not a model OpenVINO can load: {err}") from None
        self.request = self.compiled.create_infer_request()

    def __call__(self, clips: Tensor, /) -> Tensor:
        feed = clips.detach().to("cpu", torch.float32).contiguous().numpy()
        result = self.request.infer([feed])
        return torch.from_numpy(np.array(result[self.compiled.output(0)]))

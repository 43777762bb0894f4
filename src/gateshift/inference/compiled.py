"""Running a model through ``torch.compile``: ``train.compile`` and ``--compile`` of evaluate and
predict.

:func:`compile_model` returns a compiled wrapper and leaves the module itself alone, so the
callers keep saving, loading and inspecting the plain module: a checkpoint's keys never get the
wrapper's ``_orig_mod.`` prefix. Under compilation GSM and GSF take their plain-op path
(:func:`gateshift.models.temporal.gsm.choose_path` sees ``torch.compiler.is_compiling()``), so
the training path's custom autograd function, the native C++ kernels and the inference caches
are bypassed and the whole model is one graph (tests/inference/test_compiled.py compiles the
GSM, GSF and TSM models with ``fullgraph=True``).

The backend is inductor (generated C++ on CPU, Triton on GPUs) unless the environment variable
``GATESHIFT_COMPILE_BACKEND`` names another (``aot_eager``: the same graph capture and autograd
without code generation, to check a model compiles without waiting for inductor). When it pays
is measured in ``benchmarks/compile.py``: compilation takes tens of seconds to minutes on a CPU
before the first batch runs.
"""

from __future__ import annotations

import logging
import os
from typing import cast

import torch
from torch import nn

log = logging.getLogger(__name__)

BACKEND_VARIABLE = "GATESHIFT_COMPILE_BACKEND"


def compile_backend() -> str:
    """The backend ``torch.compile`` is given: ``$GATESHIFT_COMPILE_BACKEND`` or inductor."""
    return os.environ.get(BACKEND_VARIABLE, "").strip() or "inductor"


def compile_model(model: nn.Module, *, what: str) -> nn.Module:
    """``torch.compile(model)`` with the configured backend, logged; ``what`` names the use in
    the log line ("training forward", "evaluation"). Compilation itself happens on the first
    call, and again for each new input shape or mode (train/eval) the wrapper is called with."""
    backend = compile_backend()
    log.info(
        "compiling the %s with torch.compile (backend %s): the first batches wait for it",
        what,
        backend,
    )
    return cast(nn.Module, torch.compile(model, backend=backend))


def check_compilable(backend: str) -> None:
    """Only the torch backend compiles: the other backends run an exported file."""
    if backend != "torch":
        raise ValueError(
            f"--compile (torch.compile) needs --backend torch; backend {backend} runs an "
            "exported file, which its own runtime optimises"
        )

"""Eager PyTorch vs ``torch.compile`` (inductor, default mode) on CPU: when does compiling pay?

    python benchmarks/compile.py [--repeats 10] [--threads 1] [--cases demo_infer r50_gsm_infer]

Cases (``--cases``, default all): the demo-sized model (``resnet18_gsm``, width 24, 8 segments,
56 px, 11 classes, batch 16) for inference and for a training step, and ResNet-50 GSM and TSM
(8 x 224, 174 classes) for batch-1 inference and a batch-2 training step. Inference runs in
eval mode under ``torch.inference_mode``; a training step is forward, cross-entropy, backward
and an SGD step, with only the model compiled (as ``train.compile`` does). Both run fp32 in
channels_last, the memory format ``gateshift train``, ``evaluate`` and ``predict`` use by
default; eager GSM inference takes its native C++ kernels, as it does for users.

Per case: the compile time (the whole first compiled call, what a user waits for before the
first batch; inductor's on-disk cache starts in a fresh temporary folder, so nothing is reused
from an earlier run), then eager and compiled timed in turn within each round after two
warm-up calls each, medians reported; "break-even" is the number of calls after which the time
saved has paid for the compilation ("never": compiled is not faster). The largest relative
difference of the compiled logits from eager's (inference) checks they compute the same thing;
with random weights a ResNet-50's logits are ill-conditioned (eager channels_last vs eager
NCHW already differ by about 1e-2 there).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch._dynamo
import torch._inductor.config as inductor_config
import torch.nn.functional as F
from _machine import cpu_name  # benchmarks/_machine.py (scripts run from benchmarks/)
from torch import Tensor, nn

from gateshift import create_model
from gateshift.models.temporal import GateShift


@dataclass(frozen=True)
class Case:
    model: str
    mode: str  # infer or train
    batch: int
    size: int
    num_classes: int
    width: int = 64


CASES = {
    "demo_infer": Case("resnet18_gsm", "infer", 16, 56, 11, width=24),
    "demo_train": Case("resnet18_gsm", "train", 16, 56, 11, width=24),
    "r50_gsm_infer": Case("resnet50_gsm", "infer", 1, 224, 174),
    "r50_tsm_infer": Case("resnet50_tsm", "infer", 1, 224, 174),
    "r50_gsm_train": Case("resnet50_gsm", "train", 2, 224, 174),
    "r50_tsm_train": Case("resnet50_tsm", "train", 2, 224, 174),
}
SEGMENTS = 8


def build(case: Case) -> nn.Module:
    """The case's model with random (non-zero) GSM gates, in channels_last."""
    torch.manual_seed(0)
    model = create_model(
        case.model, num_classes=case.num_classes, num_segments=SEGMENTS, width=case.width
    )
    for module in model.modules():
        if isinstance(module, GateShift):  # the published init is zero: a fixed permutation
            for p in module.conv3D.parameters():
                p.data = torch.randn_like(p) * 0.05
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.dim() == 4:  # Module.to(memory_format=...) refuses the gate's 5-D weight
            tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)
    return model


def step_fn(
    model: nn.Module, net: Callable[[Tensor], Tensor], case: Case, clips: Tensor
) -> Callable[[], Tensor]:
    """One call of the case: ``net`` (the model itself or its compiled wrapper) on ``clips``."""
    if case.mode == "infer":

        def infer() -> Tensor:
            with torch.inference_mode():
                out: Tensor = net(clips)
            return out

        return infer
    labels = torch.arange(case.batch) % case.num_classes
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6, momentum=0.9)

    def train() -> Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(clips), labels)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return train


def measure(case: Case, repeats: int) -> dict[str, float]:
    # forget the earlier cases' graphs: compiled again with other shapes, dynamo would make the
    # shapes symbolic (a user's process compiles one model, with static shapes first)
    torch._dynamo.reset()
    model = build(case)
    model.train(case.mode == "train")
    clips = torch.randn(case.batch, SEGMENTS, 3, case.size, case.size)
    eager = step_fn(model, model, case, clips)
    compiled = step_fn(model, torch.compile(model), case, clips)
    reference = eager()
    start = time.perf_counter()
    first = compiled()
    compile_s = time.perf_counter() - start
    diff = float("nan")
    if case.mode == "infer":
        diff = float((first - reference).abs().max() / reference.abs().max())
    for fn in (eager, compiled):
        for _ in range(2):
            fn()
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    for _ in range(repeats):
        for key, fn in (("eager", eager), ("compiled", compiled)):
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return {
        "eager": statistics.median(times["eager"]),
        "compiled": statistics.median(times["compiled"]),
        "compile": compile_s,
        "diff": diff,
    }


def describe(case: Case) -> str:
    what = "inference" if case.mode == "infer" else "train step"
    width = f" w{case.width}" if case.width != 64 else ""
    return f"{case.model}{width} {SEGMENTS}x{case.size}, batch {case.batch}, {what}"


HEADER = (
    "| case | eager s | compiled s | speed-up | compile s | break-even calls | max rel diff |\n"
    "|---|---|---|---|---|---|---|"
)


def table_row(name: str, r: dict[str, float]) -> str:
    saved = r["eager"] - r["compiled"]
    even = f"{r['compile'] / saved:.0f}" if saved > 0 else "never"
    diff = "-" if math.isnan(r["diff"]) else f"{r['diff']:.1e}"
    return (
        f"| {describe(CASES[name])} | {r['eager']:.3f} | {r['compiled']:.3f} | "
        f"{r['eager'] / r['compiled']:.2f}x | {r['compile']:.0f} | {even} | {diff} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument(
        "--freezing",
        action="store_true",
        help="inductor's freezing (weights folded as constants: inference only, not the default)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.freezing:
        inductor_config.freezing = True
    # a cold compile: inductor's on-disk cache starts empty (unless the caller sets one)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="inductor_"))
    frozen = ", inductor freezing" if args.freezing else ""
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu_name()}{frozen}")
    print(HEADER, flush=True)  # a row as each case is done: the ResNet-50 ones take minutes
    for name in args.cases:
        print(table_row(name, measure(CASES[name], args.repeats)), flush=True)


if __name__ == "__main__":
    main()

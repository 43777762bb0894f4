"""Inference latency of an exported GSM: PyTorch against ONNX Runtime on CPU, in one run.

    python benchmarks/export_runtime.py [--repeats 15] [--models bninception_gsm mobilenetv2_gsm]

Batch 1, 8 frames at 224, 174 classes, random weights with a non-zero gate. Rows: PyTorch fp32
channels_last (the default inference path, native kernels on), PyTorch bf16 autocast
channels_last, ONNX Runtime fp32 (the file ``gateshift export`` writes, same threads). The
backends are timed in turn within every round (round-robin), so drifts of the machine hit all
alike; the table gives medians and the ratio to PyTorch fp32. The parity line under each model
is what export checks: max relative logit error and top-1 agreement of ORT against PyTorch.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from gateshift.deploy.export import export_checked, random_clips
from gateshift.inference.onnx_runtime import OnnxNetwork
from gateshift.models import create_model
from gateshift.models.recognizer import Recognizer


def live_model(name: str) -> Recognizer:
    torch.manual_seed(0)
    model = create_model(name, num_classes=174, num_segments=8).eval()
    with torch.no_grad():
        for module in model.modules():
            if hasattr(module, "conv3D"):
                torch.nn.init.normal_(module.conv3D.weight, std=0.01)
    return model


def timers(model: Recognizer, path: Path, threads: int) -> dict[str, Callable[[], object]]:
    clip = random_clips(model, 1, seed=1)
    fast = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    ort = OnnxNetwork(path, threads=threads)

    def torch_fp32() -> object:
        with torch.inference_mode():
            return fast(clip)

    def torch_bf16() -> object:
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16):
            return fast(clip)

    return {
        "PyTorch fp32 channels_last": torch_fp32,
        "PyTorch bf16 channels_last": torch_bf16,
        "ONNX Runtime fp32": lambda: ort(clip),
    }


def round_robin(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    for fn in fns.values():  # warm-up
        fn()
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["bninception_gsm", "mobilenetv2_gsm"])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None, help="default: torch's")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads, batch 1, 8x224, median of {args.repeats}")
    print("| model | backend | seconds | vs PyTorch fp32 |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            model = live_model(name)
            report = export_checked(model, Path(tmp) / f"{name}.onnx", clips=random_clips(model, 4))
            medians = round_robin(timers(model, Path(report.path), threads), args.repeats)
            base = medians["PyTorch fp32 channels_last"]
            for backend, seconds in medians.items():
                print(f"| {name} | {backend} | {seconds:.4f} | {seconds / base:.2f}x |")
            print(
                f"| {name} | parity (ORT vs PyTorch, 4 random clips) | max rel. error "
                f"{report.max_rel_error:.1e} | top-1 {100 * report.top1_agreement:.0f}% |"
            )


if __name__ == "__main__":
    main()

"""Inference latency of an exported GSM: PyTorch against ONNX Runtime and OpenVINO on CPU.

    python benchmarks/export_runtime.py [--repeats 15] [--models bninception_gsm mobilenetv2_gsm]

Batch 1, 8 frames at 224, 174 classes, random weights with a non-zero gate and BN statistics
from one batch of random clips. Rows: PyTorch fp32 channels_last (native kernels on), PyTorch
bf16 autocast channels_last, both again with the batch norms folded into the convolutions
feeding them (``gateshift.inference.fold``: what ``predict`` runs), ONNX Runtime fp32 (the file
``gateshift export`` writes, same threads), ONNX Runtime int8 (``--precision int8``, calibrated
on 16 random clips: what counts here is its speed; its agreement on real clips is measured on a
trained run, see the README), and OpenVINO fp32 / bf16 on the fp32 file (when installed). The
backends are timed in turn within every round (round-robin), so drifts of the machine hit all
alike; the table gives medians and the ratio to PyTorch fp32. The parity lines under each model
are what export checks: max relative logit error and top-1 agreement against PyTorch fp32.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from gateshift.deploy.export import export_checked, random_clips
from gateshift.inference.fold import fold_batchnorm
from gateshift.inference.onnx_runtime import runtime_network
from gateshift.models import create_model
from gateshift.models.recognizer import Recognizer


def live_model(name: str) -> Recognizer:
    torch.manual_seed(0)
    model = create_model(name, num_classes=174, num_segments=8)
    with torch.no_grad():
        for module in model.modules():
            if hasattr(module, "conv3D"):
                torch.nn.init.normal_(module.conv3D.weight, std=0.01)
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.reset_running_stats()
                module.momentum = None  # one batch gives its exact statistics
        model.train()(random_clips(model, 2, seed=3))
    return model.eval()


def has_openvino() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def torch_call(model: Recognizer, clip: torch.Tensor, *, bf16: bool) -> Callable[[], object]:
    def call() -> object:
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            return model(clip)

    return call


def timers(
    model: Recognizer, fp32: Path, int8: Path, threads: int
) -> dict[str, Callable[[], object]]:
    clip = random_clips(model, 1, seed=1)
    fast = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    folded = copy.deepcopy(fast)
    fold_batchnorm(folded, clip=clip)
    ort = runtime_network(fp32, threads=threads)
    ort8 = runtime_network(int8, threads=threads)

    fns: dict[str, Callable[[], object]] = {
        "PyTorch fp32 channels_last": torch_call(fast, clip, bf16=False),
        "PyTorch bf16 channels_last": torch_call(fast, clip, bf16=True),
        "PyTorch fp32 channels_last, BN folded": torch_call(folded, clip, bf16=False),
        "PyTorch bf16 channels_last, BN folded": torch_call(folded, clip, bf16=True),
        "ONNX Runtime fp32": lambda: ort(clip),
        "ONNX Runtime int8": lambda: ort8(clip),
    }
    if has_openvino():
        ov = runtime_network(fp32, "openvino", threads=threads)
        ov16 = runtime_network(fp32, "openvino", threads=threads, dtype=torch.bfloat16)
        fns["OpenVINO fp32"] = lambda: ov(clip)
        fns["OpenVINO bf16"] = lambda: ov16(clip)
    return fns


def agreement(
    model: Recognizer, path: Path, runtime: str, clips: torch.Tensor, **kw: object
) -> str:
    """Max relative logit error and top-1 agreement of ``path`` on ``runtime`` vs PyTorch."""
    with torch.inference_mode():
        want = torch.cat([model(c[None]) for c in clips])
    net = runtime_network(path, runtime, **kw)  # type: ignore[arg-type]
    got = torch.cat([net(c[None]) for c in clips])
    err = float(((got - want).abs().amax(1) / want.abs().amax(1)).max())
    top1 = float((got.argmax(1) == want.argmax(1)).float().mean())
    return f"max rel. error {err:.1e} | top-1 {100 * top1:.0f}%"


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
            check = random_clips(model, 4)
            fp32 = Path(tmp) / f"{name}.onnx"
            int8 = Path(tmp) / f"{name}_int8.onnx"
            report = export_checked(model, fp32, clips=check)
            export_checked(
                model,
                int8,
                precision="int8",
                clips=check,
                calibration=random_clips(model, 16, seed=11),
                min_agreement=0.0,  # random weights: the agreement is printed, not required
            )
            medians = round_robin(timers(model, fp32, int8, threads), args.repeats)
            base = medians["PyTorch fp32 channels_last"]
            for backend, seconds in medians.items():
                print(f"| {name} | {backend} | {seconds:.4f} | {seconds / base:.2f}x |")
            print(
                f"| {name} | parity ORT fp32 vs PyTorch, 4 random clips | max rel. error "
                f"{report.max_rel_error:.1e} | top-1 {100 * report.top1_agreement:.0f}% |"
            )
            int8_parity = agreement(model, int8, "onnxruntime", check)
            print(f"| {name} | ORT int8 vs PyTorch fp32 | {int8_parity} |")
            if has_openvino():
                ov_parity = agreement(model, fp32, "openvino", check)
                print(f"| {name} | OpenVINO fp32 vs PyTorch | {ov_parity} |")
                bf16 = agreement(model, fp32, "openvino", check, dtype=torch.bfloat16)
                print(f"| {name} | OpenVINO bf16 vs PyTorch | {bf16} |")


if __name__ == "__main__":
    main()

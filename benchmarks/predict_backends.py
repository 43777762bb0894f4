"""End-to-end ``predict`` throughput per backend: decode + preprocess + network, videos/s.

    python benchmarks/predict_backends.py RUN [--videos 64] [--repeats 3]

RUN is a trained run folder (``gateshift demo`` writes ``runs/demo_gsm``); the videos are the
first ``--videos`` of its validation split, spread over its classes. The run is exported twice
(fp32 and int8, calibrated on 32 of its training clips) into a temporary folder, then
:func:`gateshift.deploy.predict.predict` classifies the same videos with each backend: torch
(the run's precision and memory format), ONNX Runtime fp32 and int8, OpenVINO fp32 and bf16
(when installed). Backends take turns within every round; the table gives the fastest round
and the top-1 agreement of each backend with the torch backend on these videos.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from gateshift.deploy.export import export_run
from gateshift.deploy.predict import Prediction, predict
from gateshift.inference.bundle import load_bundle_config


def validation_videos(run: Path, count: int) -> list[Path]:
    from gateshift.data.annotations import load_annotations

    cfg = load_bundle_config(run)
    records = load_annotations(
        cfg.data.format, cfg.data.root, cfg.data.val_split, **cfg.data.annotations
    ).records
    step = max(1, len(records) // count)
    return [Path(r.path) for r in records[::step][:count]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--videos", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--min-agreement",
        type=float,
        default=None,
        help="int8 export threshold (default: gateshift export's, 0.98); the agreement is printed",
    )
    args = parser.parse_args()
    videos = validation_videos(args.run, args.videos)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_run(args.run, Path(tmp) / "fp32.onnx")
        int8 = export_run(
            args.run, Path(tmp) / "int8.onnx", precision="int8", min_agreement=args.min_agreement
        )
        print(
            f"exports: fp32 max rel. error {fp32.max_rel_error:.1e}; int8 top-1 agreement "
            f"{100 * int8.top1_agreement:.1f}% with PyTorch fp32 on {int8.clips} "
            f"{int8.source} clips"
        )
        cases: dict[str, dict[str, object]] = {
            "torch": {"backend": "torch"},
            "onnxruntime fp32": {"backend": "onnxruntime", "onnx": fp32.path},
            "onnxruntime int8": {"backend": "onnxruntime", "onnx": int8.path},
        }
        try:
            import openvino  # noqa: F401

            cases["openvino fp32"] = {"backend": "openvino", "onnx": fp32.path}
            cases["openvino bf16"] = {"backend": "openvino", "onnx": fp32.path, "precision": "bf16"}
        except ImportError:
            pass
        best = {name: float("inf") for name in cases}
        outputs: dict[str, list[Prediction]] = {}
        for kw in cases.values():  # warm-up: sessions, native kernels, page cache
            predict(args.run, videos[:2], **kw)  # type: ignore[arg-type]
        for _ in range(args.repeats):
            for name, kw in cases.items():
                start = time.perf_counter()
                outputs[name] = predict(args.run, videos, **kw)  # type: ignore[arg-type]
                best[name] = min(best[name], time.perf_counter() - start)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {len(videos)} videos")
    print("| backend | videos/s | vs torch | top-1 agreement with torch |")
    print("|---|---|---|---|")
    reference = [p.top[0][0][0] if p.top else None for p in outputs["torch"]]
    for name, seconds in best.items():
        tops = [p.top[0][0][0] if p.top else None for p in outputs[name]]
        agree = sum(a == b for a, b in zip(tops, reference, strict=True)) / len(reference)
        speed = len(videos) / seconds
        print(f"| {name} | {speed:.1f} | {best['torch'] / seconds:.2f}x | {100 * agree:.1f}% |")


if __name__ == "__main__":
    main()

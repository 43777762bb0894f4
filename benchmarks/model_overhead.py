"""What GSM costs over TSN (and TSM) on CPU: parameters, FLOPs, inference and train-step time.

    python benchmarks/model_overhead.py [--repeats 10] [--backbones bninception resnet50]
        [--kinds tsn tsm gsm ...] [--columns "train NCHW" "train CL" ...] [--no-accuracy]

8 frames at 224, batch 1 for inference and batch 2 for a training step (forward, cross-entropy,
backward, SGD step), 174 classes (Something-Something). Every model of a backbone is timed in
turn within each round (round-robin), so slow drifts of the machine hit all of them alike;
the first table shows medians over the rounds, the second the difference to TSN of the fastest
round (the estimate least touched by the rest of the host).

Rows: TSN (no temporal module), TSM, our GSM, our GSM with its fused C++ kernels off
(``GATESHIFT_NATIVE=0``: the same maths as eager PyTorch ops; in training the kernels run only
the gated shift's forward and backward where there is no interleave), and a straightforward GSM
written the way the published definition reads (:class:`StraightforwardGSM`: a contiguous
``(N, C, T, H, W)`` copy, BatchNorm3d, grouped ``Conv3d``, ``torch.cat`` shifts, a copy back to
frames), which is what the released code does. Columns: fp32 in NCHW, fp32 in channels_last,
bf16 autocast in channels_last, training step in fp32 (NCHW and channels_last).

Checks printed below the table, for GSM BN-Inception with a random (non-zero) gate: the
largest relative difference of channels_last fp32 logits from NCHW fp32, and how often bf16
and fp32 agree on the top-1 class over clips of the embedded dataset (64 px videos resized to
224; the weights are random, no ImageNet weights can be downloaded here).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from _machine import cpu_name  # benchmarks/_machine.py (scripts run from benchmarks/)
from torch import Tensor, nn

from gateshift import create_model
from gateshift.engine.allocator import keep_freed_memory
from gateshift.inference.profile import count_flops, count_params
from gateshift.models.temporal.gsm import GateShift

# The authors' released GSM / TSN BN-Inception, measured on this kind of 2-core machine (issue 2)
RELEASED = {"gsm_infer": 0.318, "tsn_infer": 0.300, "gsm_train": 1.69, "tsn_train": 1.42}


class StraightforwardGSM(nn.Module):
    """GSM as the definition reads, with the same maths as :class:`GateShift` (for timing)."""

    def __init__(self, channels: int, num_segments: int) -> None:
        super().__init__()
        self.num_segments = num_segments
        self.bn = nn.BatchNorm3d(channels)
        self.conv = nn.Conv3d(channels, 2, 3, padding=1, groups=2)
        nn.init.normal_(self.conv.weight, std=0.01)

    @staticmethod
    def _interleave(z: Tensor) -> Tensor:
        n, c, t, h, w = z.shape  # a half: (N, C/2, T, H, W)
        return z.view(n, 2, c // 2, t, h, w).transpose(1, 2).reshape(n, c, t, h, w)

    def forward(self, x: Tensor) -> Tensor:
        nt, c, h, w = x.shape
        t = self.num_segments
        x5 = x.view(nt // t, t, c, h, w).permute(0, 2, 1, 3, 4).contiguous()  # (N, C, T, H, W)
        gate = torch.tanh(self.conv(F.relu(self.bn(x5))))  # (N, 2, T, H, W)
        x1, x2 = x5.chunk(2, dim=1)
        y1, y2 = gate[:, :1] * x1, gate[:, 1:] * x2
        r1, r2 = x1 - y1, x2 - y2
        pad = torch.zeros_like(y1[:, :, :1])
        s1 = torch.cat((y1[:, :, 1:], pad), dim=2)  # half 1 takes the next frame
        s2 = torch.cat((pad, y2[:, :, :-1]), dim=2)  # half 2 the previous one
        z = torch.cat((self._interleave(s1 + r1), self._interleave(s2 + r2)), dim=1)
        return z.permute(0, 2, 1, 3, 4).contiguous().view(nt, c, h, w)  # back to frames


def straightforward(model: nn.Module) -> nn.Module:
    """Replace every GateShift of ``model`` by a StraightforwardGSM (in place)."""
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, GateShift):
                slow = StraightforwardGSM(child.channels, child.num_segments)
                setattr(module, child_name, slow)
    return model


def randomise_gates(model: nn.Module) -> nn.Module:
    """A non-zero gate (the published init is zero, which makes GSM a fixed permutation)."""
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, GateShift):
            for p in module.conv3D.parameters():
                p.data = torch.randn(p.shape, generator=generator) * 0.05
    return model


def build(backbone: str, kind: str) -> nn.Module:
    temporal = "gsm" if kind.startswith("gsm") else kind
    model = create_model(f"{backbone}_{temporal}", num_classes=174, num_segments=8)
    if kind == "gsm_straightforward":
        straightforward(model)
    return randomise_gates(model)


def timers(model: nn.Module, channels_last: bool, bf16: bool) -> dict[str, Callable[[], None]]:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.dim() == 4:  # what Module.to(memory_format=...) does, minus its refusal of 5-D
            tensor.data = tensor.data.contiguous(memory_format=fmt)
    clip = torch.randn(1, 8, 3, 224, 224)
    pair = torch.randn(2, 8, 3, 224, 224)
    labels = torch.tensor([3, 7])
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6, momentum=0.9)

    def infer() -> None:
        model.eval()
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            model(clip)

    def train() -> None:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(pair), labels).backward()
        optimizer.step()

    return {"infer": infer, "train": train}


def without_kernels(fn: Callable[[], None]) -> Callable[[], None]:
    """``fn`` run with the fused inference kernels switched off."""

    def run() -> None:
        before = os.environ.get("GATESHIFT_NATIVE")
        os.environ["GATESHIFT_NATIVE"] = "0"
        try:
            fn()
        finally:
            if before is None:
                del os.environ["GATESHIFT_NATIVE"]
            else:
                os.environ["GATESHIFT_NATIVE"] = before

    return run


def round_robin(
    fns: dict[str, Callable[[], None]], rounds: int, warmup: int
) -> dict[str, tuple[float, float]]:
    """(median, fastest) seconds of each function, timing them in turn within each round."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for key, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return {k: (statistics.median(v), min(v)) for k, v in times.items()}


KINDS = ["tsn", "tsm", "gsm", "gsm_eager", "gsm_straightforward"]
MODES = {  # column -> (channels_last, bf16, infer or train)
    "fp32 NCHW": (False, False, "infer"),
    "fp32 CL": (True, False, "infer"),
    "bf16 CL": (True, True, "infer"),
    "train NCHW": (False, False, "train"),
    "train CL": (True, False, "train"),
}


def measure_backbone(
    backbone: str, kinds: list[str], repeats: int, columns: list[str]
) -> dict[str, dict[str, float]]:
    start = time.perf_counter()
    models = {k: build(backbone, k) for k in kinds}
    clip = torch.randn(1, 8, 3, 224, 224)
    rows: dict[str, dict[str, float]] = {
        k: {"params": count_params(m), "flops": count_flops(m, clip)} for k, m in models.items()
    }
    for column in columns:
        cl, bf16, what = MODES[column]
        fns = {k: timers(m, cl, bf16)[what] for k, m in models.items()}
        if "gsm_eager" in fns:
            fns["gsm_eager"] = without_kernels(fns["gsm_eager"])
        rounds = repeats
        for k, (median, fastest) in round_robin(fns, rounds, warmup=2).items():
            rows[k][column] = median
            rows[k][f"{column} min"] = fastest
        print(f"  {backbone}: {column} done ({time.perf_counter() - start:.0f} s)", flush=True)
    return rows


def print_table(backbone: str, rows: dict[str, dict[str, float]]) -> None:
    base = rows["tsn"]
    cols = [c for c in MODES if c in base]
    print(f"\n{backbone}, 8x224, 174 classes (seconds; in brackets: vs TSN)")
    print("| model | params | GFLOPs | " + " | ".join(cols) + " |")
    print("|---|---|---|" + "---|" * len(cols))
    for kind, row in rows.items():

        def rel(key: str, row: dict[str, float] = row) -> str:
            return f"{100 * (row[key] / base[key] - 1):+.1f}%"

        cells = [f"{row[c]:.3f} ({rel(c)})" for c in cols]
        params, flops = f"{row['params'] / 1e6:.3f}M ({rel('params')})", row["flops"] / 1e9
        print(f"| {kind} | {params} | {flops:.2f} ({rel('flops')}) | " + " | ".join(cells) + " |")
    # Interference from the rest of the host only ever adds time, so the fastest round is the
    # steadiest estimate of what a model costs; medians above, fastest rounds here.
    print(f"\n{backbone}, difference to TSN of the fastest round per column")
    print("| model | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for kind, row in rows.items():
        if kind != "tsn":
            diffs = [f"{100 * (row[c + ' min'] / base[c + ' min'] - 1):+.1f}%" for c in cols]
            print(f"| {kind} | " + " | ".join(diffs) + " |")


def synthetic_clips(count: int) -> Tensor:
    """``count`` embedded-dataset clips, 8 frames, resized to 224, BGR 0-255 minus Caffe mean."""
    import numpy as np

    from gateshift.data.synthetic import CLASSES, render_clip

    rng = np.random.default_rng(0)
    clips = []
    for i in range(count):
        frames = render_clip(CLASSES[i % len(CLASSES)], rng, size=64, num_frames=16).frames
        x = torch.from_numpy(frames[::2]).permute(0, 3, 1, 2).float()  # (8, 3, 64, 64) RGB
        x = F.interpolate(x, size=224, mode="bilinear", align_corners=False).flip(1)  # BGR
        clips.append(x - torch.tensor([104.0, 117.0, 128.0])[:, None, None])
    return torch.stack(clips)


def accuracy_checks(count: int) -> None:
    model = build("bninception", "gsm").eval()
    clips = synthetic_clips(count)
    with torch.inference_mode():
        ref = torch.cat([model(c[None]) for c in clips])
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        cl = torch.cat([model(c[None]) for c in clips])
        with torch.autocast("cpu", torch.bfloat16):
            bf = torch.cat([model(c[None]) for c in clips]).float()
    rel = ((cl - ref).abs().max() / ref.abs().max()).item()
    agree = (bf.argmax(1) == ref.argmax(1)).float().mean().item()
    bf_rel = ((bf - ref).abs().max() / ref.abs().max()).item()
    print(f"\nGSM BN-Inception, {count} embedded-dataset clips at 224, random weights:")
    print(f"  channels_last fp32 vs NCHW fp32: max relative difference {rel:.1e}")
    print(
        f"  bf16 vs fp32: top-1 agreement {100 * agree:.1f}%, max relative difference {bf_rel:.1e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats", type=int, default=10, help="timed rounds per column (median reported)"
    )
    parser.add_argument("--backbones", nargs="+", default=["bninception", "resnet50"])
    parser.add_argument("--clips", type=int, default=64, help="clips for the bf16 agreement")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default all)")
    parser.add_argument(
        "--kinds", nargs="+", default=KINDS, choices=KINDS, help="models (tsn first)"
    )
    parser.add_argument("--columns", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--no-accuracy", action="store_true", help="skip the fp32/bf16 checks")
    args = parser.parse_args()
    if args.kinds[0] != "tsn":
        parser.error("--kinds must start with tsn (every difference is to TSN)")
    if args.threads:
        torch.set_num_threads(args.threads)
    # what `gateshift train` does: glibc keeps freed memory (benchmarks/allocator.py)
    print(f"allocator: {keep_freed_memory()}")
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu_name()}")
    results = {
        b: measure_backbone(b, args.kinds, args.repeats, args.columns) for b in args.backbones
    }
    for backbone, rows in results.items():
        print_table(backbone, rows)
    if "bninception" in results and "gsm" in args.kinds and len(args.columns) == len(MODES):
        gsm, tsn = results["bninception"]["gsm"], results["bninception"]["tsn"]
        print("\nGSM BN-Inception vs the released code (0.318 s inference, 1.69 s train step):")
        for col in ("fp32 NCHW", "fp32 CL", "bf16 CL"):
            print(
                f"  {col:<10} {gsm[col]:.3f} s = {gsm[col] / RELEASED['gsm_infer']:.2f}x released"
            )
        for col in ("train NCHW", "train CL"):
            print(
                f"  {col:<10} {gsm[col]:.3f} s = {gsm[col] / RELEASED['gsm_train']:.2f}x released"
            )
        print(f"  (TSN ours: {tsn['fp32 NCHW']:.3f} s fp32 NCHW vs released 0.300 s)")
    if not args.no_accuracy:
        accuracy_checks(args.clips)


if __name__ == "__main__":
    main()

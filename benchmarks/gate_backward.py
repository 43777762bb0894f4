"""GSM's training step with the gate's written-out backward against autograd through its sums.

    python benchmarks/gate_backward.py [--rounds 4] [--steps 5] [--threads 1] [--size 56]

The demo's slim ResNet-18 (width 24, 8 frames, batch 16, bf16 autocast, channels_last): forward,
cross-entropy and backward, timed for TSN, for GSM as it trains now (the gate's 27 tap sums in
:class:`gateshift.models.temporal._fast_gate._GateSum`, whose backward is an im2col of the
time-shifted gradient) and for GSM with autograd recording the sums' slice adds (what training
ran before). The three take turns in every round; the table gives each one's fastest round and
its ratio to TSN. No optimiser step, no loader: only the model's share of a training step.
A second table times the gate alone (``gate_from_maps`` forward and backward on the 54 maps of
128 frames, float32) at the sides it has in the demo's stages and at ResNet-50's 56 x 56.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from _machine import cpu_name  # benchmarks/_machine.py (scripts run from benchmarks/)

import gateshift.models.temporal._fast_gate as fast_gate
from gateshift import create_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
    parser.add_argument("--threads", type=int, default=1, help="1: as `gateshift demo` trains")
    parser.add_argument("--size", type=int, default=56, help="frame side (the demo's 56)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    written = fast_gate._GateSum.apply
    recorded = staticmethod(lambda taps, bias: fast_gate._gate_sum(taps, bias))
    models = {}
    for kind in ("tsn", "gsm"):
        net = create_model(f"resnet18_{kind}", num_classes=11, width=24, dropout=0.0)
        models[kind] = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    clips = torch.randn(16, 8, 3, args.size, args.size)
    labels = torch.randint(0, 11, (16,))

    def step(model: torch.nn.Module) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(clips)
        torch.nn.functional.cross_entropy(logits.float(), labels).backward()
        model.zero_grad(set_to_none=True)

    cases: dict[str, tuple[torch.nn.Module, Callable[..., torch.Tensor]]] = {
        "TSN": (models["tsn"], written),
        "GSM, gate sums with their written-out backward (now)": (models["gsm"], written),
        "GSM, autograd through the gate's slice adds (before)": (models["gsm"], recorded),
    }
    print(f"torch {torch.__version__}, {args.threads} thread(s) on {cpu_name()}")
    best: dict[str, float] = {}
    for round_ in range(args.rounds):
        for name, (model, apply) in cases.items():
            fast_gate._GateSum.apply = apply  # type: ignore[method-assign]
            for _ in range(2):
                step(model)
            start = time.perf_counter()
            for _ in range(args.steps):
                step(model)
            seconds = (time.perf_counter() - start) / args.steps
            best[name] = min(best.get(name, float("inf")), seconds)
            print(f"round {round_ + 1}: {name}: {1000 * seconds:.0f} ms", flush=True)
    fast_gate._GateSum.apply = written  # type: ignore[method-assign]
    print(f"\nfastest of {args.rounds} rounds, forward + backward, batch 16 x 8 x {args.size}px")
    print("| model | ms per step | vs TSN |")
    print("|---|---|---|")
    for name, seconds in best.items():
        print(f"| {name} | {1000 * seconds:.0f} | {seconds / best['TSN']:.2f}x |")

    gate_alone(written, recorded, args.rounds)


def gate_alone(
    written: Callable[..., torch.Tensor], recorded: Callable[..., torch.Tensor], rounds: int
) -> None:
    """The gate's own forward and backward, both ways, at several frame sides."""
    print("\nthe gate alone: 54 maps x 128 frames, forward + backward, fastest round")
    print("| side | written-out backward ms | autograd through the adds ms | speed-up |")
    print("|---|---|---|---|")
    for side in (7, 14, 28, 56):
        maps = torch.randn(128, 54, side, side, requires_grad=True)
        bias = torch.zeros(2, requires_grad=True)
        best: dict[str, float] = {}
        for _ in range(rounds):
            for name, apply in (("written", written), ("recorded", recorded)):
                fast_gate._GateSum.apply = apply  # type: ignore[method-assign]
                start = time.perf_counter()
                for _ in range(3):
                    fast_gate.gate_from_maps(maps, bias, 8).sum().backward()
                    maps.grad = None
                best[name] = min(best.get(name, float("inf")), (time.perf_counter() - start) / 3)
        fast_gate._GateSum.apply = written  # type: ignore[method-assign]
        print(
            f"| {side} | {1000 * best['written']:.1f} | {1000 * best['recorded']:.1f} |"
            f" {best['recorded'] / best['written']:.1f}x |"
        )


if __name__ == "__main__":
    main()

"""GSM's gated shift in training: the fused C++ forward and backward against the eager ops.

    python benchmarks/shift_backward.py [--rounds 7] [--threads 2]

The shift's forward and closed-form backward (:class:`GatedShiftFunction`) at the four site
shapes of a ResNet-50 GSM training step (2 clips of 8 frames at 224: 256 channels at 56 x 56,
512 at 28, 1024 at 14, 2048 at 7; no interleave, as in every folded placement), NCHW and
channels_last, float32 and bfloat16. "eager" is the same function with the kernels switched off
(the eager ops run: two passes forward, five backward); "fused" runs one pass each. Both take
turns in every round; the table gives each one's fastest round and the largest difference of
their gradients relative to the largest gradient.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from _machine import cpu_name  # benchmarks/_machine.py (scripts run from benchmarks/)

from gateshift.models.temporal import _native
from gateshift.models.temporal._fast_shift import GatedShiftFunction

SITES = ((256, 56), (512, 28), (1024, 14), (2048, 7))  # ResNet-50's GSM inputs (channels, side)


def _declined(*args: object, **kwargs: object) -> None:
    return None  # what a kernel that cannot take the tensors answers: the eager ops run


def use_kernels(on: bool, forward: Callable[..., object], backward: Callable[..., object]) -> None:
    """Switch the shift's kernels on (the real functions) or off, for this process only."""
    _native.gated_shift = forward if on else _declined  # type: ignore[assignment]
    _native.gated_shift_backward = backward if on else _declined  # type: ignore[assignment]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not _native.available():
        raise SystemExit("the native kernels are off or did not build: nothing to compare")
    fused_forward, fused_backward = _native.gated_shift, _native.gated_shift_backward
    print(f"torch {torch.__version__}, {args.threads} threads on {cpu_name()}")
    print("forward + backward of the gated shift, 16 frames, fastest round")
    print("| channels x side | layout | dtype | eager ms | fused ms | speed-up | gradient diff |")
    print("|---|---|---|---|---|---|---|")
    gen = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.bfloat16):
        for channels_last in (False, True):
            for channels, side in SITES:
                x = torch.randn(16, channels, side, side, generator=gen).to(dtype)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                x.requires_grad_()
                gate = (torch.rand(2, 8, 2, side, side, generator=gen) * 2 - 1).requires_grad_()
                grad = torch.randn(x.shape, generator=gen).to(dtype)
                best: dict[str, float] = {}
                grads: dict[str, tuple[torch.Tensor, ...]] = {}
                for _ in range(args.rounds):
                    for name in ("eager", "fused"):
                        use_kernels(name == "fused", fused_forward, fused_backward)
                        start = time.perf_counter()
                        for _ in range(3):
                            out = GatedShiftFunction.apply(x, gate, 8, False)
                            grads[name] = torch.autograd.grad(out, (x, gate), grad)
                        seconds = (time.perf_counter() - start) / 3
                        best[name] = min(best.get(name, float("inf")), seconds)
                use_kernels(True, fused_forward, fused_backward)
                diff = max(
                    ((a.float() - b.float()).abs().max() / b.float().abs().max()).item()
                    for a, b in zip(grads["fused"], grads["eager"], strict=True)
                )
                layout = "channels_last" if channels_last else "NCHW"
                print(
                    f"| {channels} x {side} | {layout} | {str(dtype).split('.')[1]} |"
                    f" {1000 * best['eager']:.1f} | {1000 * best['fused']:.1f} |"
                    f" {best['eager'] / best['fused']:.2f}x | {diff:.1e} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()

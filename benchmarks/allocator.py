"""Training-step time under glibc malloc, tcmalloc and jemalloc (LD_PRELOAD), side by side.

    python benchmarks/allocator.py [--models resnet50_tsn resnet50_tsm resnet50_gsm demo]
        [--steps 4] [--rounds 3]

PyTorch's CPU allocator asks the C library for every tensor. glibc serves a block above its
mmap threshold (at most 32 MiB on 64-bit Linux) with a fresh ``mmap``, and returns it with
``munmap`` when the tensor dies, so every such tensor is page-faulted in (and the pages zeroed by
the kernel) on every step: a ResNet-50 at 8x224, batch 2, holds its stage-1 activations in
51 MB tensors. tcmalloc and jemalloc keep freed memory for reuse. PyTorch's CPU tuning guide
recommends preloading one of them, and ``torch.backends.xeon.run_cpu`` does it when it finds
one; a library cannot switch allocators from inside a running process, so this benchmark
also times glibc with :func:`gateshift.engine.allocator.keep_freed_memory` (``mallopt``, what
``gateshift train`` does unless ``train.keep_freed_memory=false``). It starts one child process
per allocator and setting (the allocators take turns in every round,
so a drift of the machine's speed hits them alike), each timing ``--steps`` training steps
after two untimed ones. Reported: the fastest round's median step, the process's system CPU
time per step (page faults are system time) and minor page faults per step.

Debian: ``apt-get install libtcmalloc-minimal4 libjemalloc2``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _machine import cpu_name  # benchmarks/_machine.py (scripts run from benchmarks/)

LIBRARY_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib")
ALLOCATORS = {  # name -> (library file, extra environment)
    "tcmalloc": ("libtcmalloc_minimal.so.4", {}),
    # keep freed pages instead of returning them to the system after 10 s (jemalloc's default);
    # torch.backends.xeon.run_cpu's settings (oversize_threshold:1, background_thread:true)
    # still faulted ~42,000 pages a demo step on the AVX2 EPYC, as many as glibc
    "jemalloc": ("libjemalloc.so.2", {"MALLOC_CONF": "dirty_decay_ms:-1,muzzy_decay_ms:-1"}),
}


KEEP_ENV = "_GATESHIFT_BENCH_KEEP"  # the child calls keep_freed_memory()
GLIBC_KEPT = "glibc, mallopt"  # what gateshift train does by default (train.keep_freed_memory)


def find_library(name: str) -> Path | None:
    for folder in LIBRARY_DIRS:
        path = Path(folder) / name
        if path.exists():
            return path
    return None


def child(model_name: str, steps: int) -> dict[str, float]:
    """Time ``steps`` training steps in this process (the allocator is whatever it started with)."""
    import torch
    import torch.nn.functional as F

    from gateshift import create_model
    from gateshift.engine.allocator import keep_freed_memory

    if os.environ.get(KEEP_ENV) == "1":
        assert keep_freed_memory() == "glibc: kept"
    torch.manual_seed(0)
    if model_name == "demo":  # the demo recipe's network and batch (engine.demo.DEMO_SETTINGS)
        from gateshift.data.synthetic import CLASSES
        from gateshift.engine.demo import DEMO_SETTINGS as DEMO

        frames, size, batch = (
            DEMO["model.num_segments"],
            DEMO["data.crop_size"],
            DEMO["train.batch_size"],
        )
        model = create_model(
            "resnet18_gsm", num_classes=len(CLASSES), num_segments=frames, width=DEMO["model.width"]
        )
        clips = torch.randn(batch, frames, 3, size, size)
        labels = torch.randint(0, len(CLASSES), (batch,))
    else:  # model_overhead.py's training column: 2 clips of 8x224, 174 classes
        model = create_model(model_name, num_classes=174, num_segments=8)
        clips, labels = torch.randn(2, 8, 3, 224, 224), torch.tensor([3, 7])
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6, momentum=0.9)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(clips), labels).backward()
        optimizer.step()

    for _ in range(2):
        step()
    times = []
    before = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "step_s": statistics.median(times),
        "sys_s": (after.ru_stime - before.ru_stime) / steps,
        "faults": (after.ru_minflt - before.ru_minflt) / steps,
    }


def run_child(model_name: str, steps: int, allocator: str) -> dict[str, float]:
    env = dict(os.environ)
    if allocator == GLIBC_KEPT:
        env[KEEP_ENV] = "1"
    elif allocator != "glibc":
        library, extra = ALLOCATORS[allocator]
        path = find_library(library)
        assert path is not None
        env["LD_PRELOAD"] = f"{path} {env['LD_PRELOAD']}" if env.get("LD_PRELOAD") else str(path)
        env.update(extra)
    cmd = [sys.executable, __file__, "--child", model_name, "--steps", str(steps)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", default=["resnet50_tsn", "resnet50_tsm", "resnet50_gsm", "demo"]
    )
    parser.add_argument("--steps", type=int, default=4, help="timed steps per child process")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the fastest one counts")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.steps)))
        return
    allocators = ["glibc", GLIBC_KEPT] + [
        a for a, (lib, _) in ALLOCATORS.items() if find_library(lib)
    ]
    missing = sorted(set(ALLOCATORS) - set(allocators))
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads on {cpu_name()}")
    if missing:
        print(f"not found (skipped): {', '.join(missing)}")
    best: dict[tuple[str, str], dict[str, float]] = {}
    for round_ in range(args.rounds):
        for model_name in args.models:
            for allocator in allocators:
                result = run_child(model_name, args.steps, allocator)
                key = (model_name, allocator)
                print(
                    f"round {round_ + 1}: {model_name}, {allocator}: {result['step_s']:.3f} s/step",
                    flush=True,
                )
                if key not in best or result["step_s"] < best[key]["step_s"]:
                    best[key] = result
    print(f"fastest of {args.rounds} rounds, median of {args.steps} steps each")
    print("| model | allocator | s/step | vs glibc | system CPU s/step | minor faults/step |")
    print("|---|---|---|---|---|---|")
    for (model_name, allocator), result in best.items():
        base = best[(model_name, "glibc")]["step_s"]
        print(
            f"| {model_name} | {allocator} | {result['step_s']:.3f} | "
            f"{result['step_s'] / base:.2f}x | {result['sys_s']:.3f} | {result['faults']:.0f} |"
        )


if __name__ == "__main__":
    main()

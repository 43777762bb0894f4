"""The demo's claim on this machine, seed by seed: ``gateshift demo`` for each seed, as a table.

    python benchmarks/demo_seeds.py [--seeds 0 1 2] [--out /tmp/demo_seeds] [--jobs 2]

Runs :func:`gateshift.engine.demo.run_demo` (data generation, both trainings, evaluation,
plots: the whole command) once per seed into ``OUT/seed_<k>`` and prints one markdown row per
seed: GSM and TSN top-1 on the validation split, the weakest GSM class, and the seconds of the
whole command with the data generation and each training's share. The issue's targets (GSM
>= 95%, TSN <= 30%, the whole command <= 300 s on 2 cores) are checked in the last columns; the
accuracy half is also a ``slow`` test (``tests/engine/test_demo.py``), the time only here. Times
depend on the machine and on what else runs: the CPU and the load average are printed.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from gateshift.engine.demo import run_demo


def cpu_name() -> str:
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "?")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="/tmp/demo_seeds", help="parent of the demo folders")
    parser.add_argument("--jobs", type=int, choices=(1, 2), help="as `gateshift demo --jobs`")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = []
    for seed in args.seeds:
        r = run_demo(Path(args.out) / f"seed_{seed}", seed=seed, jobs=args.jobs)
        gsm, tsn = r["gsm"], r["tsn"]
        weakest = min(gsm["per_class"], key=gsm["per_class"].get)
        ok = gsm["top1"] >= 0.95 and tsn["top1"] <= 0.30
        rows.append(
            f"| {seed} | {100 * gsm['top1']:.1f} | {100 * tsn['top1']:.1f} | "
            f"{weakest} {100 * gsm['per_class'][weakest]:.0f} | {r['seconds']:.0f} | "
            f"{r['data_seconds']:.0f} | {gsm['train_seconds']:.0f} | {tsn['train_seconds']:.0f} | "
            f"{'yes' if ok else 'no'} | {'yes' if r['seconds'] <= 300 else 'no'} |"
        )
        print(rows[-1], flush=True)
    print(f"\n{cpu_name()}, {os.cpu_count()} cores, jobs={args.jobs or 'default'}")
    print(
        "| seed | GSM top-1 % | TSN top-1 % | weakest GSM class % | whole command s | data s "
        "| GSM train s | TSN train s | accuracy targets | <= 300 s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()

"""Process-group set-up for ``torchrun`` and the few collectives the engine needs.

Started plainly, a run is one process. Started by ``torchrun`` (which sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``PORT``; multi-node with its own ``--nnodes``
and ``--rdzv-*`` arguments), every process joins one group: NCCL when it drives a GPU, gloo on
CPU. Each process then trains on its shard of every epoch and DistributedDataParallel averages
gradients, so N processes with batch B compute the gradient of one global batch of N*B clips.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from gateshift.inference.device import resolve_device


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device_preference: str) -> DistContext:
    """Join the torchrun process group if there is one; return this process's context."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_preference, local_rank)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, device=device)


def shutdown() -> None:
    """Leave the process group.

    Objects that still hold the group (a DistributedDataParallel reducer left in a reference
    cycle) are collected first: a gloo group freed later, during interpreter finalisation,
    aborts the process (SIGABRT, "terminate called without an active exception"), which
    torchrun reports as a failure after a run that finished.
    """
    if dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()
        gc.collect()


def all_reduce_sum(value: Tensor, ctx: DistContext) -> Tensor:
    """Sum over processes (returns ``value`` unchanged when alone)."""
    if ctx.distributed:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def all_gather_cat(value: Tensor, ctx: DistContext) -> Tensor:
    """Concatenate every process's ``value`` along dim 0 (sizes may differ between processes)."""
    if not ctx.distributed:
        return value
    size = torch.tensor([value.shape[0]], device=value.device)
    sizes = [torch.zeros_like(size) for _ in range(ctx.world_size)]
    dist.all_gather(sizes, size)
    longest = int(max(s.item() for s in sizes))
    padded = value.new_zeros((longest, *value.shape[1:]))
    padded[: value.shape[0]] = value
    gathered = [torch.zeros_like(padded) for _ in range(ctx.world_size)]
    dist.all_gather(gathered, padded)
    return torch.cat([g[: int(s.item())] for g, s in zip(gathered, sizes, strict=True)])


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()

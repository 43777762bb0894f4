"""Two gloo processes compute the same gradients as one process over the same global batch."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

import gateshift
from gateshift.engine.distributed import all_gather_cat, init_distributed, shutdown
from gateshift.engine.train import head_loss


def _model() -> gateshift.models.Recognizer:
    torch.manual_seed(0)
    model = gateshift.create_model(
        "resnet18_gsm", num_classes=5, num_segments=2, width=8, dropout=0.0
    )
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.eval()  # batch statistics would differ per process; weights and grads do not
    return model


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(4, 2, 3, 32, 32, generator=gen), torch.randint(0, 5, (4, 1), generator=gen)


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))  # fmt: skip
    torch.set_num_threads(1)
    ctx = init_distributed("cpu")
    assert dist.get_backend() == "gloo"
    model = DistributedDataParallel(_model())
    clips, labels = _batch()
    share = slice(2 * rank, 2 * rank + 2)  # each process gets half of the global batch
    head_loss(model(clips[share]), labels[share], (5,)).backward()
    gathered = all_gather_cat(torch.arange(3 + rank).float(), ctx)  # shares of different sizes
    if rank == 0:
        grads = {n: p.grad for n, p in model.module.named_parameters()}
        torch.save({"grads": grads, "gathered": gathered}, out)
    del model  # DDP holds the process group; see shutdown()
    shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ddp_gradients_equal_single_process_gradients(tmp_path: Path) -> None:
    out = tmp_path / "ddp.pt"
    mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=2, join=True)
    result = torch.load(out, weights_only=True)
    model = _model()
    clips, labels = _batch()
    head_loss(model(clips), labels, (5,)).backward()
    for name, param in model.named_parameters():
        torch.testing.assert_close(
            result["grads"][name], param.grad, rtol=1e-4, atol=1e-6, msg=name
        )
    assert result["gathered"].tolist() == [0.0, 1.0, 2.0, 0.0, 1.0, 2.0, 3.0]

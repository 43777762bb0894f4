"""The network callable, eval mode around it, and a split scored through any Network."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from gateshift.data.datasets import Batch
from gateshift.engine.distributed import DistContext
from gateshift.engine.scores import collect_scores
from gateshift.inference.network import TorchNetwork, eval_mode


def test_eval_mode_restores_the_mode_even_after_an_error() -> None:
    model = nn.Sequential(nn.Dropout(0.5)).train()
    with eval_mode(model):
        assert not model.training
    assert model.training
    with pytest.raises(RuntimeError), eval_mode(model):
        raise RuntimeError("boom")
    assert model.training
    model.eval()
    with eval_mode(model):
        pass
    assert not model.training  # a model in eval stays in eval


def test_a_split_is_scored_through_any_network_callable() -> None:
    """collect_scores needs only (B, T, C, H, W) -> logits: another runtime slots in."""
    calls: list[tuple[int, ...]] = []

    def network(clips: Tensor) -> Tensor:  # logits: the mean of each view, and its negative
        calls.append(tuple(clips.shape))
        m = clips.mean(dim=(1, 2, 3, 4))
        return torch.stack((m, -m), dim=1)

    clips = torch.arange(2 * 3 * 2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 3, 2, 2)
    batches = [
        Batch(clips[1:], torch.tensor([[1]]), torch.tensor([1])),
        Batch(clips[:1], torch.tensor([[0]]), torch.tensor([0]), bad=[("x.mp4", "truncated")]),
    ]
    ctx = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    scores = collect_scores(network, batches, ctx=ctx, progress=False)
    want = clips.mean(dim=(2, 3, 4, 5))  # (N, K) view means; the score is their mean
    torch.testing.assert_close(scores.scores[:, 0], want.mean(1))
    torch.testing.assert_close(scores.scores[:, 1], -want.mean(1))
    assert scores.indices.tolist() == [0, 1]  # ordered by dataset index
    assert scores.labels.tolist() == [[0], [1]] and scores.bad == [("x.mp4", "truncated")]
    assert calls == [(3, 2, 3, 2, 2), (3, 2, 3, 2, 2)]  # the K views of each video at once


def test_torch_network_moves_clips_and_keeps_the_model_mode() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 2)).train()
    network = TorchNetwork(model, torch.device("cpu"))
    out = network(torch.ones(3, 1, 3, 2, 2, dtype=torch.float32))
    assert out.shape == (3, 2) and model.training  # mode is the caller's (eval_mode)

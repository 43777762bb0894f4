"""View scoring: logits averaged over each video's K views, in chunks; top-k classes."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from gateshift.inference.network import TorchNetwork
from gateshift.inference.scoring import score_views, top_classes


def _network() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(2 * 3 * 4 * 4, 5)).eval()  # (B, T=2, 3, 4, 4)


class Recording:
    """A network that notes the batch size of every call."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.batches: list[int] = []

    def __call__(self, clips: Tensor) -> Tensor:
        self.batches.append(clips.shape[0])
        return self.model(clips)


@pytest.mark.parametrize("max_frames", [1, 12, 18, 10_000])
def test_mean_logits_over_views_in_chunks_of_whole_videos(max_frames: int) -> None:
    model = _network()
    clips = torch.randn(5, 3, 2, 3, 4, 4)  # (N=5 videos, K=3 views, T=2, C, H, W)
    with torch.no_grad():
        per_view = model(clips.flatten(0, 1)).view(5, 3, 5)  # unchunked, every view at once
    net = Recording(model)
    got = score_views(net, clips, max_frames=max_frames)
    torch.testing.assert_close(got, per_view.mean(1))
    assert not torch.allclose(got, per_view[:, 0])  # the views really differ: a mean was taken
    per_call = max(1, max_frames // (3 * 2))  # whole videos of K*T = 6 frames a call
    assert all(b % 3 == 0 and b <= 3 * per_call for b in net.batches)
    assert sum(net.batches) == 15 and len(net.batches) == -(-5 // per_call)


def test_scores_are_float32_on_the_cpu_whatever_the_network_returns() -> None:
    clips = torch.randn(2, 1, 2, 3, 4, 4)
    got = score_views(lambda x: torch.ones(x.shape[0], 4, dtype=torch.bfloat16), clips)
    assert got.dtype == torch.float32 and got.device.type == "cpu" and got.shape == (2, 4)


def test_torch_network_runs_under_the_requested_autocast() -> None:
    model, x = _network(), torch.randn(2, 2, 3, 4, 4)
    with torch.no_grad():
        plain = TorchNetwork(model, torch.device("cpu"))(x)
        bf16 = TorchNetwork(model, torch.device("cpu"), torch.bfloat16)(x)
    assert plain.dtype == torch.float32 and bf16.dtype == torch.bfloat16
    torch.testing.assert_close(bf16.float(), plain, rtol=0.05, atol=0.05)


def test_top_classes_per_label_set() -> None:
    logits = torch.tensor([0.0, 2.0, 1.0, 5.0, -1.0])  # verbs a, b, c; nouns x, y
    top = top_classes(logits, [["a", "b", "c"], ["x", "y"]], 2)
    assert [[(n, i) for n, i, _ in head] for head in top] == [
        [("b", 1), ("c", 2)],
        [("x", 0), ("y", 1)],
    ]
    verb_probs = torch.tensor([0.0, 2.0, 1.0]).softmax(0)
    assert top[0][0][2] == pytest.approx(float(verb_probs[1]))
    assert top[1][0][2] + top[1][1][2] == pytest.approx(1.0)
    assert len(top_classes(logits, [["a", "b", "c"], ["x", "y"]], 10)[1]) == 2  # k > classes
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        top_classes(logits, [["a", "b", "c", "x", "y"]], 0)

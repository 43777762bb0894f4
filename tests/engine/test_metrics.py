"""Metrics on hand-computed cases."""

from __future__ import annotations

import pytest
import torch

from gateshift.engine.metrics import compute_metrics, confusion_matrix, mean_class_accuracy


def test_single_head_hand_computed() -> None:
    # 4 videos, 6 classes. Video 0 right; 1 wrong but 2nd best; 2 wrong and last; 3 right.
    scores = torch.tensor([
        [9.0, 1, 0, 0, 0, 0],
        [5.0, 4, 0, 0, 0, 0],
        [0.0, 5, 4, 3, 2, 1],
        [0.0, 0, 0, 0, 0, 7],
    ])  # fmt: skip
    labels = torch.tensor([0, 1, 0, 5])
    m = compute_metrics(scores, labels, [6])
    assert m["top1"] == pytest.approx(0.5)
    assert m["top5"] == pytest.approx(0.75)  # video 2's label 0 ranks 6th
    # class 0: 1 of 2 right, class 1: 0 of 1, class 5: 1 of 1 -> (0.5 + 0 + 1) / 3
    assert m["mean_class_accuracy"] == pytest.approx(0.5)
    assert m["num_videos"] == 4
    assert m["confusion"][0].tolist() == [1, 1, 0, 0, 0, 0]


def test_confusion_matrix_rows_are_truth() -> None:
    cm = confusion_matrix(torch.tensor([1, 1, 2]), torch.tensor([0, 1, 2]), 3)
    assert cm.tolist() == [[0, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert mean_class_accuracy(cm) == pytest.approx(2 / 3)


def test_two_heads_action_accuracy() -> None:
    verb = torch.tensor([[2.0, 1.0], [2.0, 1.0], [1.0, 2.0]])
    noun = torch.tensor([[0.0, 1.0, 0.5], [3.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    labels = torch.tensor([[0, 1], [0, 1], [1, 0]])
    m = compute_metrics(torch.cat([verb, noun], 1), labels, [2, 3])
    assert m["verb_top1"] == pytest.approx(1.0)
    assert m["noun_top1"] == pytest.approx(1 / 3)
    assert m["action_top1"] == m["top1"] == pytest.approx(1 / 3)  # only video 0 has both
    assert m["action_top5"] == pytest.approx(1.0)  # 6 actions: every label is in the top 5

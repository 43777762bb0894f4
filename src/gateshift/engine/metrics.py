"""Accuracy metrics on video-level scores, as the papers report them.

Scores are ``(N, K)`` logits averaged over clips and crops (the authors average logits, not
probabilities). For one label set: top-1 / top-5 accuracy, mean class accuracy (the mean over
classes with at least one video of each class's recall, as in the Diving48 / EPIC reports) and
the confusion matrix. For two label sets (EPIC-Kitchens verb + noun): each head's top-1 / top-5
and the action accuracy, where an action is right when verb and noun are both right (top-5
ranks the joint scores ``p(verb) * p(noun)``, EPIC's convention).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor


def topk_correct(scores: Tensor, labels: Tensor, k: int) -> Tensor:
    """Boolean ``(N,)``: is the label among the ``k`` highest scores."""
    k = min(k, scores.shape[1])
    return (scores.topk(k, dim=1).indices == labels[:, None]).any(dim=1)


def confusion_matrix(predictions: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """``(K, K)`` counts; row = true class, column = predicted class."""
    flat = labels.long() * num_classes + predictions.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def per_class_accuracy(confusion: Tensor) -> tuple[Tensor, Tensor]:
    """(recall per class, support per class); recall is NaN for classes without videos."""
    support = confusion.sum(dim=1)
    correct = confusion.diagonal()
    recall = torch.where(support > 0, correct / support.clamp(min=1), torch.nan)
    return recall.double(), support


def mean_class_accuracy(confusion: Tensor) -> float:
    recall, support = per_class_accuracy(confusion)
    present = support > 0
    return float(recall[present].mean()) if present.any() else float("nan")


def single_head_metrics(scores: Tensor, labels: Tensor) -> dict[str, Any]:
    confusion = confusion_matrix(scores.argmax(1), labels, scores.shape[1])
    return {
        "top1": float(topk_correct(scores, labels, 1).double().mean()),
        "top5": float(topk_correct(scores, labels, 5).double().mean()),
        "mean_class_accuracy": mean_class_accuracy(confusion),
        "num_videos": int(labels.shape[0]),
        "confusion": confusion,
    }


def _action_top5(verb: Tensor, noun: Tensor, labels: Tensor, chunk: int = 256) -> Tensor:
    nouns = noun.shape[1]
    target = labels[:, 0] * nouns + labels[:, 1]
    hits = []
    for start in range(0, verb.shape[0], chunk):
        pv = verb[start : start + chunk].softmax(1)
        pn = noun[start : start + chunk].softmax(1)
        joint = (pv[:, :, None] * pn[:, None, :]).flatten(1)  # (n, V*N)
        hits.append(topk_correct(joint, target[start : start + chunk], 5))
    return torch.cat(hits)


def compute_metrics(scores: Tensor, labels: Tensor, splits: Sequence[int]) -> dict[str, Any]:
    """Metrics for ``scores (N, sum(splits))`` and ``labels (N, len(splits))``.

    Keys ``top1``, ``top5``, ``mean_class_accuracy`` (fractions in [0, 1]), ``num_videos`` always;
    for two heads also ``verb_*``/``noun_*``/``action_*`` (``top1``/``top5`` are the action's,
    ``mean_class_accuracy`` the mean of the two heads'). ``confusion`` (tensor or list) too.
    """
    scores, labels = scores.float(), labels.long()
    if labels.dim() == 1:
        labels = labels[:, None]
    if len(splits) == 1:
        return single_head_metrics(scores, labels[:, 0])
    if len(splits) != 2:
        raise ValueError(f"metrics support one or two label sets, got {len(splits)}")
    verb_scores, noun_scores = torch.split(scores, list(splits), dim=1)
    verb = single_head_metrics(verb_scores, labels[:, 0])
    noun = single_head_metrics(noun_scores, labels[:, 1])
    both = topk_correct(verb_scores, labels[:, 0], 1) & topk_correct(noun_scores, labels[:, 1], 1)
    action_top5 = _action_top5(verb_scores, noun_scores, labels)
    out: dict[str, Any] = {
        "top1": float(both.double().mean()),
        "top5": float(action_top5.double().mean()),
        "mean_class_accuracy": (verb["mean_class_accuracy"] + noun["mean_class_accuracy"]) / 2,
        "num_videos": int(labels.shape[0]),
        "confusion": [verb["confusion"], noun["confusion"]],
    }
    for name, head in (("verb", verb), ("noun", noun)):
        for key in ("top1", "top5", "mean_class_accuracy"):
            out[f"{name}_{key}"] = head[key]
    out["action_top1"], out["action_top5"] = out["top1"], out["top5"]
    return out


def public(metrics: dict[str, Any]) -> dict[str, Any]:
    """The JSON-friendly part (drops the confusion tensors)."""
    return {k: v for k, v in metrics.items() if k != "confusion"}

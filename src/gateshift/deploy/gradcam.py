"""Grad-CAM (Selvaraju et al., arXiv 1610.02391) of a video recognizer, one map per frame.

A recognizer scores every frame with its 2D backbone and averages the frames' logits (TSN
consensus), so each frame has its own last convolutional features ``A_t`` ``(C, h, w)``. For a
class score ``y`` (the clip's logit), frame ``t``'s map is::

    alpha_t,c = mean_{h,w} dy / dA_t,c        cam_t = relu(sum_c alpha_t,c A_t,c)

upsampled (bilinear) to the frame size and divided by the clip's largest value, so the frames of
a clip share one scale (a frame that does not matter stays dark). The features are taken where
the backbone's global average pooling reads them: ``layer4`` (ResNet), ``features``
(MobileNetV2), ``forward_features`` (the Caffe-graph Inceptions); any other layer can be named.
Features are captured with a forward hook (or a wrapper on the instance), never by editing the
backbone.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def feature_layer(backbone: nn.Module) -> nn.Module | None:
    """The module whose output the backbone pools (None: it has ``forward_features``)."""
    if callable(getattr(type(backbone), "forward_features", None)):
        return None
    for name in ("layer4", "features"):
        layer = getattr(backbone, name, None)
        if isinstance(layer, nn.Module):
            return layer
    raise ValueError(
        f"no known last convolutional layer in {type(backbone).__name__}; pass layer=... "
        "(the module whose (frames, C, h, w) output the backbone pools)"
    )


@contextmanager
def capture_features(backbone: nn.Module, layer: nn.Module | None = None) -> Iterator[list[Tensor]]:
    """Inside the block, each forward appends the ``(N*T, C, h, w)`` features that ``layer``
    (default :func:`feature_layer`) produces to the yielded list, still in the autograd graph."""
    features: list[Tensor] = []
    target = layer if layer is not None else feature_layer(backbone)
    if target is None:  # a graph backbone: wrap its forward_features on the instance
        method = type(backbone).forward_features  # type: ignore[attr-defined]

        def wrapped(x: Tensor) -> Tensor:
            out: Tensor = method(backbone, x)
            features.append(out)
            return out

        backbone.forward_features = wrapped  # type: ignore[assignment]
        try:
            yield features
        finally:
            del backbone.forward_features
        return

    def hook(module: nn.Module, args: Any, out: Tensor) -> None:
        features.append(out)

    handle = target.register_forward_hook(hook)
    try:
        yield features
    finally:
        handle.remove()


def grad_cam(features: Tensor, score: Tensor, size: tuple[int, int]) -> Tensor:
    """Maps ``(N*T, H, W)`` in [0, 1] (one scale for all frames) of a scalar ``score`` over
    ``features`` ``(N*T, C, h, w)``, upsampled to ``size`` = (H, W); zeros where nothing is
    positive. The graph is kept, so other scores can follow."""
    (grads,) = torch.autograd.grad(score, features, retain_graph=True)
    weights = grads.float().mean((2, 3), keepdim=True)  # alpha: (N*T, C, 1, 1)
    cam = F.relu((weights * features.detach().float()).sum(1, keepdim=True))  # (N*T, 1, h, w)
    cam = F.interpolate(cam, size=size, mode="bilinear", align_corners=False)[:, 0]
    peak = cam.max()
    return cam / peak if float(peak) > 0 else cam


def grad_cams(
    model: nn.Module,
    clips: Tensor,
    targets: Sequence[int],
    *,
    layer: nn.Module | None = None,
) -> tuple[Tensor, dict[int, Tensor]]:
    """Logits ``(N, classes)`` of ``clips`` ``(N, T, C, H, W)`` and, per target class index,
    its Grad-CAM maps ``(N*T, H, W)`` (one scale per call; use N = 1 to explain one clip).

    ``model`` has a ``backbone`` (a :class:`~gateshift.models.recognizer.Recognizer`); its mode
    is the caller's (eval for explanations).
    """
    backbone = getattr(model, "backbone", model)
    with torch.enable_grad(), capture_features(backbone, layer) as features:
        logits = model(clips.detach().requires_grad_(True))  # a graph even with frozen weights
    if not features:
        raise ValueError("the feature layer did not run during the forward pass")
    size = (int(clips.shape[-2]), int(clips.shape[-1]))
    cams = {int(c): grad_cam(features[-1], logits[:, int(c)].sum(), size) for c in targets}
    return logits.detach(), cams

"""Every ``{backbone}_{temporal}`` combination, registered with :mod:`gateshift.registry`."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from gateshift.models.backbones.base import Backbone
from gateshift.models.backbones.bninception import BNInception
from gateshift.models.backbones.inception_v3 import InceptionV3
from gateshift.models.backbones.mobilenet_v2 import MobileNetV2
from gateshift.models.backbones.resnet import ResNet
from gateshift.models.heads import ClassifierHead
from gateshift.models.recognizer import Recognizer
from gateshift.models.temporal import TEMPORAL_KINDS, TemporalKind, insert_temporal, make_temporal
from gateshift.registry import register_model

BACKBONES: dict[str, Callable[[], Backbone]] = {
    "bninception": BNInception,
    "inceptionv3": InceptionV3,
    "resnet18": partial(ResNet, 18),
    "resnet34": partial(ResNet, 34),
    "resnet50": partial(ResNet, 50),
    "resnet101": partial(ResNet, 101),
    "mobilenetv2": MobileNetV2,
}


def build_recognizer(
    backbone_name: str,
    temporal: TemporalKind,
    *,
    num_classes: int | tuple[int, ...],
    num_segments: int = 8,
    dropout: float = 0.5,
    interleave: bool = True,
    gsf_ratio: float | None = None,
    shift_div: int = 8,
    width: int | None = None,
    causal: bool = False,
) -> Recognizer:
    """A backbone with ``temporal`` modules at its published places, a head, average consensus.

    ``width``: base channel width of ResNet backbones (64 as published; smaller for slim nets).
    ``causal``: causal temporal modules, frame t sees only frames <= t
    (:mod:`gateshift.models.temporal.causal`); TSN has none, so it is the same TSN.
    """
    if width is None:
        backbone = BACKBONES[backbone_name]()
    elif backbone_name.startswith("resnet"):
        backbone = ResNet(int(backbone_name.removeprefix("resnet")), width=width)
    else:
        raise ValueError(f"width applies to ResNet backbones, not {backbone_name}")
    if temporal != "tsn":
        sites = backbone.temporal_sites(temporal)
        ratio = backbone.default_gsf_ratio if gsf_ratio is None else gsf_ratio
        make = partial(
            make_temporal,
            temporal,
            num_segments=num_segments,
            interleave=interleave,
            gsf_ratio=ratio,
            shift_div=shift_div,
            causal=causal,
        )
        insert_temporal(backbone, make, sites)
        backbone.sites = tuple(sites)
    head = ClassifierHead(backbone.num_features, num_classes, dropout=dropout)
    name = f"{backbone_name}_{temporal}"
    return Recognizer(
        backbone, head, num_segments=num_segments, temporal=temporal, name=name, causal=causal
    )


for _backbone in BACKBONES:
    for _kind in TEMPORAL_KINDS:
        register_model(f"{_backbone}_{_kind}")(partial(build_recognizer, _backbone, _kind))

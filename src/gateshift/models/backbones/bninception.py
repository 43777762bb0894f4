"""BN-Inception (Ioffe & Szegedy, arXiv 1502.03167), the Caffe model of TSN, GSM and GSF.

The net is the published Caffe layer graph (:mod:`._inception_tables`) run by
:class:`~._caffe_graph.CaffeGraph`: every layer is registered flat under its Caffe id
(``conv1_7x7_s2``, ``inception_3a_1x1_bn``, ...), so the state dict has the keys of the
Caffe-converted ImageNet weights and of the backbone inside the GSM (arXiv 1912.00381) and GSF
(arXiv 2203.08897) checkpoints.

The published net ends with a 7x7 average pool, which at its 224 input covers the whole 7x7 map;
we take a global mean over height and width instead, which is the same there and lets the net
run at other sizes (tests use 32x32). The ImageNet classifier ``fc`` is not part of the backbone.

Temporal placement (the GSM paper's rule: one module per Inception block, after the first
convolution of the branch with the fewest convolutions, before its BN): ``1x1`` in 3a, 3b,
4a-4d, 5a, 5b and ``3x3_reduce`` in the reduction blocks 3c and 4e; 10 sites, 64 to 352
channels. GSM and GSF releases use these; TSM, released for ResNets only, goes to the same places.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from gateshift.input_spec import CAFFE_BGR_224, InputSpec
from gateshift.models.backbones._caffe_graph import CaffeGraph
from gateshift.models.backbones._inception_tables import BNINCEPTION, inception_sites
from gateshift.models.backbones.base import Backbone, InsertKind
from gateshift.models.temporal.insert import Site


class BNInception(CaffeGraph, Backbone):
    """BN-Inception without its classifier: ``(B, 3, H, W)`` BGR 0-255 -> ``(B, 1024)``."""

    input_spec: ClassVar[InputSpec] = CAFFE_BGR_224
    imagenet_classifier: ClassVar[tuple[str, ...]] = ("fc.",)
    default_gsf_ratio: ClassVar[float] = 100.0

    def __init__(self) -> None:
        super().__init__(BNINCEPTION.layers, output=BNINCEPTION.output)
        self.num_features = self.blob_channels[BNINCEPTION.output]  # 1024

    def temporal_sites(self, kind: InsertKind) -> list[Site]:
        return inception_sites([conv for _, conv in BNINCEPTION.sites], kind)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x).mean((2, 3))  # global average pool -> (B, 1024)

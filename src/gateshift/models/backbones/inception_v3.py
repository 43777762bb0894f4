"""InceptionV3 (Szegedy et al., arXiv 1512.00567) in the Caffe conversion used by GSM and GSF.

The net is the published Caffe layer graph (:mod:`._inception_tables`) run by
:class:`~._caffe_graph.CaffeGraph`: every layer is registered flat under its Caffe id
(``conv_Conv2D``, ``conv_batchnorm``, ``mixed_tower_conv_Conv2D``, ...), so the state dict has the
keys of the converted ImageNet weights and of the backbone inside the GSM (arXiv 1912.00381) and
GSF (arXiv 2203.08897) checkpoints. It is not torchvision's InceptionV3: the stem and some
factorised 7x7 towers differ in order and padding, and every convolution has a bias.

The published net ends with a 6x6 average pool, which at its 229 input covers the whole 6x6 map
(and makes the released model run at 229 only); we take a global mean over height and width
instead, which is the same there and lets the net run at other sizes (tests use 75x75). The
ImageNet classifier ``top_cls_fc`` is not part of the backbone.

Temporal placement, one module per block after a convolution and before its BN:

* ``gsf``: the GSM paper's rule (first convolution of the branch with the fewest
  convolutions): 11 sites, ``mixed_3`` on its single 3x3/2 convolution ``mixed_3_conv``.
* ``gsm``: as released, 10 sites: none in ``mixed_6``, and ``mixed_3`` on the 1x1 reduce of its
  tower (``mixed_3_tower_conv``) instead.
* ``tsm``: no released Inception model; the GSM sites, so the two compare like for like.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from gateshift.input_spec import CAFFE_BGR_229, InputSpec
from gateshift.models.backbones._caffe_graph import CaffeGraph
from gateshift.models.backbones._inception_tables import INCEPTION_V3, inception_sites
from gateshift.models.backbones.base import Backbone, InsertKind
from gateshift.models.temporal.insert import Site

# where the GSM release departs from the rule: block -> its conv, or None for no module
_GSM_SITES: dict[str, str | None] = {"mixed_3": "mixed_3_tower_conv_Conv2D", "mixed_6": None}


class InceptionV3(CaffeGraph, Backbone):
    """InceptionV3 without its classifier: ``(B, 3, H, W)`` BGR 0-255 -> ``(B, 2048)``."""

    input_spec: ClassVar[InputSpec] = CAFFE_BGR_229
    imagenet_classifier: ClassVar[tuple[str, ...]] = ("top_cls_fc.",)
    default_gsf_ratio: ClassVar[float] = 100.0

    def __init__(self) -> None:
        super().__init__(INCEPTION_V3.layers, output=INCEPTION_V3.output)
        self.num_features = self.blob_channels[INCEPTION_V3.output]  # 2048

    def temporal_sites(self, kind: InsertKind) -> list[Site]:
        convs = [
            conv if kind == "gsf" or block not in _GSM_SITES else _GSM_SITES[block]
            for block, conv in INCEPTION_V3.sites
        ]
        return inception_sites([conv for conv in convs if conv is not None], kind)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x).mean((2, 3))  # global average pool -> (B, 2048)

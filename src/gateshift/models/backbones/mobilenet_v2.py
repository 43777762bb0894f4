"""MobileNetV2 (Sandler et al., arXiv 1801.04381), the edge model, with torchvision's keys.

State-dict keys equal torchvision's ``mobilenet_v2`` (``features.*``; its ``classifier.*`` is
the ImageNet head we drop), so its ImageNet ``.pth`` file loads as it is.

Temporal placement, in the 10 inverted-residual blocks that have a residual connection (stride 1,
same width in and out; 24 to 160 channels):

* ``tsm``: before the block's first convolution, TSM's residual shift for MobileNetV2.
* ``gsm`` / ``gsf``: after the block's linear projection, before its BN: the analogue of the
  ResNet placement (end of the residual branch). The authors released no MobileNetV2 model, so
  these sites carry no official key names.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from gateshift.input_spec import IMAGENET_RGB_224, InputSpec
from gateshift.models.backbones.base import Backbone, InsertKind
from gateshift.models.temporal.insert import Site

# expansion t, output channels c, repeats n, first stride s (the paper's Table 2)
_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
             (6, 160, 3, 2), (6, 320, 1, 1))  # fmt: skip


def _conv_bn_relu6(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_residual = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn_relu6(cin, hidden, 1))
        layers += [
            _conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),  # linear projection
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


class MobileNetV2(Backbone):
    """MobileNetV2 trunk (width 1.0) without its classifier: ``(B, 3, H, W)`` -> ``(B, 1280)``."""

    input_spec: ClassVar[InputSpec] = IMAGENET_RGB_224
    imagenet_classifier: ClassVar[tuple[str, ...]] = ("classifier.",)

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv_bn_relu6(3, 32, 3, stride=2)]
        cin = 32
        for expand, cout, repeats, stride in _SETTINGS:
            for i in range(repeats):
                layers.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expand))
                cin = cout
        layers.append(_conv_bn_relu6(cin, 1280, 1))
        self.features = nn.Sequential(*layers)
        self.num_features = 1280
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def temporal_sites(self, kind: InsertKind) -> list[Site]:
        sites = []
        for i, block in enumerate(self.features):
            if not (isinstance(block, InvertedResidual) and block.use_residual):
                continue
            if kind == "tsm":
                sites.append(Site(f"features.{i}.conv.0.0", "before"))
            else:
                projection = len(block.conv) - 2  # the 1x1 conv before the last BN
                sites.append(Site(f"features.{i}.conv.{projection}", "after"))
        return sites

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x).mean((2, 3))

"""MobileNetV2 (Sandler et al., arXiv 1801.04381), the edge model, with torchvision's keys.

State-dict keys equal torchvision's ``mobilenet_v2`` (``features.*``; its ``classifier.*`` is
the ImageNet head we drop), so its ImageNet ``.pth`` file loads as it is.

TSM's release (arXiv 1811.08383) builds the same net with each block's layers flat:
``features.N.conv.0..7`` = conv, BN, ReLU6, depthwise conv, BN, ReLU6, projection, BN
(``conv.0..4`` in the first block, which has no expansion layer), where torchvision nests each
conv-BN-ReLU6 (``conv.0.0``, ``conv.0.1``, ``conv.1.0``, ``conv.1.1``, ``conv.2``, ``conv.3``).
:meth:`MobileNetV2.official_layout` maps those names, so the authors' ``mobilenetv2_tsm``
checkpoints load strictly (RGB 0-1, ImageNet mean/std, 224, as our input spec).

Temporal placement, in the 10 inverted-residual blocks that have a residual connection (stride 1,
same width in and out; 24 to 160 channels; all of them have an expansion layer):

* ``tsm``: before the block's first (expansion) convolution, TSM's residual shift for
  MobileNetV2, the release's placement; it keeps the shifted conv at ``conv.0.net``.
* ``gsm`` / ``gsf``: after the block's linear projection, before its BN: the analogue of the
  ResNet placement (end of the residual branch). The authors released no MobileNetV2 model, so
  these modules carry no official key names.
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

    def flat_names(self) -> dict[str, str]:
        """Our name under ``conv`` -> the index TSM's flat layout gives it, for layers with keys."""
        names: dict[str, str] = {}
        flat = 0
        for k, layer in enumerate(self.conv):
            inner = list(layer.named_children()) if isinstance(layer, nn.Sequential) else []
            for name, sub in inner or [("", layer)]:
                if sub.state_dict():  # ReLU6 has no keys
                    names[f"{k}.{name}" if name else str(k)] = str(flat)
                flat += 1
        return names


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
            conv = f"features.{i}.conv"
            if kind == "tsm":
                sites.append(Site(f"{conv}.0.0", "before", official_layer=f"{conv}.0.net"))
            else:
                projection = str(len(block.conv) - 2)  # the 1x1 conv before the last BN
                flat = block.flat_names()[projection]
                sites.append(Site(f"{conv}.{projection}", "after", official_layer=f"{conv}.{flat}"))
        return sites

    def official_layout(self) -> dict[str, str]:
        return {
            f"features.{i}.conv.{flat}.": f"features.{i}.conv.{ours}."
            for i, block in enumerate(self.features)
            if isinstance(block, InvertedResidual)
            for ours, flat in block.flat_names().items()
        }

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x).mean((2, 3))

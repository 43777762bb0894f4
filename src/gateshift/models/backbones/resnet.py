"""ResNet-18/34/50/101 (He et al., arXiv 1512.03385), v1.5 as in torchvision (stride on the 3x3).

State-dict keys equal torchvision's, so its ImageNet ``.pth`` files load as they are. ``width``
(64 in the paper) scales every stage: ``width=16`` gives a slim ResNet with the same layout and
keys and 1/16 of the compute, the small backbone the embedded demo trains from scratch on CPU.

Temporal placement:

* ``tsm``: before ``conv1``, the residual shift of TSM (arXiv 1811.08383), in the blocks that
  ``tsm_blocks`` names. TSM's release (``blockres``) shifts every block unless ``layer3`` has 23
  or more blocks; then only blocks with an even index within their stage (0, 2, 4, ...), in all
  four stages. So ``resnet18_tsm``, ``resnet34_tsm`` and ``resnet50_tsm`` shift all 8/16/16
  blocks (``tsm_blocks="all"``) and ``resnet101_tsm`` 18 of its 33 (``tsm_blocks="even"``), as
  the authors' ResNet-101 checkpoints do. They keep the shifted conv at ``<conv1>.net``.
* ``gsf``: after the last convolution of every block, before its BN (``conv3``/``bn3`` in a
  bottleneck), as in the GSF release (C = 256..2048 in ResNet-50). The authors keep it at
  ``layerX.Y.gsf``.
* ``gsm``: the same place as GSF (the GSM paper has no ResNet placement; GSF is GSM plus fusion).

GSM and GSF go into every block at every depth (the GSF release's ResNet-101 has one per block).

Basic blocks (ResNet-18/34) use their last convolution, ``conv2``, the same way.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from torch import Tensor, nn

from gateshift.input_spec import IMAGENET_RGB_224, InputSpec
from gateshift.models.backbones.base import Backbone, InsertKind
from gateshift.models.temporal.insert import Site


def _conv(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, downsample: nn.Module | None) -> None:
        super().__init__()
        self.conv1 = _conv(cin, planes, 3, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv(planes, planes, 3)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, downsample: nn.Module | None) -> None:
        super().__init__()
        self.conv1 = _conv(cin, planes, 1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv(planes, planes, 3, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv(planes, planes * 4, 1)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


#: which blocks of each stage TSM shifts: every block, or those with an even index in the stage
TsmBlocks = Literal["all", "even"]

_LAYOUTS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
}


class ResNet(Backbone):
    """ResNet trunk without its classifier: ``(B, 3, H, W)`` -> ``(B, 512 * expansion)``.

    ``tsm_blocks``: the blocks TSM shifts (module docstring); ``None`` follows TSM's release.
    """

    input_spec: ClassVar[InputSpec] = IMAGENET_RGB_224
    default_gsf_ratio: ClassVar[float] = 25.0
    layer1: nn.Sequential
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential

    def __init__(
        self, depth: int = 50, *, width: int = 64, tsm_blocks: TsmBlocks | None = None
    ) -> None:
        super().__init__()
        if depth not in _LAYOUTS:
            raise ValueError(f"ResNet depth must be one of {sorted(_LAYOUTS)}, got {depth}")
        if width < 4 or width % 4:
            raise ValueError(f"ResNet width must be a positive multiple of 4, got {width}")
        if tsm_blocks not in (None, "all", "even"):
            raise ValueError(f"tsm_blocks must be 'all' or 'even', got {tsm_blocks!r}")
        block, counts = _LAYOUTS[depth]
        self.depth = depth
        # TSM's release shifts every other block when layer3 has 23+ blocks (its n_round = 2)
        self.tsm_blocks: TsmBlocks = tsm_blocks or ("even" if counts[2] >= 23 else "all")
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin = width
        stages = (width, 2 * width, 4 * width, 8 * width)
        for i, (planes, count) in enumerate(zip(stages, counts, strict=True)):
            stride = 1 if i == 0 else 2
            blocks: list[nn.Module] = []
            for j in range(count):
                downsample = None
                if j == 0 and (stride != 1 or cin != planes * block.expansion):
                    downsample = nn.Sequential(
                        nn.Conv2d(cin, planes * block.expansion, 1, stride=stride, bias=False),
                        nn.BatchNorm2d(planes * block.expansion),
                    )
                blocks.append(block(cin, planes, stride if j == 0 else 1, downsample))
                cin = planes * block.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.num_features = cin
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _blocks(self) -> list[tuple[str, int, nn.Module]]:
        """(path, index within its stage, block) of every residual block."""
        return [
            (f"layer{i}.{j}", j, block)
            for i in range(1, 5)
            for j, block in enumerate(getattr(self, f"layer{i}"))
        ]

    def temporal_sites(self, kind: InsertKind) -> list[Site]:
        sites = []
        for path, index, block in self._blocks():
            if kind == "tsm":
                if self.tsm_blocks == "even" and index % 2:
                    continue
                sites.append(Site(f"{path}.conv1", "before", official_layer=f"{path}.conv1.net"))
            else:
                last = "conv3" if isinstance(block, Bottleneck) else "conv2"
                sites.append(Site(f"{path}.{last}", "after", official_module=f"{path}.{kind}"))
        return sites

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean((2, 3))  # global average pool -> (B, C)

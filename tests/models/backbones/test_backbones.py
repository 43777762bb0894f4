"""ResNet and MobileNetV2: torchvision-compatible keys and sizes, placements."""

from __future__ import annotations

import pytest
import torch

from gateshift.models.backbones.mobilenet_v2 import MobileNetV2
from gateshift.models.backbones.resnet import ResNet

# torchvision's ImageNet models, parameters without the 1000-way classifier
TORCHVISION_TRUNK_PARAMS = {
    18: 11_689_512 - 513_000,
    34: 21_797_672 - 513_000,
    50: 25_557_032 - 2_049_000,
    101: 44_549_160 - 2_049_000,
}


@pytest.mark.parametrize("depth", [18, 34, 50, 101])
def test_resnet_parameter_counts_match_torchvision(depth: int) -> None:
    net = ResNet(depth)
    assert sum(p.numel() for p in net.parameters()) == TORCHVISION_TRUNK_PARAMS[depth]


def test_resnet50_keys_are_torchvision_keys() -> None:
    keys = ResNet(50).state_dict()
    assert keys["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
    assert keys["layer4.2.conv3.weight"].shape == (2048, 512, 1, 1)
    assert keys["layer3.5.bn2.running_var"].shape == (256,)
    assert "conv1.weight" in keys and "bn1.num_batches_tracked" in keys
    assert not any(k.startswith("fc.") for k in keys)


def test_mobilenet_v2_matches_torchvision() -> None:
    net = MobileNetV2()
    keys = net.state_dict()
    assert sum(p.numel() for p in net.parameters()) == 3_504_872 - 1_281_000
    assert keys["features.0.0.weight"].shape == (32, 3, 3, 3)
    assert keys["features.1.conv.0.0.weight"].shape == (32, 1, 3, 3)  # depthwise, t=1
    assert keys["features.1.conv.1.weight"].shape == (16, 32, 1, 1)
    assert keys["features.2.conv.1.0.weight"].shape == (96, 1, 3, 3)
    assert keys["features.2.conv.2.weight"].shape == (24, 96, 1, 1)
    assert keys["features.18.0.weight"].shape == (1280, 320, 1, 1)


def test_resnet_sites() -> None:
    net = ResNet(50)
    gsf = net.temporal_sites("gsf")
    assert len(gsf) == 16
    assert gsf[0].path == "layer1.0.conv3" and gsf[0].official_module == "layer1.0.gsf"
    tsm = ResNet(18).temporal_sites("tsm")
    assert len(tsm) == 8 and tsm[0].path == "layer1.0.conv1" and tsm[0].position == "before"
    assert ResNet(34).temporal_sites("gsm")[-1].path == "layer4.2.conv2"


def test_resnet_tsm_placement_follows_the_release() -> None:
    """Every block up to ResNet-50; even-indexed blocks of each stage in ResNet-101."""
    assert ResNet(50).tsm_blocks == "all" and len(ResNet(50).temporal_sites("tsm")) == 16
    deep = ResNet(101, width=16)
    paths = [s.path for s in deep.temporal_sites("tsm")]
    assert deep.tsm_blocks == "even" and len(paths) == 2 + 2 + 12 + 2
    assert paths[:3] == ["layer1.0.conv1", "layer1.2.conv1", "layer2.0.conv1"]
    assert "layer3.22.conv1" in paths and "layer3.21.conv1" not in paths
    assert len(deep.temporal_sites("gsf")) == len(deep.temporal_sites("gsm")) == 33
    assert len(ResNet(101, width=16, tsm_blocks="all").temporal_sites("tsm")) == 33
    assert len(ResNet(50, width=16, tsm_blocks="even").temporal_sites("tsm")) == 2 + 2 + 3 + 2
    with pytest.raises(ValueError, match="tsm_blocks"):
        ResNet(50, tsm_blocks="odd")  # type: ignore[arg-type]


def test_mobilenet_sites_are_the_residual_blocks() -> None:
    net = MobileNetV2()
    sites = net.temporal_sites("gsm")
    assert [s.path for s in sites][:2] == ["features.3.conv.2", "features.5.conv.2"]
    assert len(sites) == 10
    widths = [net.get_submodule(s.path).out_channels for s in sites]
    assert widths == [24, 32, 32, 64, 64, 64, 96, 96, 160, 160]
    tsm = net.temporal_sites("tsm")
    assert [s.path for s in tsm][:2] == ["features.3.conv.0.0", "features.5.conv.0.0"]
    assert tsm[0].official_layer == "features.3.conv.0.net"  # TSM's flat layout


@pytest.mark.parametrize("make", [lambda: ResNet(18), MobileNetV2])
def test_features_shape_and_channels_last(make) -> None:  # type: ignore[no-untyped-def]
    net = make().eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = net(x)
        net = net.to(memory_format=torch.channels_last)
        cl = net(x.contiguous(memory_format=torch.channels_last))
    assert out.shape == (2, net.num_features)
    torch.testing.assert_close(cl, out, rtol=1e-4, atol=1e-5)

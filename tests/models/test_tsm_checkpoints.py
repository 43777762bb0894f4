"""The authors' TSM checkpoints (arXiv 1811.08383, mit-han-lab/temporal-shift-module) load strictly.

Nothing is downloaded: the released networks are rebuilt here, independently of gateshift, from
the release's layout (torchvision's ResNet with ``blockres`` shifts wrapping ``conv1`` as
``conv1.net``, only in even-indexed blocks when ``layer3`` has 23+ blocks; the flat MobileNetV2
``features.N.conv.0..7`` with the shift wrapping ``conv.0`` of residual blocks that have an
expansion layer; the TSN wrapper's ``base_model`` + ``new_fc`` and average consensus). Their state
dicts, saved as the release saves them, must load into gateshift's models with every key and
shape checked, and give the reference's logits.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

import gateshift
from gateshift.models.weights import WeightsMismatchError, to_official_state_dict


def _shift(x: Tensor, segments: int, fold_div: int = 8) -> Tensor:
    """TSM's shift of (N*T, C, H, W): 1/8 of channels from the next frame, 1/8 from the last."""
    nt, c, h, w = x.shape
    x = x.view(nt // segments, segments, c, h, w)
    fold = c // fold_div
    out = torch.zeros_like(x)
    out[:, :-1, :fold] = x[:, 1:, :fold]
    out[:, 1:, fold : 2 * fold] = x[:, :-1, fold : 2 * fold]
    out[:, :, 2 * fold :] = x[:, :, 2 * fold :]
    return out.view(nt, c, h, w)


class _Shifted(nn.Module):
    """The release's ``TemporalShift(net)``: shift, then the wrapped layer, kept as ``net``."""

    def __init__(self, net: nn.Module, segments: int) -> None:
        super().__init__()
        self.net, self.segments = net, segments

    def forward(self, x: Tensor) -> Tensor:
        return self.net(_shift(x, self.segments))


class _Bottleneck(nn.Module):
    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != planes * 4:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class _ReleasedResNet(nn.Module):
    """torchvision's ResNet as ``make_temporal_shift(place='blockres')`` leaves it (fc dropped);
    ``width`` 64 as released, smaller (the same layout and keys) for fast logit checks."""

    def __init__(self, counts: tuple[int, ...], segments: int, shift: bool, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        every = 2 if counts[2] >= 23 else 1  # the release's n_round
        cin = width
        stages = (width, 2 * width, 4 * width, 8 * width)
        for stage, (planes, count) in enumerate(zip(stages, counts, strict=True)):
            blocks = []
            for i in range(count):
                block = _Bottleneck(cin, planes, 2 if stage and not i else 1)
                if shift and i % every == 0:
                    block.conv1 = _Shifted(block.conv1, segments)
                blocks.append(block)
                cin = planes * 4
            self.add_module(f"layer{stage + 1}", nn.Sequential(*blocks))

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
        return nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)


def _cbr(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
    return [conv, nn.BatchNorm2d(cout), nn.ReLU6()]


class _FlatInvertedResidual(nn.Module):
    """archs/mobilenet_v2.py's block: one flat ``conv`` Sequential of 5 or 8 layers."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_res_connect = stride == 1 and cin == cout
        layers = _cbr(cin, hidden, 1) if expand != 1 else []
        layers += _cbr(hidden, hidden, 3, stride, hidden)
        layers += [nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class _ReleasedMobileNetV2(nn.Module):
    """The release's MobileNetV2; the shift wraps ``conv.0`` if ``len(conv) == 8`` and residual."""

    def __init__(self, segments: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Sequential(*_cbr(3, 32, 3, 2))]
        cin = 32
        for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                           (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)):  # fmt: skip
            for i in range(n):
                block = _FlatInvertedResidual(cin, c, s if i == 0 else 1, t)
                if len(block.conv) == 8 and block.use_res_connect:
                    block.conv[0] = _Shifted(block.conv[0], segments)
                layers.append(block)
                cin = c
        layers.append(nn.Sequential(*_cbr(cin, 1280, 1)))
        self.features = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x).mean(3).mean(2)


class _ReleasedTSN(nn.Module):
    """ops/models.py's TSN at test time: frames -> base_model -> new_fc -> mean over segments.

    ``head="classifier"``: the classifier kept as ``base_model.classifier`` (some MobileNetV2
    files, which the release's test script renames to ``new_fc``)."""

    def __init__(self, base: nn.Module, features: int, classes: int, segments: int, head: str):
        super().__init__()
        self.base_model, self.segments = base, segments
        fc = nn.Linear(features, classes)
        nn.init.normal_(fc.weight, 0, 0.05)
        nn.init.normal_(fc.bias, 0, 0.05)
        if head == "classifier":
            base.classifier = fc
        else:
            self.new_fc = fc

    def forward(self, clips: Tensor) -> Tensor:
        n, t = clips.shape[:2]
        features = self.base_model(clips.flatten(0, 1))
        fc = self.new_fc if hasattr(self, "new_fc") else self.base_model.classifier
        return fc(features).view(n, t, -1).mean(1)


def _released(
    name: str, classes: int, segments: int, head: str = "new_fc", width: int = 64
) -> _ReleasedTSN:
    if name == "mobilenetv2_tsm":
        return _ReleasedTSN(_ReleasedMobileNetV2(segments), 1280, classes, segments, head)
    counts = (3, 4, 23, 3) if name.startswith("resnet101") else (3, 4, 6, 3)
    base = _ReleasedResNet(counts, segments, name.endswith("_tsm"), width)
    return _ReleasedTSN(base, 32 * width, classes, segments, head)


def _calibrate(net: nn.Module, clips: Tensor) -> None:
    """Random BN affine terms and batch statistics, so activations keep their scale to the end."""
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.normal_(m.bias, 0.0, 0.1)
            m.reset_running_stats()
            m.momentum = None  # running statistics = this batch's
    net.train()
    with torch.no_grad():
        net(clips)
    net.eval()


def _save_release_style(net: nn.Module, path: Path) -> None:
    """As the release's main.py saves: DataParallel keys, optimizer state, best_prec1."""
    state = {f"module.{k}": v for k, v in net.state_dict().items()}
    optimizer = {"state": {}, "param_groups": [{"lr": 0.01, "momentum": 0.9, "params": [0, 1]}]}
    payload = {"epoch": 45, "arch": "x", "state_dict": state, "optimizer": optimizer,
               "best_prec1": 46.9}  # fmt: skip
    torch.save(payload, path)


def _shapes(state: dict[str, Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


FAMILIES = ["resnet50_tsn", "resnet50_tsm", "resnet101_tsm", "mobilenetv2_tsm"]


@pytest.mark.parametrize("name", FAMILIES)
def test_released_keys_and_shapes_are_ours(name: str) -> None:
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        released = _released(name, 174, 8).state_dict()
        ours = to_official_state_dict(gateshift.create_model(name, num_classes=174))
    assert _shapes(ours) == _shapes(released)


def test_released_layouts_hold_the_documented_keys() -> None:
    """Facts of the release, written out, so the reference above cannot drift from them."""
    with torch.device("meta"):
        r101 = _released("resnet101_tsm", 174, 8).state_dict()
        mnet = _released("mobilenetv2_tsm", 400, 8).state_dict()
    shifted = [k for k in r101 if k.endswith("conv1.net.weight")]
    assert len(shifted) == 2 + 2 + 12 + 2  # even-indexed blocks of 3, 4, 23, 3
    assert "base_model.layer3.22.conv1.net.weight" in r101
    assert "base_model.layer3.21.conv1.weight" in r101
    assert "base_model.layer1.1.conv1.weight" in r101
    assert tuple(mnet["base_model.features.3.conv.0.net.weight"].shape) == (144, 24, 1, 1)
    assert tuple(mnet["base_model.features.3.conv.3.weight"].shape) == (144, 1, 3, 3)
    assert tuple(mnet["base_model.features.3.conv.7.running_var"].shape) == (24,)
    assert tuple(mnet["base_model.features.1.conv.3.weight"].shape) == (16, 32, 1, 1)
    assert "base_model.features.2.conv.0.weight" in mnet  # stride 2: no residual, no shift
    assert sum(k.endswith("conv.0.net.weight") for k in mnet) == 10
    assert tuple(mnet["new_fc.weight"].shape) == (400, 1280)


@pytest.mark.parametrize("name", ["resnet50_tsm", "resnet101_tsm", "mobilenetv2_tsm"])
def test_released_checkpoint_gives_the_released_logits(name: str, tmp_path: Path) -> None:
    segments, kw = 4, {"width": 16} if name.startswith("resnet") else {}  # slim: same layout
    clips = torch.randn(2, segments, 3, 64, 64)  # two clips: shifts must not cross them
    released = _released(name, 7, segments, **kw)
    _calibrate(released, clips)
    path = tmp_path / f"TSM_something_RGB_{name}_shift8_blockres_avg_segment4_e45.pth"
    _save_release_style(released, path)
    model = gateshift.create_model(name, num_classes=7, num_segments=segments, **kw).eval()
    meta = gateshift.load_official_checkpoint(model, path)
    assert meta["best_prec1"] == 46.9
    with torch.no_grad():
        expected, ours = released(clips), model(clips)
    assert expected.abs().max() > 0.1  # logits of a size that a layout error would change
    assert (ours - expected).abs().max() <= 1e-5 * expected.abs().max()


def test_classifier_saved_as_base_model_classifier_is_the_head(tmp_path: Path) -> None:
    released = _released("mobilenetv2_tsm", 7, 4, head="classifier")
    path = tmp_path / "classifier.pth"
    _save_release_style(released, path)
    model = gateshift.create_model("mobilenetv2_tsm", num_classes=7, num_segments=4)
    gateshift.load_official_checkpoint(model, path)
    assert torch.equal(model.head.fc.weight, released.base_model.classifier.weight)
    depthwise = released.base_model.features[3].conv[3].weight  # flat conv.3 is our conv.1.0
    assert torch.equal(model.backbone.features[3].conv[1][0].weight, depthwise)


def test_resnet101_checkpoint_with_every_block_shifted_is_refused(tmp_path: Path) -> None:
    released = _released("resnet101_tsm", 7, 4, width=16)
    with torch.no_grad():  # gateshift before this placement: every block shifted
        for stage in (released.base_model.layer1, released.base_model.layer2,
                      released.base_model.layer3, released.base_model.layer4):  # fmt: skip
            for i, block in enumerate(stage):
                if i % 2:
                    block.conv1 = _Shifted(block.conv1, 4)
    path = tmp_path / "every_block.pth"
    _save_release_style(released, path)
    model = gateshift.create_model("resnet101_tsm", num_classes=7, num_segments=4, width=16)
    with pytest.raises(WeightsMismatchError) as info:
        gateshift.load_official_checkpoint(model, path)
    assert len(info.value.missing) == 15 and len(info.value.unexpected) == 15
    assert "backbone.layer1.1.conv1.weight" in info.value.missing
    assert "base_model.layer1.1.conv1.net.weight" in str(info.value)


def test_torchvision_layout_mobilenet_file_is_refused_with_its_keys(tmp_path: Path) -> None:
    """A video file whose backbone uses torchvision's nested names is not the release's layout."""
    model = gateshift.create_model("mobilenetv2_tsm", num_classes=7, num_segments=4)
    nested = {f"module.base_model.{k}": v for k, v in model.backbone.state_dict().items()}
    nested |= {"module.new_fc.weight": torch.zeros(7, 1280), "module.new_fc.bias": torch.zeros(7)}
    path = tmp_path / "nested.pth"
    torch.save({"state_dict": nested}, path)
    with pytest.raises(WeightsMismatchError) as info:
        gateshift.load_official_checkpoint(model, path)
    assert "backbone.features.3.conv.0.0.layer.weight" in info.value.missing
    assert "base_model.features.3.conv.0.0.layer.weight" in info.value.unexpected
    assert "base_model.features.1.conv.1.weight (16, 32, 1, 1) vs model (32,)" in str(info.value)


@pytest.mark.parametrize("name", ["mobilenetv2_gsm", "mobilenetv2_gsf", "resnet101_gsf"])
def test_official_names_round_trip_for_families_without_a_release(name: str) -> None:
    """The flat MobileNetV2 names and site names invert: ours -> theirs -> ours is the identity."""
    kw = {"width": 16} if name.startswith("resnet") else {}
    model = gateshift.create_model(name, num_classes=3, num_segments=2, **kw)
    official = to_official_state_dict(model)
    state, _ = gateshift.models.weights.map_official_checkpoint(model, official, "x")
    assert set(state) == set(model.state_dict())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())

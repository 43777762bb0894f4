"""Official key sets and parameter counts, strict loading of ImageNet and authors' files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import gateshift
from gateshift.models.temporal import temporal_modules
from gateshift.models.weights import WeightsMismatchError, to_official_state_dict

REFERENCE = json.loads(
    (Path(__file__).parent / "reference/official_state_dict_shapes.json").read_text()
)


def _shapes(state: dict[str, torch.Tensor]) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in state.items()}


def _randomised(name: str, **kw: object) -> gateshift.models.Recognizer:
    torch.manual_seed(0)
    model = gateshift.create_model(name, **kw)  # type: ignore[arg-type]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    return model.eval()


@pytest.mark.parametrize(
    ("name", "reference", "params"),
    [
        ("bninception_gsm", "BNInception_gsm", 10_499_650),
        ("inceptionv3_gsm", "InceptionV3_gsm", 22_207_586),
    ],
)
def test_gsm_video_models_have_the_official_keys_shapes_and_sizes(
    name: str, reference: str, params: int
) -> None:
    model = gateshift.create_model(name, num_classes=174, num_segments=8)
    assert _shapes(to_official_state_dict(model)) == REFERENCE[reference]
    assert sum(p.numel() for p in model.parameters()) == params


def test_tsn_bninception_parameter_count() -> None:
    model = gateshift.create_model("bninception_tsn", num_classes=174)
    assert sum(p.numel() for p in model.parameters()) == 10_448_590


@pytest.mark.parametrize(
    ("name", "reference", "ratio", "classifier"),
    [
        ("bninception_gsf", "BNInception_gsf_backbone", None, "fc."),
        ("inceptionv3_gsf", "InceptionV3_gsf_backbone", None, "top_cls_fc."),
        ("resnet50_gsf", "ResNet50_gsf_ratio25_backbone", None, "fc."),
        ("resnet50_gsf", "ResNet50_gsf_ratio100_backbone", 100.0, "fc."),
    ],
)
def test_gsf_backbones_have_the_official_keys_and_shapes(
    name: str, reference: str, ratio: float | None, classifier: str
) -> None:
    model = gateshift.create_model(name, num_classes=5, gsf_ratio=ratio)
    ours = {
        k.removeprefix("base_model."): v
        for k, v in to_official_state_dict(model).items()
        if k.startswith("base_model.")
    }
    expected = {k: v for k, v in REFERENCE[reference].items() if not k.startswith(classifier)}
    assert _shapes(ours) == expected


def _save_official(model: gateshift.models.Recognizer, path: Path, style: str) -> None:
    state = {f"module.{k}": v for k, v in to_official_state_dict(model).items()}
    if style == "gsm":
        payload = {"epoch": 45, "arch": "BNInception", "state_dict": state,
                   "best_prec1": np.float64(47.5)}  # fmt: skip
    else:
        payload = {"epoch": 60, "arch": "resnet50", "model_state_dict": state,
                   "scaler_state_dict": {"scale": 65536.0, "growth_factor": 2.0}}  # fmt: skip
    torch.save(payload, path)


@pytest.mark.parametrize(("name", "style"), [("bninception_gsm", "gsm"), ("resnet50_gsf", "gsf")])
def test_official_checkpoint_round_trip(name: str, style: str, tmp_path: Path) -> None:
    source = _randomised(name, num_classes=7, num_segments=4)
    path = tmp_path / "ckpt.pth.tar"
    _save_official(source, path, style)
    target = gateshift.create_model(name, num_classes=7, num_segments=4).eval()
    meta = gateshift.load_official_checkpoint(target, path)
    assert meta["epoch"] in (45, 60)
    clips = torch.randn(1, 4, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(target(clips), source(clips), rtol=0, atol=0)


def test_official_gsf_checkpoint_refused_by_a_gsm_model(tmp_path: Path) -> None:
    path = tmp_path / "gsf.pth.tar"
    _save_official(_randomised("bninception_gsf", num_classes=7), path, "gsf")
    with pytest.raises(WeightsMismatchError) as info:
        gateshift.load_official_checkpoint(
            gateshift.create_model("bninception_gsm", num_classes=7), path
        )
    message = str(info.value)
    assert str(path) in message
    assert "base_model.gsf_inception_3a_1x1.channel_conv1.weight" in message  # unexpected
    assert "backbone.inception_3a_1x1.temporal.conv3D.weight" in message  # missing


def test_wrong_class_count_names_the_shape(tmp_path: Path) -> None:
    path = tmp_path / "x.pth.tar"
    _save_official(_randomised("bninception_gsm", num_classes=174), path, "gsm")
    with pytest.raises(
        WeightsMismatchError, match=r"new_fc.weight \(174, 1024\) vs model \(10, 1024\)"
    ):
        gateshift.load_official_checkpoint(
            gateshift.create_model("bninception_gsm", num_classes=10), path
        )


def test_corrupt_checkpoint_is_refused_with_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "broken.pth.tar"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match=r"broken\.pth\.tar"):
        gateshift.load_official_checkpoint(
            gateshift.create_model("resnet18_gsm", num_classes=3), path
        )
    with pytest.raises(FileNotFoundError, match=r"nowhere\.pth"):
        gateshift.load_pretrained(
            gateshift.create_model("resnet18_gsm", num_classes=3), tmp_path / "nowhere.pth"
        )


def test_torchvision_resnet_imagenet_file_loads_into_a_gsm_model(tmp_path: Path) -> None:
    plain = gateshift.models.zoo.BACKBONES["resnet50"]()
    state = {k: torch.randn_like(v.float()).to(v.dtype) for k, v in plain.state_dict().items()}
    state["fc.weight"], state["fc.bias"] = torch.randn(1000, 2048), torch.randn(1000)
    path = tmp_path / "resnet50-0676ba61.pth"
    torch.save(state, path)
    model = gateshift.create_model("resnet50_gsm", num_classes=5, pretrained=path)
    ours = model.state_dict()
    assert torch.equal(ours["backbone.layer1.0.conv3.layer.weight"], state["layer1.0.conv3.weight"])
    assert torch.equal(ours["backbone.conv1.weight"], state["conv1.weight"])
    gate = dict(temporal_modules(model))["backbone.layer1.0.conv3"]
    assert torch.count_nonzero(gate.conv3D.weight) == 0  # new modules keep their init
    del state["layer2.1.bn2.running_mean"]
    torch.save(state, path)
    with pytest.raises(
        WeightsMismatchError, match=r"missing from the file \(1\).*layer2.1.bn2.running_mean"
    ):
        gateshift.load_pretrained(gateshift.create_model("resnet50_gsm", num_classes=5), path)


def test_caffe_bninception_imagenet_file_loads(tmp_path: Path) -> None:
    plain = gateshift.models.zoo.BACKBONES["bninception"]()
    state = {}
    for k, v in plain.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue  # the Caffe conversions predate this buffer
        value = torch.randn_like(v) if v.is_floating_point() else v
        state[k] = value.unsqueeze(0) if "_bn." in k else value  # BN vectors stored as (1, C)
    state["fc.weight"], state["fc.bias"] = torch.randn(1000, 1024), torch.randn(1000)
    path = tmp_path / "bn_inception-9f5701afb96c8044.pth"
    torch.save(state, path)
    model = gateshift.create_model("bninception_gsm", num_classes=5)
    gateshift.load_pretrained(model, path)
    ours = model.state_dict()
    assert torch.equal(
        ours["backbone.inception_3a_1x1_bn.weight"], state["inception_3a_1x1_bn.weight"][0]
    )
    assert torch.equal(ours["backbone.inception_3a_1x1.layer.bias"], state["inception_3a_1x1.bias"])


def test_video_checkpoint_given_to_load_pretrained_gets_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "video.pth.tar"
    _save_official(_randomised("resnet18_gsm", num_classes=3), path, "gsm")
    with pytest.raises(ValueError, match="load_official_checkpoint"):
        gateshift.load_pretrained(gateshift.create_model("resnet18_gsm", num_classes=3), path)


def test_state_dict_round_trip_and_mismatch(tmp_path: Path) -> None:
    source = _randomised("mobilenetv2_gsf", num_classes=4, num_segments=2)
    path = tmp_path / "sd.pth"
    torch.save(source.state_dict(), path)
    target = gateshift.create_model("mobilenetv2_gsf", num_classes=4, num_segments=2).eval()
    target.load_state_dict(torch.load(path, weights_only=True), strict=True)
    clips = torch.randn(2, 2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(target(clips), source(clips), rtol=0, atol=0)
    other = gateshift.create_model("mobilenetv2_gsm", num_classes=4, num_segments=2)
    with pytest.raises(RuntimeError, match="channel_conv1"):
        other.load_state_dict(torch.load(path, weights_only=True), strict=True)

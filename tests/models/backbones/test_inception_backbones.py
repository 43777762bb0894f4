"""BN-Inception and InceptionV3 against the published layer graphs and checkpoint key lists."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gateshift.models.backbones._caffe_graph import _RELU_INPLACE, CaffeGraph, CaffeLayer
from gateshift.models.backbones._inception_tables import BNINCEPTION, INCEPTION_V3, InceptionTable
from gateshift.models.backbones.bninception import BNInception
from gateshift.models.backbones.inception_v3 import InceptionV3
from gateshift.models.temporal.insert import Site, TemporalWrap, insert_temporal

REFERENCE = Path(__file__).parents[1] / "reference"  # tests/models/reference


class _Net(NamedTuple):
    cls: type[BNInception] | type[InceptionV3]
    graph: str  # key in inception_layer_graphs.json
    entries: tuple[str, str]  # GSM video model, GSF backbone in official_state_dict_shapes.json
    table: InceptionTable
    features: int
    size: int  # canonical input side
    final: int  # side of the last feature map at that input
    tiny: int  # a small input side the net still runs at


NETS = {
    "bninception": _Net(
        BNInception, "bninception_gsm", ("BNInception_gsm", "BNInception_gsf_backbone"),
        BNINCEPTION, 1024, 224, 7, 32,
    ),
    "inceptionv3": _Net(
        InceptionV3, "inceptionv3_gsm", ("InceptionV3_gsm", "InceptionV3_gsf_backbone"),
        INCEPTION_V3, 2048, 229, 6, 75,
    ),
}  # fmt: skip


@cache
def _reference(name: str) -> Any:
    return json.loads((REFERENCE / name).read_text())


@cache
def _model(net: str) -> BNInception | InceptionV3:
    """One shared, never modified, eval-mode instance per net (tests that modify copy it)."""
    torch.manual_seed(0)
    return NETS[net].cls().eval()


def _geometry(attrs: dict[str, Any]) -> tuple[tuple[int, int], ...]:
    """Caffe (kernel, stride, pad) as (h, w) pairs: from ``{name}_h``/``{name}_w`` or from
    ``kernel_size``/``stride``/``pad``; a missing stride is 1 and a missing pad 0."""
    pairs = []
    for name, default in (("kernel_size", None), ("stride", 1), ("pad", 0)):
        short = name.removesuffix("_size")
        if f"{short}_h" in attrs:
            pairs.append((attrs[f"{short}_h"], attrs[f"{short}_w"]))
        else:
            pairs.append((attrs.get(name, default),) * 2)
    return tuple(pairs)


def _published(graph: str) -> list[tuple[Any, ...]]:
    """(id, op, inputs, output, geometry) of each layer; a gsm layer is skipped as transparent."""
    layers = _reference("inception_layer_graphs.json")[graph]
    through = {layer["outputs"][0]: layer["inputs"][0] for layer in layers if layer["op"] == "gsm"}
    rows = []
    for layer in layers:
        op, attrs = layer["op"], layer["attrs"]
        if op in ("gsm", "InnerProduct"):
            continue
        geometry: tuple[Any, ...] = ()
        if op in ("Convolution", "Pooling"):
            size = attrs["num_output"] if op == "Convolution" else attrs["mode"]
            geometry = (size, *_geometry(attrs))
        inputs = tuple(through.get(blob, blob) for blob in layer["inputs"])
        rows.append((layer["id"], op, inputs, layer["outputs"][0], geometry))
    return rows


def _ours(model: nn.Module, layers: tuple[CaffeLayer, ...]) -> list[tuple[Any, ...]]:
    """The same rows for our net, geometry read from the modules that actually run."""
    rows = []
    for layer in layers:
        geometry: tuple[Any, ...] = ()
        if layer.op == "Convolution":
            conv = model.get_submodule(layer.name)
            assert isinstance(conv, nn.Conv2d) and conv.bias is not None
            geometry = (conv.out_channels, conv.kernel_size, conv.stride, conv.padding)
        elif layer.op == "Pooling":
            pool = model.get_submodule(layer.name)
            assert isinstance(pool, nn.MaxPool2d | nn.AvgPool2d)
            # Caffe rounds sizes up; at stride 1 rounding cannot change a size and is off
            assert pool.ceil_mode == (layer.stride != (1, 1))
            mode = "max" if isinstance(pool, nn.MaxPool2d) else "ave"
            assert mode == "max" or pool.count_include_pad
            geometry = (mode, pool.kernel_size, pool.stride, pool.padding)
        rows.append((layer.name, layer.op, layer.inputs, layer.output, geometry))
    return rows


@pytest.mark.parametrize("net", NETS)
def test_layers_match_published_graph(net: str) -> None:
    model, pool = _model(net), NETS[net].table.final_pool
    published = _published(NETS[net].graph)
    # the published head ends with a fixed-size average pool; ours is a global mean (below)
    geometry = (pool.mode, pool.kernel, pool.stride, pool.pad)
    assert (pool.name, pool.op, pool.inputs, pool.output, geometry) == published[-1]
    assert _ours(model, model.graph_layers) == published[:-1]  # same layers, same order


@pytest.mark.parametrize("net", NETS)
def test_canonical_size_gives_the_published_final_map(net: str) -> None:
    model, spec = _model(net), NETS[net]
    x = torch.randn(1, 3, spec.size, spec.size)
    with torch.no_grad():
        features, pooled = model.forward_features(x), model(x)
    assert model.num_features == spec.features
    assert features.shape == (1, spec.features, spec.final, spec.final)
    # the published pool covers exactly that map, so our global mean computes the same
    assert spec.table.final_pool.kernel == (spec.final, spec.final)
    torch.testing.assert_close(pooled, F.avg_pool2d(features, spec.final).flatten(1))


@pytest.mark.parametrize(
    ("net", "entry"), [(net, entry) for net, spec in NETS.items() for entry in spec.entries]
)
def test_state_dict_equals_released_backbone(net: str, entry: str) -> None:
    model = _model(net)
    released = _reference("official_state_dict_shapes.json")[entry]
    classifier = model.imagenet_classifier
    if entry.endswith("_gsf_backbone"):  # these still hold the ImageNet classifier
        assert any(key.startswith(classifier) for key in released)
    expected = {}
    for key, shape in released.items():
        key = key.removeprefix("base_model.")
        if not key.startswith(("gsm_", "gsf_", "new_fc.", *classifier)):
            expected[key] = shape
    assert {key: list(t.shape) for key, t in model.state_dict().items()} == expected


def _released_sites(net: str, kind: str) -> list[tuple[str, str | None, int]]:
    """(conv, official module, channels) from the GSM graph's gsm layers or the GSF checkpoint."""
    if kind == "gsf":
        released = _reference("official_state_dict_shapes.json")[NETS[net].entries[1]]
        modules = [(key.split(".")[0], shape[0]) for key, shape in released.items()
                   if key.startswith("gsf_") and key.endswith(".bn.weight")]  # fmt: skip
        return [(name.removeprefix("gsf_"), name, c) for name, c in modules]
    layers = _reference("inception_layer_graphs.json")[NETS[net].graph]
    gsm = [(layer["inputs"][0], layer["id"], layer["attrs"]["fPlane"]) for layer in layers
           if layer["op"] == "gsm"]  # fmt: skip
    return gsm if kind == "gsm" else [(conv, None, c) for conv, _, c in gsm]


@pytest.mark.parametrize("kind", ["tsm", "gsm", "gsf"])
@pytest.mark.parametrize("net", NETS)
def test_temporal_sites_match_release(net: str, kind: str) -> None:
    model = _model(net)
    sites = model.temporal_sites(kind)
    assert all(site.position == "after" and site.official_layer is None for site in sites)
    ours = [(s.path, s.official_module, model.get_submodule(s.path).out_channels) for s in sites]
    assert ours == _released_sites(net, kind)
    assert len(ours) == (11 if (net, kind) == ("inceptionv3", "gsf") else 10)
    with pytest.raises(ValueError, match="unknown temporal kind"):
        model.temporal_sites("tsn")  # type: ignore[arg-type]


class _Scale(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.factor = 1.0

    def forward(self, x: Tensor) -> Tensor:
        return x * self.factor


@pytest.mark.parametrize("net", NETS)
def test_inserted_modules_run_at_every_site(net: str) -> None:
    """Silencing any one inserted module changes the output: forward looks layers up per call."""
    model = copy.deepcopy(_model(net))
    tiny = NETS[net].tiny
    # every site of any kind (InceptionV3: 12, GSM's and GSF's differ in two blocks)
    paths = list(dict.fromkeys(s.path for k in ("gsm", "gsf") for s in model.temporal_sites(k)))
    x = torch.randn(1, 3, tiny, tiny)
    with torch.no_grad():
        before = model(x)
        insert_temporal(model, lambda channels: _Scale(), [Site(p, "after") for p in paths])
        assert torch.equal(model(x), before)  # scale 1: the wrapped net computes the same
        for path in paths:
            wrap = model.get_submodule(path)
            assert isinstance(wrap, TemporalWrap) and isinstance(wrap.temporal, _Scale)
            wrap.temporal.factor = 0.0
            assert not torch.allclose(model(x), before), path
            wrap.temporal.factor = 1.0


@pytest.mark.parametrize("net", NETS)
def test_channels_last_and_bf16_autocast(net: str) -> None:
    model = _model(net)
    tiny = NETS[net].tiny
    x = torch.randn(1, 3, tiny, tiny) * 50  # Caffe inputs: 0-255 minus the mean
    fast = copy.deepcopy(model).to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = model(x)
        got = fast(x_cl)
        assert fast.forward_features(x_cl).is_contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    assert expected.shape == (1, model.num_features) and torch.isfinite(expected).all()
    assert (got - expected).norm() <= 1e-4 * expected.norm()
    assert low.dtype == torch.bfloat16 and (low - expected).norm() <= 0.05 * expected.norm()


@pytest.mark.parametrize("net", NETS)
def test_training_step_reaches_every_parameter(net: str) -> None:
    """In-place ReLUs on BN outputs leave autograd intact."""
    model = copy.deepcopy(_model(net)).train()
    tiny = NETS[net].tiny
    model(torch.randn(2, 3, tiny, tiny)).square().sum().backward()
    assert not [name for name, p in model.named_parameters() if p.grad is None]


@pytest.mark.parametrize("net", NETS)
def test_program_frees_every_blob_once_and_relus_run_in_place(net: str) -> None:
    model = _model(net)
    program, final = model._program, model._output_slot
    released = [slot for step in program for slot in step.release]
    assert sorted(released) == [slot for slot in range(len(program) + 1) if slot != final]
    live, peak = {0}, 1
    for step in program:
        live.add(step.output)
        peak = max(peak, len(live))
        live.difference_update(step.release)
    assert live == {final} and peak <= 8  # a block's branches, not the whole net
    relus = {layer.name for layer in model.graph_layers if layer.op == "ReLU"}
    assert {step.code for step in program if step.name in relus} == {_RELU_INPLACE}


def _toy_layers() -> list[CaffeLayer]:
    """data -> conv a -> BN; a 1x1 conv reads the BN output before the in-place ReLU; a ReLU on
    the input itself; concat [relu(bn), peek, relu(data)]."""
    return [
        CaffeLayer("a", "Convolution", ("data",), "a", 4, (3, 3), (1, 1), (1, 1)),
        CaffeLayer("a_bn", "BN", ("a",), "a_bn"),
        CaffeLayer("peek", "Convolution", ("a_bn",), "peek", 2),
        CaffeLayer("a_relu", "ReLU", ("a_bn",), "a_bn"),
        CaffeLayer("data_relu", "ReLU", ("data",), "data"),
        CaffeLayer("out", "Concat", ("a_bn", "peek", "data"), "out"),
    ]


def test_executor_keeps_caffe_semantics_and_autograd() -> None:
    graph = CaffeGraph(_toy_layers(), output="out").train()
    x = torch.randn(2, 3, 5, 5, requires_grad=True)
    kept = x.detach().clone()
    got = graph.forward_features(x)
    pre = graph.a_bn(graph.a(kept))
    expected = torch.cat([F.relu(pre), graph.peek(pre), F.relu(kept)], dim=1)
    torch.testing.assert_close(got, expected)
    assert torch.equal(x.detach(), kept)  # the ReLU on the input did not overwrite the caller's x
    got.sum().backward()  # would raise if the shared BN output had been modified in place
    codes = {step.name: step.code for step in graph._program}
    assert codes["a_relu"] != _RELU_INPLACE and codes["data_relu"] != _RELU_INPLACE
    with pytest.raises(ValueError, match="no such blob"):
        CaffeGraph([CaffeLayer("r", "ReLU", ("nope",), "r")], output="r")

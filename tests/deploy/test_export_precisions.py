"""fp16 and calibrated int8 exports (checked against PyTorch fp32, refused below the agreement
threshold) and the OpenVINO backend for exported files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gateshift.cli.main import main
from gateshift.deploy.export import export_checked, export_onnx, random_clips
from gateshift.inference.onnx_runtime import load_onnx, read_metadata, runtime_network

from ..inference.helpers import make_run
from .test_export import _live_gsm, measure_bn_statistics

onnx = pytest.importorskip("onnx")


def _initializer_types(path: Path) -> dict[str, int]:
    """Each weight's ONNX element type by name."""
    graph = onnx.load(str(path)).graph
    return {t.name: t.data_type for t in graph.initializer}


def test_fp16_export_keeps_float32_inputs_and_is_close_to_pytorch(tmp_path: Path) -> None:
    # measured BN statistics, as a trained net has: with the initial ones this model's logits
    # are ~200 with a common offset and fp16's relative error reaches 1e-2; measured, ~1e-3
    # (2-core AMD EPYC, ONNX Runtime 1.32)
    model = measure_bn_statistics(_live_gsm(), 8, seed=11)
    clips = random_clips(model, 12, seed=3)
    report = export_checked(model, tmp_path / "m16.onnx", precision="fp16", clips=clips)
    assert report.precision == "fp16" and report.clips == 12
    assert 0 < report.max_rel_error < 5e-3 and report.top1_agreement >= 0.98
    types = _initializer_types(Path(report.path))
    assert onnx.TensorProto.FLOAT16 in types.values()  # the weights were converted
    graph = onnx.load(report.path).graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # io kept float
    assert read_metadata(report.path)["precision"] == "fp16"
    got = load_onnx(report.path).network(clips[:2])  # predict's loader runs it
    with torch.inference_mode():
        want = model(clips[:2])
    assert float((got - want).abs().max() / want.abs().max()) < 1e-2


def test_int8_export_is_quantised_except_the_gate_convolutions(tmp_path: Path) -> None:
    model = _live_gsm()
    clips = random_clips(model, 16, seed=3)
    calibration = random_clips(model, 8, seed=4)  # same distribution as the clips checked
    report = export_checked(
        model, tmp_path / "m8.onnx", precision="int8", clips=clips, calibration=calibration
    )
    assert report.precision == "int8" and report.top1_agreement >= 0.98
    assert report.max_rel_error > 1e-4  # it really is quantised, not the fp32 graph
    graph = onnx.load(report.path).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("QuantizeLinear") > 10 and ops.count("DequantizeLinear") > 10  # QDQ format
    types = _initializer_types(Path(report.path))
    assert onnx.TensorProto.INT8 in types.values()  # int8 weights
    dequantized = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    gates = [n for n in convs if _is_gate(n, _dims(graph, n.input[1]))]
    # one GSM per ResNet-18 block, each gate a 3x3x3 convolution as 2-D taps ...
    assert len(gates) == sum(hasattr(m, "conv3D") for m in model.modules()) == 8
    assert all(n.input[1] not in dequantized for n in gates)  # ... take float weights
    assert any(n.input[1] in dequantized for n in convs if n not in gates)
    # the gates' batch norms are int8 depthwise convolutions, not float islands
    assert "BatchNormalization" not in ops
    assert read_metadata(report.path)["precision"] == "int8"


def _is_gate(node: object, dims: list[int]) -> bool:
    """A GSM gate's convolution in the exported graph: 3 temporal taps x 2 groups of 3x3, as
    one dense convolution (zeros across the groups)."""
    groups = [a.i for a in node.attribute if a.name == "group"]  # type: ignore[attr-defined]
    return len(dims) == 4 and dims[0] == 6 and dims[2:] == [3, 3] and groups in ([], [1])


def _dims(graph: object, name: str) -> list[int]:
    for t in graph.initializer:  # type: ignore[attr-defined]
        if t.name == name:
            return list(t.dims)
    return []


def test_int8_below_the_agreement_threshold_is_refused_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    model = _live_gsm()
    clips = random_clips(model, 16, seed=3)
    # calibrated on clips 1000x too small: every real activation saturates its int8 range
    calibration = random_clips(model, 4, seed=4) * 1e-3
    with pytest.raises(ValueError, match=r"int8 ONNX export does not reproduce.*least 0\.980"):
        export_checked(
            model, tmp_path / "bad8.onnx", precision="int8", clips=clips, calibration=calibration
        )
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="needs calibration clips"):
        export_onnx(model, tmp_path / "none.onnx", precision="int8")
    with pytest.raises(ValueError, match="choose one of fp32, fp16, int8"):
        export_onnx(model, tmp_path / "x.onnx", precision="int4")


def test_openvino_runs_the_exported_file_like_onnx_runtime(tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    model = _live_gsm()
    path = export_onnx(model, tmp_path / "m.onnx")
    clips = random_clips(model, 3, seed=9)  # batch 3: the batch axis stays dynamic
    with torch.inference_mode():
        want = model(clips)
    got = load_onnx(path, runtime="openvino").network(clips)
    assert got.shape == want.shape
    assert float((got - want).abs().max() / want.abs().max()) < 1e-4
    bf16 = runtime_network(path, "openvino", dtype=torch.bfloat16)(clips)  # AMX's fast path
    err = float((bf16 - want).abs().max() / want.abs().max())
    assert 0 < err < 0.1
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a model")
    with pytest.raises(ValueError, match=r"corrupt\.onnx is not a model OpenVINO can load"):
        runtime_network(corrupt, "openvino")
    with pytest.raises(ValueError, match="unknown runtime"):
        runtime_network(path, "tensorrt")


def test_a_run_exports_to_int8_and_predicts_on_every_backend(
    tiny_synthetic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("openvino")
    run, _ = make_run(tmp_path, tiny_synthetic)
    out = tmp_path / "m8.onnx"
    argv = ["export", str(run), "--out", str(out), "--precision", "int8", "--json"]
    assert main([*argv, "--calibration-clips", "4", "--clips", "6", "--min-agreement", "0.5"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["precision"] == "int8" and report["clips"] == 6
    assert report["source"] == "validation" and report["top1_agreement"] >= 0.5
    assert main(["export", str(run), "--json"]) == 0  # fp32 at RUN/export/model.onnx
    capsys.readouterr()
    video = str(next((tiny_synthetic / "val" / "moving_left").glob("*.mp4")))
    tops = {}
    for backend in ("torch", "onnxruntime", "openvino"):
        assert main(["predict", str(run), video, "--backend", backend, "--json"]) == 0
        tops[backend] = json.loads(capsys.readouterr().out)[0]["top"][0]
    for backend in ("onnxruntime", "openvino"):
        for (name, _, p), (want, _, q) in zip(tops[backend], tops["torch"], strict=True):
            assert name == want and abs(p - q) < 1e-4
    assert main(["predict", str(out), video, "--json"]) == 0  # the int8 file alone
    assert json.loads(capsys.readouterr().out)[0]["top"][0][0][0] in {t[0] for t in tops["torch"]}
    assert main(["predict", str(out), video, "--backend", "openvino"]) == 2  # not faithful there
    assert "int8 export, which OpenVINO does not run faithfully" in capsys.readouterr().err
    metrics = tmp_path / "ov.json"
    assert main(["evaluate", str(run), "--backend", "openvino", "--json", str(metrics)]) == 0
    assert (run / "eval" / "val_1x1_openvino" / "metrics.json").is_file()


def test_int8_of_a_run_without_its_training_data_is_a_clear_error(
    tiny_synthetic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, _ = make_run(tmp_path, tiny_synthetic)
    config = run / "bundle" / "config.yaml"
    config.write_text(config.read_text().replace(str(tiny_synthetic), str(tmp_path / "gone")))
    assert main(["export", str(run), "--precision", "int8"]) == 2
    err = capsys.readouterr().err
    assert "int8 calibration needs the training split" in err and "data.root" in err
    assert not (run / "export" / "model.onnx").exists()


def test_average_pools_become_exact_depthwise_convolutions_for_int8() -> None:
    from onnx import TensorProto, helper

    from gateshift.deploy._onnx_rewrite import pools_as_depthwise_convs

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 5, 6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 5, 6])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 3, 3, 3])
    pool = dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1)
    nodes = [
        helper.make_node("AveragePool", ["x"], ["y"], name="p1", strides=[1, 1], **pool),
        helper.make_node("AveragePool", ["y"], ["z"], name="p2", strides=[2, 2], **pool),
    ]
    graph = helper.make_graph(nodes, "g", [x], [z], value_info=[y])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    import onnxruntime as ort

    feed = {"x": torch.randn(2, 3, 5, 6).numpy()}
    want = ort.InferenceSession(proto.SerializeToString()).run(None, feed)[0]
    assert pools_as_depthwise_convs(proto) == 1  # the stride-2 pool is not a plain conv
    assert [n.op_type for n in proto.graph.node] == ["Conv", "AveragePool"]
    got = ort.InferenceSession(proto.SerializeToString()).run(None, feed)[0]
    torch.testing.assert_close(torch.from_numpy(got), torch.from_numpy(want))


def test_batch_norms_on_frames_become_exact_depthwise_convolutions_for_int8() -> None:
    from onnx import TensorProto, helper, numpy_helper

    from gateshift.deploy._onnx_rewrite import batchnorms_as_depthwise_convs

    g = torch.Generator().manual_seed(0)
    stats = [
        numpy_helper.from_array(t.numpy(), name)
        for name, t in zip(
            ("s", "b", "m", "v"),
            (
                torch.randn(3, generator=g),
                torch.randn(3, generator=g),
                torch.randn(3, generator=g),
                torch.rand(3, generator=g) + 0.5,
            ),
            strict=True,
        )
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 5, 6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 5, 6])
    f = helper.make_tensor_value_info("f", TensorProto.FLOAT, [2, 3])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 3])
    nodes = [
        helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], epsilon=1e-3),
        helper.make_node("ReduceMean", ["y"], ["f"], axes=[2, 3], keepdims=0),
        helper.make_node("BatchNormalization", ["f", "s", "b", "m", "v"], ["z"]),  # 2-D: kept
    ]
    graph = helper.make_graph(nodes, "g", [x], [z], stats, value_info=[y, f])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    import onnxruntime as ort

    feed = {"x": torch.randn(2, 3, 5, 6, generator=g).numpy()}
    want = ort.InferenceSession(proto.SerializeToString()).run(None, feed)[0]
    assert batchnorms_as_depthwise_convs(proto) == 1
    assert [n.op_type for n in proto.graph.node] == ["Conv", "ReduceMean", "BatchNormalization"]
    got = ort.InferenceSession(proto.SerializeToString()).run(None, feed)[0]
    torch.testing.assert_close(torch.from_numpy(got), torch.from_numpy(want))

"""Exact rewrites of an exported ONNX graph before int8 quantisation: average pools and batch
norms as the depthwise convolutions they are.

ONNX Runtime quantises a 3x3 stride-1 average pool into ``QLinearAveragePool``, a slow kernel
next to its int8 convolutions: measured on BN-Inception GSM (2-core AMD EPYC, 2 threads), 28%
of the int8 file's latency sat in its nine stride-1 average pools. The same pool is a depthwise
convolution with every weight ``1 / (kH * kW)`` when padding counts towards the divisor
(``count_include_pad=1``) and no window leaves the padded input (stride 1, no ceil rounding
that adds a window), and int8 depthwise convolutions have fast kernels. The rewrite is done on
the ONNX graph (with ``onnx``'s helpers), not in the PyTorch model, whose pooling kernel is the
faster one there; the fp32 file keeps its pools. Sums run in another order, so the float result
differs by rounding only, and the export's parity check still measures the file written.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _channels(proto: Any) -> dict[str, int]:
    """Channel count (dim 1) of every 4-D tensor whose shape the graph records."""
    out = {}
    for info in [*proto.graph.value_info, *proto.graph.input, *proto.graph.output]:
        dims = info.type.tensor_type.shape.dim
        if len(dims) == 4 and dims[1].HasField("dim_value"):
            out[info.name] = dims[1].dim_value
    return out


def _as_depthwise(node: Any, channels: int) -> tuple[Any, Any] | None:
    """(Conv node, weight initializer) equal to average-pool ``node``, or None if not exact."""
    from onnx import helper, numpy_helper

    a = _attrs(node)
    kernel = list(a.get("kernel_shape", []))
    exact = (
        len(kernel) == 2
        and list(a.get("strides", [1, 1])) == [1, 1]
        and list(a.get("dilations", [1, 1])) == [1, 1]
        and a.get("count_include_pad", 0) == 1
        and a.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET")
    )
    if not exact:
        return None
    name = f"{node.name or node.output[0]}_as_depthwise"
    weight = np.full((channels, 1, *kernel), 1.0 / (kernel[0] * kernel[1]), dtype=np.float32)
    init = numpy_helper.from_array(weight, f"{name}.weight")
    pads = list(a.get("pads", [0, 0, 0, 0]))
    conv = helper.make_node(
        "Conv",
        [node.input[0], init.name],
        list(node.output),
        name=name,
        group=channels,
        kernel_shape=kernel,
        pads=pads,
        strides=[1, 1],
    )
    return conv, init


def pools_as_depthwise_convs(proto: Any) -> int:
    """Replace, in place, every exact stride-1 average pool of ``proto`` (shapes inferred) by
    its depthwise convolution; returns how many were replaced."""
    channels = _channels(proto)
    replaced = 0
    nodes = list(proto.graph.node)
    for i, node in enumerate(nodes):
        c = channels.get(node.input[0]) if node.op_type == "AveragePool" else None
        swap = None if c is None else _as_depthwise(node, c)
        if swap is not None:
            nodes[i] = swap[0]
            proto.graph.initializer.append(swap[1])
            replaced += 1
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    return replaced


def batchnorms_as_depthwise_convs(proto: Any) -> int:
    """Replace, in place, every inference-mode ``BatchNormalization`` of ``proto`` with
    initializer statistics by the 1x1 depthwise convolution it is: weight
    ``scale / sqrt(var + eps)`` and bias ``B - mean * weight`` per channel. Returns how many.

    The batch norms a convolution did not absorb (GSM's gate norm; a norm after a temporal
    module) have no int8 kernel in ONNX Runtime: each stayed float between a DequantizeLinear
    and a QuantizeLinear, and the layout transposes of the int8 convolutions' NHWC kernels
    gathered around them. As convolutions they are quantised like every other one (and a ReLU
    after one fuses into it)."""
    from onnx import helper, numpy_helper

    inits = {t.name: t for t in proto.graph.initializer}
    frames = _channels(proto)  # 4-D inputs only: a 1x1 convolution needs (N, C, H, W)
    replaced = 0
    nodes = list(proto.graph.node)
    for i, node in enumerate(nodes):
        params = node.input[1:5]
        if node.op_type != "BatchNormalization" or len(node.output) != 1:
            continue
        if node.input[0] not in frames:
            continue
        if len(params) != 4 or not all(p in inits for p in params):
            continue
        scale, bias, mean, var = (
            numpy_helper.to_array(inits[p]).astype(np.float64) for p in params
        )
        eps = _attrs(node).get("epsilon", 1e-5)
        weight = scale / np.sqrt(var + eps)
        name = f"{node.name or node.output[0]}_as_depthwise"
        w = numpy_helper.from_array(
            weight.astype(np.float32).reshape(-1, 1, 1, 1), f"{name}.weight"
        )
        b = numpy_helper.from_array((bias - mean * weight).astype(np.float32), f"{name}.bias")
        nodes[i] = helper.make_node(
            "Conv",
            [node.input[0], w.name, b.name],
            list(node.output),
            name=name,
            group=len(weight),
            kernel_shape=[1, 1],
        )
        proto.graph.initializer.extend([w, b])
        replaced += 1
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    return replaced

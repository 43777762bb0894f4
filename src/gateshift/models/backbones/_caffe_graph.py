"""A small executor for Caffe-style layer graphs, the native form of the Inception backbones.

The BN-Inception and InceptionV3 weights that TSN, GSM (arXiv 1912.00381) and GSF (arXiv
2203.08897) start from are Caffe conversions: a net is a list of layers, each with an id, an op
and named input and output blobs, and the weight files key every tensor by layer id.
:class:`CaffeGraph` builds such a list as a module whose parametrised and pooling layers are
registered flat under their Caffe ids (so those files load without renaming) and runs it from a
program compiled once at construction:

* blob names become integer slots, resolved once; the forward loop does no string work;
* a blob that an in-place Caffe layer rewrites (a ReLU whose output blob is its input blob) gets
  a new slot, so every reader sees the value Caffe semantics give it;
* each step drops the slots it reads for the last time, so inference holds only live activations
  (the branches of one block), not every blob of the net;
* layers are looked up by id on every call (``self._modules[id]``), never cached: a layer that
  :func:`~gateshift.models.temporal.insert.insert_temporal` swaps for a wrapper is the one that
  runs;
* a ReLU runs in place only when it is the sole reader of a BN output (true of every ReLU in the
  Inception nets): no other branch can see the overwrite, and BN's backward does not need its
  output. Any other ReLU runs out of place.

Pooling follows Caffe: output sizes round up (``ceil_mode=True``, where a stride makes it
matter) and average pooling divides by the window clipped to the padded input
(``count_include_pad=True``), which is what PyTorch computes.
(PyTorch also drops a last window that would start past the input when there is no padding;
Caffe keeps it, but that window only exists when stride > kernel, which no Inception pool has.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple, cast

import torch
from torch import Tensor, nn

LayerOp = Literal["Convolution", "BN", "ReLU", "Pooling", "Concat"]
PoolMode = Literal["max", "ave"]


@dataclass(frozen=True)
class CaffeLayer:
    """One Caffe layer: id, op, blobs, and the geometry of a Convolution or Pooling.

    ``kernel``, ``stride`` and ``pad`` are (height, width); ``num_output`` is a Convolution's
    output channels; ``mode`` is a Pooling's kind. Other ops ignore them.
    """

    name: str
    op: LayerOp
    inputs: tuple[str, ...]
    output: str
    num_output: int = 0
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    pad: tuple[int, int] = (0, 0)
    mode: PoolMode = "max"


# step codes of the compiled program
_CALL, _RELU_INPLACE, _RELU, _CONCAT = range(4)


class Step(NamedTuple):
    code: int
    name: str  # Caffe id; the module to call for _CALL
    inputs: tuple[int, ...]  # slots read
    output: int  # slot written
    release: tuple[int, ...]  # slots this step reads for the last time (or writes for nobody)


def _make_module(layer: CaffeLayer, in_channels: int) -> nn.Module | None:
    """The module of a layer that has one (Convolution, BN, Pooling); ReLU and Concat do not."""
    if layer.op == "Convolution":
        if layer.num_output <= 0:
            raise ValueError(f"Convolution {layer.name!r} needs num_output > 0")
        return nn.Conv2d(
            in_channels, layer.num_output, layer.kernel, layer.stride, layer.pad, bias=True
        )
    if layer.op == "BN":
        return nn.BatchNorm2d(in_channels)
    if layer.op == "Pooling":
        # rounding up only changes sizes when a stride skips; at stride 1 it is dropped, the
        # same outputs, because ONNX Runtime runs a ceil-mode pool on a slow generic kernel
        # (BN-Inception's stride-1 average pools: 28% of its fp32 latency there, measured)
        ceil = layer.stride != (1, 1)
        if layer.mode == "max":
            return nn.MaxPool2d(layer.kernel, layer.stride, layer.pad, ceil_mode=ceil)
        if layer.mode == "ave":
            return nn.AvgPool2d(
                layer.kernel, layer.stride, layer.pad, ceil_mode=ceil, count_include_pad=True
            )
        raise ValueError(f"Pooling {layer.name!r} has unknown mode {layer.mode!r}")
    if layer.op in ("ReLU", "Concat"):
        return None
    raise ValueError(f"layer {layer.name!r} has unsupported op {layer.op!r}")


def _wire(
    layers: Sequence[CaffeLayer], input_name: str, output: str
) -> tuple[list[tuple[CaffeLayer, tuple[int, ...], int]], int]:
    """Resolve blob names to slots: slot 0 is the input, slot i the output of layer i (1-based)."""
    slot_of = {input_name: 0}
    wired = []
    if len({layer.name for layer in layers}) != len(layers):
        raise ValueError("layer ids must be unique: they are the module and state-dict names")
    for index, layer in enumerate(layers, start=1):
        unknown = [blob for blob in layer.inputs if blob not in slot_of]
        if unknown or not layer.inputs:
            raise ValueError(f"layer {layer.name!r} reads {unknown or 'nothing'}: no such blob yet")
        wired.append((layer, tuple(slot_of[blob] for blob in layer.inputs), index))
        slot_of[layer.output] = index  # an in-place layer rebinds the name to a new slot
    if output not in slot_of:
        raise ValueError(f"no layer writes the output blob {output!r}")
    return wired, slot_of[output]


def compile_program(
    layers: Sequence[CaffeLayer], input_name: str, output: str
) -> tuple[tuple[Step, ...], int]:
    """The steps that run ``layers`` and the slot that holds ``output`` at the end."""
    wired, final = _wire(layers, input_name, output)
    last_read: dict[int, int] = {}
    readers: dict[int, int] = {}
    for step, (_, inputs, _) in enumerate(wired):
        for slot in inputs:
            last_read[slot] = step
            readers[slot] = readers.get(slot, 0) + 1
    bn_outputs = {out for layer, _, out in wired if layer.op == "BN"}
    program = []
    for step, (layer, inputs, out) in enumerate(wired):
        release = {slot for slot in inputs if last_read[slot] == step and slot != final}
        if out not in last_read and out != final:
            release.add(out)  # nobody reads it: do not keep it alive
        if layer.op == "ReLU":
            src = inputs[0]
            safe = src in bn_outputs and readers[src] == 1
            code = _RELU_INPLACE if safe else _RELU
        else:
            code = _CONCAT if layer.op == "Concat" else _CALL
        program.append(Step(code, layer.name, inputs, out, tuple(sorted(release))))
    return tuple(program), final


class CaffeGraph(nn.Module):
    """A Caffe layer list as a module; :meth:`forward_features` returns the ``output`` blob.

    Subclasses (the backbones) call ``super().__init__(layers, output=...)`` and add pooling.
    """

    def __init__(
        self,
        layers: Sequence[CaffeLayer],
        *,
        output: str,
        input_name: str = "data",
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.graph_layers: tuple[CaffeLayer, ...] = tuple(layers)
        # compiled first: it checks that every blob is written before it is read
        self._program, self._output_slot = compile_program(self.graph_layers, input_name, output)
        channels = {input_name: in_channels}
        for layer in self.graph_layers:
            module = _make_module(layer, channels[layer.inputs[0]])
            if module is not None:
                self.add_module(layer.name, module)
            if layer.op == "Convolution":
                channels[layer.output] = layer.num_output
            elif layer.op == "Concat":
                channels[layer.output] = sum(channels[blob] for blob in layer.inputs)
            else:
                channels[layer.output] = channels[layer.inputs[0]]
        #: channels of every blob (the last writer's, for blobs rewritten in place)
        self.blob_channels: dict[str, int] = channels

    def forward_features(self, x: Tensor) -> Tensor:
        """Run the graph on ``(B, C, H, W)``; returns the output blob ``(B, C', H', W')``."""
        modules = cast(dict[str, nn.Module], self._modules)  # looked up per call: see docstring
        env = {0: x}
        for code, name, inputs, out, release in self._program:
            if code == _CALL:
                y = modules[name](env[inputs[0]])
            elif code == _RELU_INPLACE:
                y = torch.relu_(env[inputs[0]])
            elif code == _RELU:
                y = torch.relu(env[inputs[0]])
            else:
                y = torch.cat([env[slot] for slot in inputs], dim=1)  # Caffe Concat: channels
            env[out] = y
            for slot in release:
                del env[slot]
        return env[self._output_slot]

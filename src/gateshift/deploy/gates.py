"""The spatio-temporal gates of a model's GSM and GSF modules, captured while it runs.

GSM (arXiv 1912.00381, Sec. 3; GSF arXiv 2203.08897 reuses it) computes, per insertion point,
``G = tanh(conv3d(relu(bn3d(X))))``: two planes ``G_1, G_2`` in [-1, 1] over ``(T, H, W)``, one
per channel half. ``Y_k = G_k * X_k`` is shifted in time, ``R_k = X_k - Y_k`` stays. Plane 1's
gated part moves one frame back (frame ``t-1`` receives ``Y_1[t]``), plane 2's one frame forward
(frame ``t+1`` receives ``Y_2[t]``). So the gate at frame ``t``, location ``(h, w)`` says how much
of that location's features is sent backward (plane 1, :data:`BACKWARD`) and forward (plane 2,
:data:`FORWARD`) in time; a negative gate sends them sign-flipped.

:func:`capture_gates` records them with forward pre-hooks, never by editing the models: each
hook recomputes the gate from the module's input with the definition's plain ops
(:func:`~gateshift.models.temporal.gsm.spatiotemporal_gate`), which the fast paths match. A hook
on a GSM also stops it folding its interleave into the convolution before it (it must see its
own input, see ``GateShift._can_follow``): same outputs, a little slower.

**Routing shares.** With ``m_k(t, h, w) = sum over the channels c of half k of |X_c(t, h, w)|``
and ``M`` the sum of ``|X|`` over every channel of the module's input (GSF's unprocessed
channels included), the shares of one module are::

    backward = sum_{t,h,w} |G_1| m_1 / M      forward = sum_{t,h,w} |G_2| m_2 / M
    kept     = (sum_{k,t,h,w} (1 - |G_k|) m_k + |X| of GSF's untouched channels) / M

the fraction of the feature magnitude the gate sends back, sends forward and leaves in place.
They add up to 1 since ``|G| <= 1``. Gated features of the first frame sent backward and of the
last frame sent forward leave the clip (the shift pads with zeros); they count as routed. For a
negative gate the shifted part is sign-flipped and the residual ``(1 - G) X`` is larger than
``(1 - |G|) |X|``: the shares partition the magnitude by ``|G|``, as the brief defines them. GSF
then mixes ``S_k`` and ``R_k`` with learned fusion weights; the shares describe the gate alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import torch
from torch import Tensor, nn

from gateshift.models.temporal._time import split_time
from gateshift.models.temporal.causal import causal_gate
from gateshift.models.temporal.gsf import GateShiftFuse
from gateshift.models.temporal.gsm import GateShift, spatiotemporal_gate

BACKWARD = 0  # gate plane whose gated half moves to the previous frame
FORWARD = 1  # gate plane whose gated half moves to the next frame


@dataclass(frozen=True)
class RoutingShares:
    """Fractions of a module's input magnitude sent forward, sent backward and kept (sum 1)."""

    forward: float
    backward: float
    kept: float


@dataclass
class ModuleGates:
    """One module's gates for the clips of one forward pass."""

    name: str  # the module's path in the model
    kind: Literal["gsm", "gsf"]
    channels: int  # the module's input channels
    gated_channels: int  # C for GSM, C' for GSF
    gate: Tensor  # (N, T, 2, H, W) float32 in [-1, 1]; planes BACKWARD, FORWARD
    magnitude: Tensor  # (N, T, 2, H, W): sum of |x| over each plane's channel half
    untouched: Tensor  # (N,): sum of |x| over GSF's unprocessed channels (zeros for GSM)
    causal: bool = False  # a causal module: both planes send their half to later frames

    def offsets(self) -> tuple[int, int]:
        """Frames the gated half of plane (BACKWARD, FORWARD) at ``t`` moves to, minus ``t``:
        offline GSM/GSF send plane 1 to ``t-1`` and plane 2 to ``t+1``; a causal module (whose
        halves read ``t-2`` and ``t-1``) sends them to ``t+2`` and ``t+1``."""
        return (2, 1) if self.causal else (-1, 1)

    def plane_labels(self) -> tuple[str, str]:
        """Short labels of the two planes for pictures: where their gated half goes."""
        return ("t+2", "t+1") if self.causal else ("bwd", "fwd")

    def shares(self) -> RoutingShares:
        """The routing shares of the module docstring, over all recorded clips."""
        routed = (self.gate.abs() * self.magnitude).sum((0, 1, 3, 4))  # (2,)
        total = self.magnitude.sum() + self.untouched.sum()
        if float(total) == 0.0:  # an all-zero input: nothing to route
            return RoutingShares(0.0, 0.0, 1.0)
        backward = float(routed[BACKWARD] / total)
        forward = float(routed[FORWARD] / total)
        return RoutingShares(forward, backward, 1.0 - forward - backward)

    def mean_open(self) -> tuple[float, float]:
        """Mean ``|G|`` of the (forward, backward) planes: how open the gate is on average."""
        mean = self.gate.abs().mean((0, 1, 3, 4))
        return float(mean[FORWARD]), float(mean[BACKWARD])


def gated_modules(model: nn.Module) -> list[tuple[str, GateShift | GateShiftFuse]]:
    """(path, module) of every GSM and GSF module of ``model``, in forward order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, GateShift | GateShiftFuse)]


def _record(name: str, records: list[ModuleGates], module: nn.Module, args: Any) -> None:
    x = args[0]
    assert isinstance(module, GateShift | GateShiftFuse)
    gated = module.processed if isinstance(module, GateShiftFuse) else module.channels
    t = module.num_segments
    with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
        frames = x[:, :gated].float()  # (N*T, C', H, W)
        gate_of = causal_gate if module.causal else spatiotemporal_gate
        gate = gate_of(frames, module.bn, module.conv3D, t)  # (N, T, 2, H, W)
        halves = split_time(frames.abs(), t).unflatten(2, (2, gated // 2))  # (N, T, 2, C'/2, H, W)
        rest = x[:, gated:].float().abs().sum((1, 2, 3))  # (N*T,): GSF's untouched channels
        records.append(
            ModuleGates(
                name=name,
                kind="gsf" if isinstance(module, GateShiftFuse) else "gsm",
                channels=int(x.shape[1]),
                gated_channels=gated,
                gate=gate.detach().cpu(),
                magnitude=halves.sum(3).cpu(),
                untouched=rest.view(-1, t).sum(1).cpu(),  # (N,)
                causal=bool(module.causal),
            )
        )


@contextmanager
def capture_gates(model: nn.Module) -> Iterator[list[ModuleGates]]:
    """Inside the block, every forward of ``model`` appends one :class:`ModuleGates` per GSM/GSF
    module (in forward order) to the yielded list; the hooks are removed on exit."""
    records: list[ModuleGates] = []
    handles = [
        module.register_forward_pre_hook(partial(_record, name, records))
        for name, module in gated_modules(model)
    ]
    try:
        yield records
    finally:
        for handle in handles:
            handle.remove()

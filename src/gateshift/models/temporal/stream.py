"""The causal temporal modules one frame at a time, each with the state it needs from the past.

:func:`stream_module` wraps a causal :class:`~.gsm.GateShift`, :class:`~.gsf.GateShiftFuse` or
:class:`~.tsm.TemporalShift` in an adapter that takes ``(N, C, H, W)``: frame t of N streams,
and returns what the module gives frame t of a clip holding all frames so far (the definitions
are in :mod:`.causal`; frames before the first are zeros, as at a clip's start). The state, per
stream, is exactly what the module's reach back needs, and nothing is recomputed:

- **gate** (GSM, GSF): the 3-tap kernel reads ``U[t-2..t]``, ``U = relu(bn(X))``. Rather than
  keep the two earlier gate inputs (2 x C channels) and convolve them again, each frame's ``U`` is
  convolved once with all three taps, and what it owes the two next frames' gates is kept as two
  pending sums, ``(N, 4, H, W)`` (both groups' sums for t+1, then for t+2): the same terms,
  each computed once.
- **shift** (GSM, GSF): the gated features the shift reaches, ``Y_1[t-1], Y_1[t-2]`` (half 1
  takes t-2) and ``Y_2[t-1]`` (half 2 takes t-1), ``(N, C/2, H, W)`` each.
- **fusion** (GSF): the spatial means of ``[S_k, R_k]`` of the two earlier frames, the time taps
  of ``channel_conv_k``, ``(N, 2, 2, C'/2)`` per half.
- **TSM**: fold 1 of frames t-1 and t-2, fold 2 of frame t-1.

The adapters run the module's own parameters (no copy), in eval mode only (a training batch norm
would normalise a single frame). :class:`gateshift.Streamer` puts them in place around one
backbone pass per frame.

**Explicit state.** :meth:`StreamAdapter.state` lists that state as tensors (the pending gate
sums, then each history newest first, zeros where the stream is shorter) and
:meth:`StreamAdapter.load_state` puts such a list back: all zeros is a stream's first frame.
That makes a step a pure function ``(frame, state) -> (output, next state)``, which is what an
exported streaming graph carries (:mod:`gateshift.deploy.stream_export`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gateshift.models.temporal._gate import dense_taps
from gateshift.models.temporal._time import same_format_as, tracing
from gateshift.models.temporal.causal import SHIFT_BACK
from gateshift.models.temporal.gsf import GateShiftFuse
from gateshift.models.temporal.gsm import GateShift, merge_halves
from gateshift.models.temporal.tsm import TemporalShift


class _History:
    """The last ``depth`` values of one per-stream tensor, zeros before the first frame."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.values: list[Tensor] = []  # newest first

    def back(self, steps: int, like: Tensor) -> Tensor:
        """The value ``steps`` frames ago (zeros while the stream is shorter)."""
        if steps <= len(self.values):
            return self.values[steps - 1]
        return torch.zeros_like(like)

    def push(self, value: Tensor) -> None:
        self.values = [value, *self.values][: self.depth]

    @property
    def size(self) -> int:
        """Tensors in the explicit state."""
        return self.depth

    def as_list(self) -> list[Tensor]:
        """The ``depth`` last values, newest first, zeros where the stream is shorter."""
        return [self.back(k, self.values[0]) for k in range(1, self.depth + 1)]

    def load(self, values: list[Tensor]) -> None:
        self.values = list(values)


class StreamAdapter(nn.Module):
    """Base: checks each frame batch against the first one's shape; :meth:`reset` forgets."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        if not getattr(module, "causal", False):
            raise ValueError(
                f"{type(module).__name__} is not causal: it reads the next frame, so it cannot "
                "stream; build the model with causal=True (train with model.causal=true)"
            )
        self.module = module
        self._shape: tuple[int, ...] | None = None
        self.reset()

    def reset(self) -> None:
        self._shape = None

    def _parts(self) -> list[_History | _GateStream]:
        """What the state is made of, in the order :meth:`state` lists it."""
        raise NotImplementedError

    def state(self) -> list[Tensor]:
        """The state after the last frame as a flat list of per-stream tensors (batch first);
        a step must have run since :meth:`reset`."""
        if self._shape is None:
            raise RuntimeError("no frame streamed since the last reset: no state to read")
        return [t for part in self._parts() for t in part.as_list()]

    @property
    def state_size(self) -> int:
        """How many tensors :meth:`state` lists."""
        return sum(part.size for part in self._parts())

    def load_state(self, tensors: list[Tensor]) -> None:
        """Continue from ``tensors`` (as :meth:`state` lists them; zeros: the first frame)."""
        self.reset()
        if len(tensors) != self.state_size:
            raise ValueError(
                f"{type(self).__name__} takes {self.state_size} state tensors, got {len(tensors)}"
            )
        at = 0
        for part in self._parts():
            part.load(list(tensors[at : at + part.size]))
            at += part.size

    def _check(self, x: Tensor) -> None:
        if x.dim() != 4:
            raise ValueError(f"a streamed frame batch is (N, C, H, W), got {tuple(x.shape)}")
        if self.module.training:
            raise RuntimeError("streaming runs in eval mode; call model.eval() first")
        shape = tuple(x.shape)
        if self._shape is None:
            self._shape = shape
        elif shape != self._shape:
            raise ValueError(
                f"stream frames changed shape from {self._shape} to {shape} inside "
                f"{type(self.module).__name__}; reset() the stream first"
            )


class _GateStream:
    """The causal gate one frame at a time: pending sums the next two frames' gates receive."""

    size = 1  # tensors in the explicit state

    def __init__(self) -> None:
        self.pending: Tensor | None = None  # (N, 4, H, W): both groups' for t+1, then t+2

    def as_list(self) -> list[Tensor]:
        assert self.pending is not None, "a step runs before the state is read"
        return [self.pending]

    def load(self, values: list[Tensor]) -> None:
        (self.pending,) = values

    def step(self, frames: Tensor, module: GateShift | GateShiftFuse) -> Tensor:
        """Gate planes ``(N, 2, H, W)`` of the current frame ``frames`` ``(N, C, H, W)``."""
        conv = module.conv3D
        u = F.relu(module.bn(frames))  # (N, C, H, W)
        # row 3g + k of the weight is group g's tap k, read at t - 2 + k (see .causal): frame t
        # gives tap 2 to its own gate, tap 1 to t+1's and tap 0 to t+2's
        if tracing():  # one dense convolution whose outputs come ordered by that: 4-D splits
            now, later, latest = F.conv2d(u, _by_lag(conv.weight), None, padding=1).split(2, 1)
        else:
            taps = F.conv2d(u, conv.weight, None, padding=1, groups=2).unflatten(1, (2, 3))
            now, later, latest = taps[:, :, 2], taps[:, :, 1], taps[:, :, 0]  # (N, 2, H, W)
        if self.pending is None:
            owed_now, owed_later = torch.zeros_like(now), torch.zeros_like(now)
        else:
            owed_now, owed_later = self.pending.split(2, 1)
        gate = torch.tanh(now + owed_now + conv.bias.view(1, 2, 1, 1))
        self.pending = torch.cat((owed_later + later, latest), 1)  # for t+1, for t+2
        return gate


def _by_lag(weight: Tensor) -> Tensor:
    """The grouped gate weight as a dense one (:func:`._gate.dense_taps`) with rows [tap 2 of
    both groups, tap 1, tap 0]."""
    return dense_taps(weight)[[2, 5, 1, 4, 0, 3]]


class _ShiftStream:
    """Both halves' gated features as far back as their shift reaches (t-2 and t-1)."""

    def __init__(self) -> None:
        self.halves = [_History(SHIFT_BACK[0]), _History(SHIFT_BACK[1])]

    def step(self, frames: Tensor, gate: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Shifted parts ``S_k`` and residuals ``R_k`` ``(N, C/2, H, W)`` of the current frame."""
        c = frames.shape[1]
        xg = frames.unflatten(1, (2, c // 2))  # (N, 2, C/2, H, W)
        y = xg * gate.to(frames.dtype).unsqueeze(2)  # Y = G * X
        shifted = []
        for k, history in enumerate(self.halves):
            shifted.append(history.back(SHIFT_BACK[k], y[:, k]))
            history.push(y[:, k])
        residual = xg - y
        return shifted, [residual[:, 0], residual[:, 1]]


class GateShiftStream(StreamAdapter):
    """A causal GSM, one frame per call: ``(N, C, H, W)`` -> ``(N, C, H, W)``."""

    module: GateShift

    def reset(self) -> None:
        super().reset()
        self.gate, self.shift = _GateStream(), _ShiftStream()

    def _parts(self) -> list[_History | _GateStream]:
        return [self.gate, *self.shift.halves]

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        gate = self.gate.step(x, self.module)  # (N, 2, H, W)
        n, c, h, w = x.shape
        if tracing():  # 4-D channel splits for an exported graph (no in-place, no 6-D transpose)
            parts = []
            for k, (xk, gk) in enumerate(zip(x.split(c // 2, 1), gate.split(1, 1), strict=True)):
                yk = xk * gk.to(x.dtype)
                history = self.shift.halves[k]
                parts.append(xk - yk + history.back(SHIFT_BACK[k], yk))  # R_k + S_k
                history.push(yk)
            z = torch.cat(parts, 1)
            if self.module.interleave:  # (N, 2 halves, 2, C/4, H, W) -> (N, 2, C/4, 2, H, W)
                z = z.unflatten(1, (2, 2, c // 4)).transpose(2, 3).reshape(n, c, h, w)
            return same_format_as(z, x)
        # channels last (the backbone's layout): one copy for the interleave, none otherwise;
        # the histories hold (N, C/2, H, W) views, the layout of the traced path above
        xg = x.permute(0, 2, 3, 1).unflatten(3, (2, c // 2))  # (N, H, W, 2, C/2), a view
        y = xg * gate.to(x.dtype).permute(0, 2, 3, 1).unsqueeze(4)  # Y = G * X
        z = xg - y  # R
        for k, history in enumerate(self.shift.halves):
            now = y[:, :, :, k].permute(0, 3, 1, 2)  # (N, C/2, H, W), a view
            z[:, :, :, k] += history.back(SHIFT_BACK[k], now).permute(0, 2, 3, 1)  # S_k + R_k
            history.push(now)
        if self.module.interleave:  # new channel 2b + a of a half holds old channel a*C/4 + b
            z = z.unflatten(4, (2, c // 4)).transpose(4, 5)  # (N, H, W, 2, C/4, 2)
        out = z.reshape(n, h, w, c).permute(0, 3, 1, 2)  # (N, C, H, W), channels_last
        return same_format_as(out, x)


class GateShiftFuseStream(StreamAdapter):
    """A causal GSF, one frame per call: ``(N, C, H, W)`` -> ``(N, C, H, W)``."""

    module: GateShiftFuse

    def reset(self) -> None:
        super().reset()
        self.gate, self.shift = _GateStream(), _ShiftStream()
        self.pooled = [_History(2), _History(2)]  # per half: [S_k, R_k] means of t-1, t-2

    def _parts(self) -> list[_History | _GateStream]:
        return [self.gate, *self.shift.halves, *self.pooled]

    def _fusion_weight(self, k: int, shifted: Tensor, residual: Tensor) -> Tensor:
        """Half ``k``'s fusion weight ``(N, C'/2, 1, 1)`` from its means at t-2, t-1, t."""
        conv = (self.module.channel_conv1, self.module.channel_conv2)[k]
        now = torch.stack((shifted.mean((-2, -1)), residual.mean((-2, -1))), dim=1)  # (N, 2, C'/2)
        history = self.pooled[k]
        image = torch.stack((history.back(2, now), history.back(1, now), now), dim=-1)
        history.push(now)
        # image (N, 2, C'/2, 3 frames): the kernel's time taps see t-2, t-1, t
        weight = torch.sigmoid(F.conv2d(image, conv.weight, conv.bias, padding=(1, 0)))
        return weight[:, 0, :, :, None]  # (N, 1, C'/2, 1) -> (N, C'/2, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        c = self.module.processed
        frames = x[:, :c]
        shifted, residual = self.shift.step(frames, self.gate.step(frames, self.module))
        fused = []
        for k, (s, r) in enumerate(zip(shifted, residual, strict=True)):
            w = self._fusion_weight(k, s, r).to(x.dtype)
            fused.append(r + w * (s - r))
        z = merge_halves(torch.stack(fused, dim=1).unsqueeze(1), self.module.interleave)
        if c < self.module.channels:
            z = torch.cat((z, x[:, c:]), dim=1)
        return same_format_as(z, x)


class TemporalShiftStream(StreamAdapter):
    """A causal TSM, one frame per call: fold 1 from two frames back, fold 2 from one."""

    module: TemporalShift

    def reset(self) -> None:
        super().reset()
        self.folds = [_History(SHIFT_BACK[0]), _History(SHIFT_BACK[1])]

    def _parts(self) -> list[_History | _GateStream]:
        return list(self.folds)

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        fold = x.shape[1] // self.module.shift_div
        parts = []
        for k, history in enumerate(self.folds):
            now = x[:, k * fold : (k + 1) * fold]
            parts.append(history.back(SHIFT_BACK[k], now))
            history.push(now.clone())  # a view of the block's input, which later layers reuse
        return same_format_as(torch.cat((*parts, x[:, 2 * fold :]), dim=1), x)


def stream_module(module: nn.Module) -> StreamAdapter:
    """The streaming adapter of a causal temporal module; an offline one is an error."""
    if isinstance(module, GateShift):
        return GateShiftStream(module)
    if isinstance(module, GateShiftFuse):
        return GateShiftFuseStream(module)
    if isinstance(module, TemporalShift):
        return TemporalShiftStream(module)
    raise TypeError(f"no streaming adapter for {type(module).__name__}")

"""Layer tables of BN-Inception and InceptionV3 in the Caffe form the GSM/GSF releases use.

BN-Inception (Ioffe & Szegedy, arXiv 1502.03167) is the Caffe model of TSN; InceptionV3 (Szegedy
et al., arXiv 1512.00567) is a TensorFlow model converted to Caffe, hence ids such as
``mixed_4_tower_1_conv_2_Conv2D``. GSM (arXiv 1912.00381) and GSF (arXiv 2203.08897) use both as
released. The tables are generated from one tuple or one short function per block, with each
net's naming convention, and match the published layer graphs id for id (tested).

Every convolution is followed by BN and an in-place ReLU. A convolution's padding defaults to
"same" (``kernel // 2``); InceptionV3's unpadded ones say ``pad=0``.

Each block also records its temporal site: the first convolution of the branch with the fewest
convolutions (branches without one, a bare pool, do not count; ties go to the first branch),
the placement rule of the GSM paper.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, get_args

from gateshift.models.backbones._caffe_graph import CaffeLayer, PoolMode
from gateshift.models.backbones.base import InsertKind
from gateshift.models.temporal.insert import Site

Pair = int | tuple[int, int]


def _pair(value: Pair) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else value


class _C(NamedTuple):
    """A conv-BN-ReLU unit: name (without the block prefix), channels, kernel, stride, pad."""

    name: str
    channels: int
    kernel: Pair
    stride: int = 1
    pad: Pair | None = None  # None: kernel // 2


@dataclass(frozen=True)
class InceptionTable:
    """A net's layers, the blob to pool, its published final pool and its temporal sites."""

    layers: tuple[CaffeLayer, ...]
    output: str
    #: the published fixed-size average pool; the backbones use a global mean instead
    final_pool: CaffeLayer
    #: (block, conv id) for each block, by the GSM placement rule
    sites: tuple[tuple[str, str], ...]


# (prefix, unit name) -> (conv id, BN id, ReLU id, blob after BN and ReLU)
Naming = Callable[[str, str], tuple[str, str, str, str]]


def _bninception_names(prefix: str, unit: str) -> tuple[str, str, str, str]:
    base = f"{prefix}_{unit}"
    # ReLU ids put "relu" after the prefix and drop a stride tag: conv1_7x7_s2 -> conv1_relu_7x7
    return base, f"{base}_bn", f"{prefix}_relu_{unit.removesuffix('_s2')}", f"{base}_bn"


def _inception_v3_names(prefix: str, unit: str) -> tuple[str, str, str, str]:
    base = f"{prefix}_{unit}" if prefix else unit
    return f"{base}_Conv2D", f"{base}_batchnorm", base, base


class _Builder:
    """Appends layers in the published order and collects each block's branches."""

    def __init__(self, naming: Naming) -> None:
        self.layers: list[CaffeLayer] = []
        self.sites: list[tuple[str, str]] = []
        self._naming = naming
        self._block = ""
        self._branches: list[list[str]] = []

    def begin(self, block: str) -> None:
        self._block, self._branches = block, []

    def chain(self, src: str, prefix: str, *units: _C, extend: bool = False) -> str:
        """Units one after another from ``src``; a new branch unless ``extend``."""
        if not extend:
            self._branches.append([])
        for unit in units:
            conv, bn, relu, blob = self._naming(prefix, unit.name)
            kernel = _pair(unit.kernel)
            pad = (kernel[0] // 2, kernel[1] // 2) if unit.pad is None else _pair(unit.pad)
            stride = _pair(unit.stride)
            self.layers += [
                CaffeLayer(conv, "Convolution", (src,), conv, unit.channels, kernel, stride, pad),
                CaffeLayer(bn, "BN", (conv,), blob),
                CaffeLayer(relu, "ReLU", (blob,), blob),  # in place, as in Caffe
            ]
            self._branches[-1].append(conv)
            src = blob
        return src

    def fork(self, src: str, prefix: str, *units: _C) -> list[str]:
        """Parallel units reading ``src``, all part of the current branch."""
        return [self.chain(src, prefix, unit, extend=True) for unit in units]

    def pool(self, name: str, src: str, mode: PoolMode, kernel: int, stride: int, pad: int = 0,
             output: str | None = None) -> str:  # fmt: skip
        k, s, p = _pair(kernel), _pair(stride), _pair(pad)
        self.layers.append(CaffeLayer(name, "Pooling", (src,), output or name, 0, k, s, p, mode))
        return output or name

    def concat(self, name: str, srcs: list[str]) -> str:
        """Join the block's branches and record its site."""
        self.layers.append(CaffeLayer(name, "Concat", tuple(srcs), name))
        fewest = min((b for b in self._branches if b), key=len)  # first among the shortest
        self.sites.append((self._block, fewest[0]))
        return name

    def table(self, final_pool: str, src: str, kernel: int, output: str) -> InceptionTable:
        self.pool(final_pool, src, "ave", kernel, 1, output=output)
        pool = self.layers.pop()  # documented, not run: see InceptionTable.final_pool
        return InceptionTable(tuple(self.layers), src, pool, tuple(self.sites))


# BN-Inception blocks: name, 1x1, 3x3 reduce, 3x3, double 3x3 reduce, double 3x3, pool, pool proj.
# A block without a 1x1 branch (3c, 4e) halves the resolution: stride-2 3x3s, a max pool, no proj.
_BNINCEPTION_BLOCKS: tuple[tuple[str, int, int, int, int, int, PoolMode, int], ...] = (
    ("3a", 64, 64, 64, 64, 96, "ave", 32),
    ("3b", 64, 64, 96, 64, 96, "ave", 64),
    ("3c", 0, 128, 160, 64, 96, "max", 0),
    ("4a", 224, 64, 96, 96, 128, "ave", 128),
    ("4b", 192, 96, 128, 96, 128, "ave", 128),
    ("4c", 160, 128, 160, 128, 160, "ave", 128),
    ("4d", 96, 128, 192, 160, 192, "ave", 128),
    ("4e", 0, 128, 192, 192, 256, "max", 0),
    ("5a", 352, 192, 320, 160, 224, "ave", 128),
    ("5b", 352, 192, 320, 192, 224, "max", 128),
)


def _bninception() -> InceptionTable:
    b = _Builder(_bninception_names)
    x = b.chain("data", "conv1", _C("7x7_s2", 64, 7, 2))
    x = b.pool("pool1_3x3_s2", x, "max", 3, 2)
    x = b.chain(x, "conv2", _C("3x3_reduce", 64, 1), _C("3x3", 192, 3))
    x = b.pool("pool2_3x3_s2", x, "max", 3, 2)
    for name, c1, c3r, c3, cdr, cd, pool, proj in _BNINCEPTION_BLOCKS:
        p, s = f"inception_{name}", 1 if c1 else 2
        b.begin(name)
        outs = [b.chain(x, p, _C("1x1", c1, 1))] if c1 else []
        outs.append(b.chain(x, p, _C("3x3_reduce", c3r, 1), _C("3x3", c3, 3, s)))
        double = (_C("double_3x3_reduce", cdr, 1), _C("double_3x3_1", cd, 3))
        outs.append(b.chain(x, p, *double, _C("double_3x3_2", cd, 3, s)))
        if proj:
            outs.append(b.chain(b.pool(f"{p}_pool", x, pool, 3, 1, 1), p, _C("pool_proj", proj, 1)))
        else:
            outs.append(b.pool(f"{p}_pool", x, pool, 3, 2))
        x = b.concat(f"{p}_output", outs)
    return b.table("global_pool", x, 7, "global_pool")  # 7x7 at 224 input


def _v3_a(b: _Builder, p: str, x: str, proj: int) -> str:
    """mixed to mixed_2 (35x35): 1x1, 5x5, double 3x3, average pool + 1x1."""
    b.begin(p)
    return b.concat(f"{p}_join", [
        b.chain(x, p, _C("conv", 64, 1)),
        b.chain(x, p, _C("tower_conv", 48, 1), _C("tower_conv_1", 64, 5)),
        b.chain(x, p, _C("tower_1_conv", 64, 1), _C("tower_1_conv_1", 96, 3),
                _C("tower_1_conv_2", 96, 3)),
        b.chain(b.pool(f"{p}_tower_2_pool", x, "ave", 3, 1, 1), p, _C("tower_2_conv", proj, 1)),
    ])  # fmt: skip


def _v3_b(b: _Builder, p: str, x: str) -> str:
    """mixed_3 (35 -> 17): 3x3/2, 1x1 + 3x3 + 3x3/2, max pool/2."""
    b.begin(p)
    return b.concat(f"{p}_join", [
        b.chain(x, p, _C("conv", 384, 3, 2, 0)),
        b.chain(x, p, _C("tower_conv", 64, 1), _C("tower_conv_1", 96, 3),
                _C("tower_conv_2", 96, 3, 2, 0)),
        b.pool(f"{p}_pool", x, "max", 3, 2),
    ])  # fmt: skip


def _v3_c(b: _Builder, p: str, x: str, c7: int) -> str:
    """mixed_4 to mixed_7 (17x17): 1x1, factorised 7x7 (7x1 first), factorised double 7x7
    (1x7 first), average pool + 1x1. ``c7``: width inside the 7x7 towers."""
    b.begin(p)
    return b.concat(f"{p}_join", [
        b.chain(x, p, _C("conv", 192, 1)),
        b.chain(x, p, _C("tower_conv", c7, 1), _C("tower_conv_1", c7, (7, 1)),
                _C("tower_conv_2", 192, (1, 7))),
        b.chain(x, p, _C("tower_1_conv", c7, 1), _C("tower_1_conv_1", c7, (1, 7)),
                _C("tower_1_conv_2", c7, (7, 1)), _C("tower_1_conv_3", c7, (1, 7)),
                _C("tower_1_conv_4", 192, (7, 1))),
        b.chain(b.pool(f"{p}_tower_2_pool", x, "ave", 3, 1, 1), p, _C("tower_2_conv", 192, 1)),
    ])  # fmt: skip


def _v3_d(b: _Builder, p: str, x: str) -> str:
    """mixed_8 (17 -> 8): 1x1 + 3x3/2, 1x1 + 7x1 + 1x7 + 3x3/2, max pool/2."""
    b.begin(p)
    return b.concat(f"{p}_join", [
        b.chain(x, p, _C("tower_conv", 192, 1), _C("tower_conv_1", 320, 3, 2, 0)),
        b.chain(x, p, _C("tower_1_conv", 192, 1), _C("tower_1_conv_1", 192, (7, 1)),
                _C("tower_1_conv_2", 192, (1, 7)), _C("tower_1_conv_3", 192, 3, 2, 0)),
        b.pool(f"{p}_pool", x, "max", 3, 2),
    ])  # fmt: skip


def _v3_e(b: _Builder, p: str, x: str, pool: PoolMode) -> str:
    """mixed_9, mixed_10 (8x8): 1x1, 1x1 forked into 3x1 and 1x3, 1x1 + 3x3 forked likewise,
    pool + 1x1."""
    b.begin(p)
    one = b.chain(x, p, _C("conv", 320, 1))
    t = b.chain(x, p, _C("tower_conv", 384, 1))
    tower = b.fork(t, p, _C("tower_mixed_conv", 384, (3, 1)), _C("tower_mixed_conv_1", 384, (1, 3)))
    t = b.chain(x, p, _C("tower_1_conv", 448, 1), _C("tower_1_conv_1", 384, 3))
    tower_1 = b.fork(t, p, _C("tower_1_mixed_conv", 384, (3, 1)),
                     _C("tower_1_mixed_conv_1", 384, (1, 3)))  # fmt: skip
    pooled = b.chain(b.pool(f"{p}_tower_2_pool", x, pool, 3, 1, 1), p, _C("tower_2_conv", 192, 1))
    return b.concat(f"{p}_join", [one, *tower, *tower_1, pooled])


def _inception_v3() -> InceptionTable:
    b = _Builder(_inception_v3_names)
    x = b.chain("data", "", _C("conv", 32, 3, 2, 0), _C("conv_1", 32, 3, 1, 0), _C("conv_2", 64, 3))
    x = b.pool("pool", x, "max", 3, 2)
    x = b.chain(x, "", _C("conv_3", 80, 1), _C("conv_4", 192, 3, 1, 0))
    x = b.pool("pool_1", x, "max", 3, 2)
    for p, proj in (("mixed", 32), ("mixed_1", 64), ("mixed_2", 64)):
        x = _v3_a(b, p, x, proj)
    x = _v3_b(b, "mixed_3", x)
    for p, c7 in (("mixed_4", 128), ("mixed_5", 160), ("mixed_6", 160), ("mixed_7", 192)):
        x = _v3_c(b, p, x, c7)
    x = _v3_d(b, "mixed_8", x)
    x = _v3_e(b, "mixed_9", x, "ave")
    x = _v3_e(b, "mixed_10", x, "max")
    return b.table("top_cls_pool", x, 6, "top_cls_global_pool")  # 6x6 at 229 input


BNINCEPTION = _bninception()
INCEPTION_V3 = _inception_v3()


def inception_sites(convs: Sequence[str], kind: InsertKind) -> list[Site]:
    """Sites after ``convs`` (before their BN); the authors keep module ``{kind}_{conv}``.

    TSM has no released Inception model: its shift goes to the same places, without a name.
    """
    if kind not in get_args(InsertKind):
        raise ValueError(f"unknown temporal kind {kind!r}; choose from {get_args(InsertKind)}")
    official = None if kind == "tsm" else kind
    return [Site(c, "after", official_module=official and f"{official}_{c}") for c in convs]

"""Native CPU kernels for GSM/GSF inference (``_native.cpp``), compiled on first use; the only
module that touches the compiled extension.

Eager PyTorch runs the memory-bound parts of GSM as several passes over memory: the gated
shift as two, whose inner loops in channels_last are only C/2 elements long (and in bf16 pay a
slow tail when C/2 is not a multiple of 32), the gate's BatchNorm and ReLU as two, and the
gate's frame and offset sums and tanh as ten small ops. Here each is one C++ loop: the gated
shift (:func:`gated_shift`), the eval BatchNorm + ReLU (:func:`affine_relu`) and the gate sums
+ tanh (:func:`gate_fold`); :func:`gate` runs the whole gate with them. They serve the
``native`` path of :func:`.gsm.choose_path` (inference, CPU, float32 and bfloat16 tensors
that are contiguous or channels_last); anything else, and any machine where the build fails,
runs the eager ops, which compute the same maths. In training, the gated shift without the
interleave (every folded placement) runs its forward (:func:`gated_shift`) and its closed-form
backward (:func:`gated_shift_backward`: ``D``, ``dX`` and ``dG`` in one pass instead of five)
here too, inside :class:`._fast_shift.GatedShiftFunction`.

The extension is built once per machine with ``torch.utils.cpp_extension`` (a C++ compiler and
ninja are needed; about 15 s on 2 cores) and cached under ``TORCH_EXTENSIONS_DIR`` (default
``~/.cache/torch_extensions``). ``GATESHIFT_NATIVE=0`` turns the kernels off.

Why on by default (decided from measurements, ``benchmarks/model_overhead.py --repeats 7``,
2-core Intel Xeon with AVX-512 and AMX, torch 2.13 CPU, median overhead over TSN, kernels on
vs off in the same run): BN-Inception fp32 channels_last +2.0% vs +8.1%, bf16 +3.9% vs +9.7%;
ResNet-50 fp32 channels_last +12.7% vs +27.3%, bf16 +21.6% vs +59.3%. On AMX CPUs the
convolutions are so fast that GSM's memory-bound passes dominate its cost, and these loops cut
that cost by half or more; on the 2-core AMD EPYC of earlier sessions they gained 1-5% (11% in
ResNet-50 bf16). Opting in would hand most users the slow path. The risks of a default build
are handled instead: a failed build logs one warning and the eager ops run; the build folder
is named after :func:`build_tag` (the instruction sets the compiler targets with
``-march=native`` on this machine, the compiler, torch's version), so a cache shared by
machines with other CPUs never loads a binary built for another.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import Tensor

from gateshift.models.temporal._time import memory_format_of

log = logging.getLogger(__name__)

_SOURCE = Path(__file__).with_name("_native.cpp")
_lock = threading.Lock()
_state: dict[str, ModuleType | None] = {}


def enabled() -> bool:
    """False when ``GATESHIFT_NATIVE`` is set to 0/false/no/off."""
    return os.environ.get("GATESHIFT_NATIVE", "1").strip().lower() not in (
        "0",
        "false",
        "no",
        "off",
    )


def build_tag() -> str:
    """Short hash of what the build depends on beyond its sources' contents: the instruction
    sets ``-march=native`` enables on this machine (the compiler's own predefined macros for it,
    ``__AVX512F__``, ``__AMX_TILE__``, ...), the compiler and its version, torch's version, and
    where the source file is (each checkout or install its own build).

    The build is cached in a folder named after it, so a cache shared by machines with other
    CPUs (a cluster's NFS home) or another torch never hands this machine a binary made for
    another: each gets its own build.
    """
    cxx = os.environ.get("CXX", "c++")
    try:
        macros = subprocess.run(
            [cxx, "-march=native", "-dM", "-E", "-x", "c++", os.devnull],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as error:
        raise RuntimeError(f"{cxx} -march=native does not run: {error}") from error
    # the source's path too: ninja rebuilds a folder whose sources moved, so two checkouts sharing
    # one folder rebuilt it in turn (50-60 s each time, and a run killed mid-build left its lock)
    key = "\n".join([*sorted(macros.splitlines()), cxx, torch.__version__, str(_SOURCE.resolve())])
    return hashlib.sha1(key.encode()).hexdigest()[:12]


def _build() -> ModuleType | None:
    if not shutil.which(os.environ.get("CXX", "c++")):
        log.info("gateshift native kernels off: no C++ compiler found")
        return None
    from torch.utils import cpp_extension

    if shutil.which("ninja") is None:  # the ninja wheel's binary, when its venv is not on PATH
        try:
            import ninja

            os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
        except ImportError:
            pass
    try:
        name = f"gateshift_native_{build_tag()}"
    except RuntimeError as error:
        log.warning("gateshift native kernels off: %s", error)
        return None
    try:  # a private helper, so only for the message and the lock: is there a build to reuse?
        folder = Path(cpp_extension._get_build_directory(name, False))
        built = any(folder.glob("*.so"))
    except Exception:
        folder, built = None, False
    if folder is not None:
        _drop_stale_lock(folder / "lock")
    if not built:
        log.info("building gateshift's native CPU kernels (once per machine, ~15 s)")
    try:
        module: ModuleType = cpp_extension.load(
            name=name,
            sources=[str(_SOURCE)],
            extra_cflags=["-O3", "-march=native", "-fopenmp"],
            verbose=False,
        )
    except Exception as error:  # any build failure means: use the eager ops
        log.warning("gateshift native kernels off, the build failed: %s", error)
        return None
    return module


#: a build takes ~15 s; a lock this old was left by a process killed while it built
STALE_LOCK_S = 600


def _drop_stale_lock(lock: Path) -> None:
    """Remove a build lock older than :data:`STALE_LOCK_S`: torch waits on a lock forever, so
    one left by a killed build would hang every later process without a word."""
    try:
        age = time.time() - lock.stat().st_mtime
    except FileNotFoundError:
        return
    if age > STALE_LOCK_S:
        log.warning("removing %s, a build lock left %.0f s ago by a stopped build", lock, age)
        lock.unlink(missing_ok=True)


def native_module() -> ModuleType | None:
    """The compiled kernels, building them on the first call; None when off or unavailable."""
    if not enabled():
        return None
    if "module" not in _state:
        with _lock:
            if "module" not in _state:
                _state["module"] = _build()
    return _state["module"]


def available() -> bool:
    """True when the kernels are switched on and built (building them if need be)."""
    return native_module() is not None


def layout(x: Tensor) -> bool | None:
    """Whether ``x`` is channels_last (else contiguous), or None when the kernels cannot take it:
    not on CPU, not float32/bfloat16, not 4-D, empty, or neither layout."""
    if (
        x.device.type != "cpu"
        or x.dtype not in (torch.float32, torch.bfloat16)
        or x.dim() != 4
        or x.numel() == 0
    ):
        return None
    if memory_format_of(x) == torch.channels_last:
        return True
    return False if x.is_contiguous() else None


def takes(x: Tensor) -> bool:
    """True when the kernels are built and can take frames ``x``."""
    return layout(x) is not None and native_module() is not None


def _planes_format(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


def _shift_inputs(
    x: Tensor, gate: Tensor, num_segments: int
) -> tuple[ModuleType, bool, Tensor] | None:
    """The module, ``x``'s layout and the gate as ``(N*T, 2, H, W)`` planes in ``x``'s dtype and
    layout, or None when the shift kernels cannot take ``x``."""
    channels_last = layout(x)
    if channels_last is None or x.shape[1] % 2 != 0 or x.shape[0] % num_segments != 0:
        return None
    module = native_module()
    if module is None:
        return None
    planes = gate.reshape(x.shape[0], 2, *x.shape[2:])
    return module, channels_last, planes.to(x.dtype, memory_format=_planes_format(channels_last))


def gated_shift(
    x: Tensor, gate: Tensor, num_segments: int, *, inplace: bool = False
) -> Tensor | None:
    """GSM's gated shift without interleave (``(N*T, C, H, W)`` frames, ``(N, T, 2, H, W)``
    gate) in one pass, or None when the kernels cannot take these tensors. ``inplace``
    overwrites ``x`` (only for frames nothing else holds)."""
    prepared = _shift_inputs(x, gate, num_segments)
    if prepared is None:
        return None
    module, channels_last, planes = prepared
    if inplace:
        module.gated_shift_(x, planes, num_segments, channels_last)
        return x
    out: Tensor = module.gated_shift(x, planes, num_segments, channels_last)
    return out


def gated_shift_backward(
    x: Tensor, gate: Tensor, grad: Tensor, num_segments: int
) -> tuple[Tensor, Tensor] | None:
    """The gradients ``(dX, dG)`` of :func:`gated_shift` for output gradient ``grad`` in one
    pass (``dG`` float32, the gate's shape), or None when the kernels cannot take ``x``."""
    prepared = _shift_inputs(x, gate, num_segments)
    if prepared is None:
        return None
    module, channels_last, planes = prepared
    grad = grad.to(x.dtype, memory_format=_planes_format(channels_last))
    grad_x, grad_planes = module.gated_shift_backward(x, planes, grad, num_segments, channels_last)
    return grad_x, grad_planes.reshape(gate.shape)


def affine_relu(x: Tensor, scale: Tensor, shift: Tensor) -> Tensor | None:
    """``relu(x * scale[c] + shift[c])`` in one pass (an eval BatchNorm and its ReLU), in
    ``x``'s dtype and layout, or None when the kernels cannot take ``x``."""
    channels_last = layout(x)
    module = None if channels_last is None else native_module()
    if module is None:
        return None
    scale, shift = (v.to(torch.float32).contiguous() for v in (scale, shift))
    if scale.shape != (x.shape[1],) or shift.shape != (x.shape[1],):
        raise ValueError(f"affine_relu: {x.shape[1]} channels, scale/shift {tuple(scale.shape)}")
    out: Tensor = module.affine_relu(x, scale, shift, channels_last)
    return out


def gate_fold(y: Tensor, bias: Tensor, num_segments: int) -> Tensor | None:
    """The gate ``(N, T, 2, H, W)`` from the 54 maps ``(N*T, 54, H, W)`` of the gate's 1x1
    convolution (:func:`._fast_gate.gate_from_maps` in one pass), in ``y``'s dtype and layout,
    or None when the kernels cannot take ``y``."""
    channels_last = layout(y)
    if channels_last is None or y.shape[1] != 54 or y.shape[0] % num_segments != 0:
        return None
    module = native_module()
    if module is None:
        return None
    b = bias.detach().to(torch.float32).contiguous()
    planes: Tensor = module.gate_fold(y, b, num_segments, channels_last)
    return planes.view(-1, num_segments, *planes.shape[1:])


def gate(
    frames: Tensor, plan: tuple[Tensor, Tensor, Tensor, Tensor], num_segments: int
) -> Tensor | None:
    """The whole gate in inference, ``(N, T, 2, H, W)`` in the frames' dtype and layout: BN +
    ReLU as one pass, the 1x1 convolution to 54 maps, the sums + tanh as one pass.

    ``plan`` is (BN scale, BN shift, 1x1 weight, gate bias), see :data:`._fast_gate.NativePlan`.
    Checked once here rather than per kernel (the checks cost ~20 us a site). None when the
    kernels cannot take ``frames``.
    """
    channels_last = layout(frames)
    module = None if channels_last is None else native_module()
    if module is None or frames.shape[0] % num_segments != 0:
        return None
    scale, shift, weight, bias = plan
    u = module.affine_relu(frames, scale, shift, channels_last)
    maps = F.conv2d(u, weight, None, groups=2)  # (N*T, 54, H, W)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if maps.dtype != frames.dtype or not maps.is_contiguous(memory_format=fmt):
        return None  # not seen; the eager ops cope with any layout
    planes: Tensor = module.gate_fold(maps, bias, num_segments, channels_last)
    return planes.view(-1, num_segments, *planes.shape[1:])

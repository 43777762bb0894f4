"""InferenceCache, and that the models' inference caches never serve stale values."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gateshift.models.temporal import GateShift, GateShiftFuse
from gateshift.models.temporal._cache import InferenceCache
from gateshift.models.temporal.insert import TemporalWrap


def _counting_cache() -> tuple[InferenceCache[int], list[int]]:
    return InferenceCache(), []


def test_value_is_kept_until_a_tensor_changes() -> None:
    cache, calls = _counting_cache()
    w = torch.ones(3)

    def compute() -> int:
        calls.append(1)
        return len(calls)

    with torch.no_grad():
        assert cache.get([w], "k", compute) == 1
        assert cache.get([w], "k", compute) == 1  # kept
        w.mul_(2)  # in-place write: new version
        assert cache.get([w], "k", compute) == 2
        assert cache.get([w], "other", compute) == 3  # another extra key
        w.data = torch.zeros(3)  # another storage, same object
        assert cache.get([w], "other", compute) == 4
        assert cache.get([torch.ones(3)], "other", compute) == 5  # another tensor
        assert cache.get([w.double()], "other", compute) == 6
    assert cache.get([w], "other", compute) == 7  # autograd on: always afresh
    assert cache.get([w], "other", compute) == 8
    with torch.inference_mode():
        frozen = torch.ones(3)
    with torch.no_grad():
        assert cache.get([frozen], None, compute) == 9  # no version counter: afresh
        assert cache.get([frozen], None, compute) == 10


def _randomised_bn(module: nn.Module) -> None:
    bn = module.bn
    assert isinstance(bn, nn.BatchNorm2d)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.normal_(0, 0.2)
        bn.running_var.uniform_(0.5, 2)
        nn.init.normal_(module.conv3D.weight, std=0.1)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["gsm-after-conv", "gsm", "gsf"])
def test_eval_after_a_training_step_uses_the_new_bn_statistics(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    t = 4
    if kind == "gsm-after-conv":
        temporal: nn.Module = GateShift(16, t)
        model: nn.Module = TemporalWrap(nn.Conv2d(6, 16, 3, padding=1), temporal, "after")
        x = torch.randn(2 * t, 6, 7, 5)
    else:
        temporal = GateShift(16, t) if kind == "gsm" else GateShiftFuse(16, t, ratio=100)
        model = temporal
        x = torch.randn(2 * t, 16, 7, 5)
    _randomised_bn(temporal)
    model.eval()
    with torch.no_grad():
        before = model(x)
        model.train()
        model(x * 3 + 1)  # updates the gate BN's running statistics in place
        model.eval()
        after = model(x)
        monkeypatch.setenv("GATESHIFT_NATIVE", "0")  # the eager ops, which read bn itself
        eager = model(x)
    assert not torch.allclose(before, after, atol=1e-4)
    torch.testing.assert_close(after, eager, rtol=1e-5, atol=1e-5)


def test_eval_sees_a_new_bn_eps_and_momentum_does_not_matter() -> None:
    torch.manual_seed(0)
    gsm = GateShift(16, 4).eval()
    _randomised_bn(gsm)
    x = torch.randn(8, 16, 5, 5)
    with torch.no_grad():
        gsm(x)
        gsm.bn.eps = 0.5
        got = gsm(x)
        gsm.bn.eps = 0.5 + 1e-9  # a different key, the same maths
        again = gsm(x)
    torch.testing.assert_close(got, again)
    fresh = GateShift(16, 4).eval()
    fresh.load_state_dict(gsm.state_dict())
    fresh.bn.eps = 0.5
    with torch.no_grad():
        torch.testing.assert_close(got, fresh(x), rtol=1e-5, atol=1e-5)


def test_threads_running_one_model_in_fp32_and_bf16_get_their_own_weights() -> None:
    """Autocast is per thread, the caches are per module: threads sharing a model in fp32 and
    bf16 at once each get exactly their single-thread result (the cache swaps its entry as one
    tuple, so no thread pairs one call's key with another call's value)."""
    torch.manual_seed(0)
    gsm = GateShift(16, 4)
    _randomised_bn(gsm)
    wrap = TemporalWrap(nn.Conv2d(6, 16, 3, padding=1), gsm, "after").eval()
    x = torch.randn(8, 6, 7, 5)

    def run(bf16: bool) -> torch.Tensor:
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            return wrap(x)

    want = {False: run(False), True: run(True)}
    errors: list[str] = []

    def worker(bf16: bool) -> None:
        for _ in range(30):
            try:
                got = run(bf16)
                if got.dtype != want[bf16].dtype or not torch.equal(got, want[bf16]):
                    errors.append(f"bf16={bf16}: wrong result")
            except Exception as error:  # a dtype mix-up shows as an error in conv2d
                errors.append(f"bf16={bf16}: {error}")

    import threading

    threads = [threading.Thread(target=worker, args=(i % 2 == 1,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

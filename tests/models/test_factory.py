"""``create_model``: every registered builder, the zoo's and a user's own, gives a Recognizer."""

from __future__ import annotations

from typing import Any

import pytest
from torch import nn

import gateshift
from gateshift import registry
from gateshift.models import Recognizer
from gateshift.models.zoo import build_recognizer


@pytest.fixture
def own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy of the registry, so that models registered by a test do not outlive it."""
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))


def test_a_users_model_is_found_by_create_model_and_list_models(own_registry: None) -> None:
    calls: list[dict[str, Any]] = []

    @gateshift.register_model("my_net")
    def my_net(**kwargs: Any) -> Recognizer:
        calls.append(kwargs)
        return build_recognizer("resnet18", "gsm", width=8, **kwargs)

    assert gateshift.list_models("my_*") == ["my_net"]
    assert "my_net" in gateshift.list_models() and "resnet18_gsm" in gateshift.list_models()
    model = gateshift.create_model("my_net", num_classes=3, num_segments=2, dropout=0.1)
    assert isinstance(model, Recognizer) and model.num_segments == 2
    assert calls == [{"num_classes": 3, "num_segments": 2, "dropout": 0.1}]


def test_a_builder_that_returns_no_recognizer_is_named(own_registry: None) -> None:
    gateshift.register_model("plain_net")(lambda **kw: nn.Linear(2, kw["num_classes"]))
    with pytest.raises(TypeError, match="'plain_net' returned Linear, not a Recognizer"):
        gateshift.create_model("plain_net", num_classes=3)


def test_importing_the_models_package_registers_the_zoo() -> None:
    from gateshift.models import list_models

    assert list_models is registry.list_models and len(list_models("*_gsm")) == 7

"""The registry: a name -> builder table that imports no model file (no registry <-> zoo cycle)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from gateshift import registry

SOURCE = Path(registry.__file__)


def _imported_modules(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):  # every import, at module level or inside a function
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append("." * node.level + (node.module or ""))
    return names


def test_registry_source_imports_nothing_from_the_models() -> None:
    imported = _imported_modules(ast.parse(SOURCE.read_text()))
    assert "difflib" in imported  # the walk does see the imports
    offending = [m for m in imported if m.startswith(("gateshift", ".", "torch"))]
    assert offending == []


def test_registry_loads_and_works_without_the_package() -> None:
    # load registry.py on its own (not through gateshift/__init__.py, which imports the models)
    code = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("standalone_registry", {str(SOURCE)!r})
reg = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reg)
reg.register_model("net_a")(lambda **kw: kw)
assert reg.list_models("net_*") == ["net_a"], reg.list_models()
assert reg.model_builder("net_a")(x=1) == {{"x": 1}}
loaded = sorted(m for m in sys.modules if m.startswith(("gateshift", "torch")))
assert loaded == [], loaded
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_name_registers_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_MODELS", {})
    registry.register_model("twice")(dict)
    with pytest.raises(ValueError, match="'twice' is already registered"):
        registry.register_model("twice")(dict)


def test_unknown_name_suggests_close_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_MODELS", {})
    registry.register_model("resnet50_gsm")(dict)
    with pytest.raises(ValueError, match="did you mean resnet50_gsm"):
        registry.model_builder("resnet50_gms")
    with pytest.raises(ValueError, match=r"unknown model 'zzz' \(`gateshift models`"):
        registry.model_builder("zzz")

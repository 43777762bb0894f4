"""Every config key with its type, value and doc: what ``gateshift config`` lists.

A key is a dotted path to a leaf of :class:`~gateshift.config.Config` (``optim.lr``); its doc is
the field's trailing ``# comment`` in :mod:`gateshift.config`, read from the source with
:mod:`tokenize` (comments are not in the AST) and matched to the field by line with :mod:`ast`.
The package ships its ``.py`` files, so the source is there wherever the package is installed.
"""

from __future__ import annotations

import ast
import dataclasses
import fnmatch
import inspect
import io
import json
import textwrap
import tokenize
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from gateshift.config import Config


@dataclass(frozen=True)
class ConfigKey:
    key: str  # dotted path, e.g. optim.lr
    type: str  # the field's type, readable: float, str | None, {sgd,adamw}
    value: Any  # the default, or the value after a config file and overrides
    doc: str  # the field's trailing comment


def field_docs(cls: type) -> dict[str, str]:
    """The trailing comment of each field of dataclass ``cls`` (``""`` where it has none)."""
    source = textwrap.dedent(inspect.getsource(cls))
    comments = {
        tok.start[0]: tok.string.lstrip("#").strip()
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type == tokenize.COMMENT
    }
    (node,) = ast.parse(source).body
    assert isinstance(node, ast.ClassDef)
    docs: dict[str, str] = {}
    for stmt in node.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            lines = range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1)
            docs[stmt.target.id] = next((comments[n] for n in lines if n in comments), "")
    return {f.name: docs.get(f.name, "") for f in dataclasses.fields(cls)}


def type_name(hint: Any) -> str:
    """A type as the user writes values for it: ``float``, ``int | None``, ``{sgd,adamw}``."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        return "{" + ",".join(str(a) for a in args) + "}"
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if hint is type(None):
        return "None"
    if origin is not None:
        return f"{origin.__name__}[{', '.join(type_name(a) for a in args)}]"
    return getattr(hint, "__name__", str(hint))


def _leaves(obj: Any, prefix: str = "") -> list[ConfigKey]:
    hints = typing.get_type_hints(type(obj))
    docs = field_docs(type(obj))
    keys: list[ConfigKey] = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            keys += _leaves(value, f"{prefix}{f.name}.")
        else:
            keys.append(ConfigKey(prefix + f.name, type_name(hints[f.name]), value, docs[f.name]))
    return keys


def matches(key: str, pattern: str) -> bool:
    """Shell-style match (``optim.*``); a plain name matches the key or the section it names."""
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(key, pattern)
    return key == pattern or key.startswith(pattern + ".")


def config_keys(cfg: Config | None = None, pattern: str = "*") -> list[ConfigKey]:
    """The keys of ``cfg`` (default: the defaults) matching ``pattern``, in definition order."""
    keys = [k for k in _leaves(cfg or Config()) if matches(k.key, pattern)]
    if not keys:
        raise ValueError(f"no config key matches {pattern!r} (`gateshift config` lists them all)")
    return keys


def format_keys(keys: list[ConfigKey]) -> str:
    """One ``key: type = value`` line per key, its doc indented below (``--help`` style)."""
    return "".join(f"{k.key}: {k.type} = {json.dumps(k.value)}\n    {k.doc}\n" for k in keys)


def keys_json(keys: list[ConfigKey]) -> str:
    """``{"optim.lr": {"type": ..., "value": ..., "doc": ...}, ...}`` as indented JSON."""
    table = {k.key: {"type": k.type, "value": k.value, "doc": k.doc} for k in keys}
    return json.dumps(table, indent=2)

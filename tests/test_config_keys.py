"""Every config key has a doc, read from config.py's trailing comments; types and values shown."""

from __future__ import annotations

import dataclasses
import json
import typing

import pytest

from gateshift.config import Config, load_config
from gateshift.config_keys import config_keys, field_docs, format_keys, keys_json, type_name

HINTS = typing.get_type_hints(Config)
SECTIONS: list[type] = [Config, *(h for h in HINTS.values() if dataclasses.is_dataclass(h))]


@pytest.mark.parametrize("cls", SECTIONS, ids=lambda c: c.__name__)
def test_every_field_has_a_doc(cls: type) -> None:
    docs = field_docs(cls)
    assert list(docs) == [f.name for f in dataclasses.fields(cls)]
    assert [name for name, doc in docs.items() if not doc.strip()] == []


def test_docs_are_the_trailing_comments() -> None:
    keys = {k.key: k for k in config_keys()}
    lr = keys["optim.lr"]
    assert (lr.type, lr.value) == ("float", 0.01)
    assert lr.doc == "learning rate for a global batch of `lr_batch` clips"
    assert keys["data.scales"].doc == "crop scales"  # a field spanning a call, comment at its end
    assert keys["data.scales"].value == [1.0, 0.875, 0.75, 0.66]
    assert len(keys) == sum(len(dataclasses.fields(c)) for c in SECTIONS) - 5  # 5 sections


def test_types_read_as_values_are_written() -> None:
    keys = {k.key: k.type for k in config_keys()}
    assert keys["optim.name"] == "{sgd,adamw}"
    assert keys["model.pretrained"] == "str | None"
    assert keys["data.label_map"] == "dict[int, int] | None"
    assert keys["data.format"].startswith("{sthv1,sthv2,")
    assert type_name(list[float]) == "list[float]"


def test_values_follow_a_config_and_overrides() -> None:
    cfg = load_config(None, ["optim.lr=0.3", "model.name=resnet18_tsm"], checked=False)
    keys = {k.key: k.value for k in config_keys(cfg)}
    assert keys["optim.lr"] == 0.3 and keys["out_dir"] == "runs/resnet18_tsm"


def test_patterns_select_keys() -> None:
    assert [k.key for k in config_keys(pattern="eval.num_*")] == [
        "eval.num_clips",
        "eval.num_crops",
    ]
    assert [k.key for k in config_keys(pattern="optim.lr")] == ["optim.lr"]  # exact, no lr_batch
    assert {k.key.split(".")[0] for k in config_keys(pattern="train")} == {"train"}
    with pytest.raises(ValueError, match=r"no config key matches 'optim\.zz'"):
        config_keys(pattern="optim.zz")


def test_text_and_json_forms() -> None:
    keys = config_keys(pattern="model.width")
    assert format_keys(keys) == f"model.width: int | None = null\n    {keys[0].doc}\n"
    table = json.loads(keys_json(config_keys(pattern="seed")))
    assert table == {"seed": {"type": "int", "value": 0, "doc": field_docs(Config)["seed"]}}


@dataclasses.dataclass
class _Toy:
    documented: int = 1  # the doc
    bare: str = "x"
    spread: list[int] = dataclasses.field(
        default_factory=list
    )  # a comment on the last line of the field


def test_a_field_without_a_comment_has_an_empty_doc() -> None:
    assert field_docs(_Toy) == {
        "documented": "the doc",
        "bare": "",
        "spread": "a comment on the last line of the field",
    }

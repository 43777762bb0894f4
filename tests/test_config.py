"""The config tree: ``data.format`` typed from the formats table, errors that name the key."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from gateshift.config import Config, ConfigError, DataConfig, load_config, validate
from gateshift.data.format_names import FORMATS, DataFormat


def test_data_format_is_typed_with_the_format_names() -> None:
    hint = typing.get_type_hints(DataConfig)["format"]
    assert typing.get_args(hint) == typing.get_args(DataFormat) == FORMATS


def test_an_unknown_format_is_an_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"'sthv3'.*expected one of.*sthv2.*data\.format"):
        load_config(None, ["data.root=/d", "data.format=sthv3"])
    assert load_config(None, ["data.root=/d", "data.format=hmdb51"]).data.format == "hmdb51"


def test_validate_checks_the_format_of_a_config_built_in_python() -> None:
    cfg = Config()
    cfg.data.root = "/d"
    cfg.data.format = "sthv3"  # type: ignore[assignment]  (what a typo in code would do)
    with pytest.raises(ConfigError, match=r"^data\.format: 'sthv3' is not one of sthv1, sthv2"):
        validate(cfg)


def test_unchecked_loading_keeps_types_but_skips_validation() -> None:
    with pytest.raises(ConfigError, match=r"data\.root"):
        load_config(None, ["optim.lr=0.5"])
    assert load_config(None, ["optim.lr=0.5"], checked=False).optim.lr == 0.5
    with pytest.raises(ConfigError, match=r"optim\.lr"):
        load_config(None, ["optim.lr=fast"], checked=False)


def test_bad_yaml_a_list_and_bad_overrides_name_where_the_fault_is(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml is not valid YAML: line \d+, column \d+"):
        load_config(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match=r"mapping of sections.*got a list"):
        load_config(listed)
    good = tmp_path / "good.yaml"
    good.write_text("optim:\n  lr: 0.1\n")
    with pytest.raises(ConfigError, match=r"in the key=value overrides.*optim\.lrr"):
        load_config(good, ["optim.lrr=1"])  # the command line's fault, not the file's
    assert load_config(good, ["optim.lr=0.2"], checked=False).optim.lr == 0.2

"""Every YAML recipe under ``configs/`` loads, validates and names a registered model."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateshift.config import ConfigError, load_config
from gateshift.engine.demo import DEMO_SETTINGS
from gateshift.models import list_models

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
RECIPES = [p for p in CONFIGS if p.name != "demo.yaml"]


def test_the_issue_recipes_exist() -> None:
    names = {p.stem for p in CONFIGS}
    expected = {"demo", "sthv1_bninception_gsm_8f", "sthv1_bninception_gsm_16f",
                "diving48_inceptionv3_gsm_16f", "epic100_resnet50_gsf_8f"}  # fmt: skip
    expected |= {f"sthv1_inceptionv3_gsm_{t}f" for t in (8, 12, 16, 24)}
    expected |= {f"{d}_resnet50_{k}_8f" for d in ("sthv2", "kinetics") for k in ("gsf", "tsm")}
    assert expected <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_loads_with_a_root(path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.root"):
        load_config(path)  # no dataset root on anyone's disk is assumed
    cfg = load_config(path, ["data.root=/datasets/x"])
    assert cfg.model.name in list_models()
    assert cfg.data.format in path.stem and cfg.model.name in path.stem
    assert path.stem.endswith(f"_{cfg.model.num_segments}f")
    assert cfg.optim.name == "sgd" and cfg.optim.lr == 0.01 and cfg.optim.lr_batch == 32
    assert cfg.optim.weight_decay == 5e-4 and cfg.model.dropout == 0.5
    assert cfg.out_dir == f"runs/{path.stem}"
    if "_gsf_" in path.stem:
        assert cfg.data.randaugment == "rand-m9-mstd0.5"


def test_demo_yaml_is_the_demo_recipe() -> None:
    cfg = load_config(CONFIGS[[p.stem for p in CONFIGS].index("demo")])
    assert cfg.model.name == "resnet18_gsm" and cfg.data.root == "demo/data"
    for key, value in DEMO_SETTINGS.items():
        section, name = key.split(".")
        got = getattr(getattr(cfg, section), name)
        want = [float(v) for v in value.strip("[]").split(",")] if key == "data.scales" else value
        assert got == want, key

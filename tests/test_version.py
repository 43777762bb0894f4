"""One version number: pyproject's, read back from the installed metadata."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

import gateshift
from gateshift.cli.main import main


def test_version_is_the_installed_distributions() -> None:
    assert gateshift.__version__ == importlib.metadata.version("gateshift")
    assert gateshift.__version__[0].isdigit() and "unknown" not in gateshift.__version__


def test_version_is_pyprojects() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = Path(__file__).parents[1] / "pyproject.toml"
    assert tomllib.loads(pyproject.read_text())["project"]["version"] == gateshift.__version__


def test_the_command_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"gateshift {gateshift.__version__}"

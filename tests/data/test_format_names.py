"""One home for the format names: the parser table has exactly the names ``data.format`` takes."""

from __future__ import annotations

import subprocess
import sys
import typing

from gateshift.data import annotations, format_names
from gateshift.data.format_names import FORMATS, DataFormat, is_format


def test_every_format_name_has_a_parser_and_no_parser_lacks_a_name() -> None:
    assert set(annotations._PARSERS) == set(typing.get_args(DataFormat))
    assert annotations.FORMATS == FORMATS and len(FORMATS) == 11


def test_is_format() -> None:
    assert is_format("sthv2") and not is_format("sthv3") and not is_format("")


def test_the_names_import_nothing_heavy() -> None:
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('names', {format_names.__file__!r})\n"
        "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
        "assert 'folder' in mod.FORMATS\n"
        "heavy = [m for m in ('torch', 'av', 'numpy', 'gateshift') if m in sys.modules]\n"
        "assert heavy == [], heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

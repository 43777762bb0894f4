"""The package version, read from the installed distribution's metadata.

``pyproject.toml`` is the one place the number is written; ``pip install`` (editable or not)
copies it into the metadata read here. Only a source tree that was never installed (``src/`` on
``PYTHONPATH``) has no metadata: it reports ``0+unknown``, a version that sorts below every
release, rather than a number that could drift from pyproject's.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__: str = version("gateshift")
except PackageNotFoundError:  # a source tree that was not installed
    __version__ = "0+unknown"

"""Files written through a temporary beside them, then renamed into place (atomic on POSIX).

``tempfile.mkstemp`` creates its file readable by the owner only (0600), and a rename keeps that
mode, so without :func:`publish` every atomically written output (bundles, checkpoints, exports,
timelines) would be unreadable to the other users of a shared run folder, unlike the files
written directly (0666 minus the umask).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def publish(tmp: str | Path, path: str | Path) -> None:
    """Rename the finished temporary ``tmp`` to ``path`` with the mode a new file gets."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


@contextmanager
def staged(path: Path, suffix: str) -> Iterator[Path]:
    """An empty temporary file beside ``path`` (``path``'s folder made if needed): what is
    written to it becomes ``path`` when the block ends without an error, and nothing otherwise
    (a file that fails its checks leaves no trace)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)

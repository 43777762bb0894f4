"""Finding the videos to predict on: folders searched recursively, list files, single videos.

``gateshift predict RUN DIR_OR_LIST --out FILE`` names its videos in three ways, each argument
decided by what is on disk:

- a **folder** is searched recursively for what the readers read (:mod:`.readers`): files with a
  video extension (:data:`~gateshift.data.readers.VIDEO_EXTENSIONS`) and frame folders (a folder
  holding numbered images, detected as the folder reader detects its file names). A frame folder
  is one video: it is not searched further. Hidden names (``.git``, ``.DS_Store``) are skipped,
  as the folder dataset format skips them. A folder that is itself a frame folder is one video.
  Linked folders are not searched (a link loop would never end), but a linked frame folder or
  video file is found.
- a **file with a video extension** is one video;
- **any other file** is a list: one path per line (blank lines and lines starting with ``#``
  are skipped), a relative path taken from the list file's folder (so a list travels with its
  videos), each entry one video (file or frame folder) as it stands, not searched.

A listed path or a named video that does not exist stays in the list: prediction gives it a row
with the reason, nothing is dropped silently. A folder or list argument that does not exist is an
error. Paths come back absolute (symlinks resolved), in a stable order (folders sorted by
name, lists in their order), each once: the same arguments give the same paths on every run,
which is what resuming an interrupted run keys on.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from gateshift.data.readers import VIDEO_EXTENSIONS, detect_frame_template


def find_videos(sources: Sequence[str | Path]) -> list[Path]:
    """Every video the ``sources`` name (folders, list files, videos), each once, in order."""
    seen: set[Path] = set()
    out = []
    for source in sources:
        for video in _videos_of(Path(source)):
            if video not in seen:
                seen.add(video)
                out.append(video)
    return out


def is_frame_folder(folder: Path) -> bool:
    """Whether ``folder`` holds numbered images the frame-folder reader reads."""
    try:
        return detect_frame_template(folder) is not None
    except OSError:
        return False


def _videos_of(source: Path) -> Iterable[Path]:
    if source.is_dir():
        return _search(source.resolve())
    if source.suffix.lower() in VIDEO_EXTENSIONS:
        return [source.resolve()]  # missing or not: prediction says why it cannot read it
    if source.is_file():
        return read_list(source)
    raise FileNotFoundError(f"{source}: no such folder, list file or video")


def _search(root: Path) -> list[Path]:
    if is_frame_folder(root):
        return [root]
    found = []
    for folder, dirs, files in os.walk(root):
        base = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in list(dirs):
            if is_frame_folder(base / name):
                found.append(base / name)
                dirs.remove(name)  # a video, not a folder to search
        for name in files:
            if not name.startswith(".") and Path(name).suffix.lower() in VIDEO_EXTENSIONS:
                found.append(base / name)
    return sorted({p.resolve() for p in found})


def read_list(path: Path) -> list[Path]:
    """The videos of a list file: one path per line, relative ones from the file's folder."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        kinds = ", ".join(VIDEO_EXTENSIONS)
        raise ValueError(
            f"{path}: neither a video (by extension: {kinds}) nor a list file (UTF-8 text, one "
            "path per line)"
        ) from None
    out = []
    for line in text.splitlines():
        entry = line.strip()
        if entry and not entry.startswith("#"):
            out.append((path.parent / Path(entry).expanduser()).resolve())
    return out

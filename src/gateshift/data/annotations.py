"""Annotation formats: one parser per dataset layout, all returning a ``VideoDataset``.

``load_annotations(format, root, split, **overrides)`` is the entry point; ``FORMATS`` names the
formats (the values of the config key ``data.format``, from :mod:`.format_names`). Splits are
``train``, ``val`` (``validation`` accepted) and ``test``. Every file location below is relative to
``root`` and can be overridden by keyword (relative to ``root`` or absolute): ``annotation_file``
(the split's list), ``labels_file`` / ``classes_file`` / ``vocab_file``, ``data_dir`` (where the
media live), plus the format's own options. ``drop_missing=True`` drops records whose file is absent
(Kinetics downloads always miss some). Default layouts, as the official downloads unpack:

- ``sthv1``: ``something-something-v1-{train,validation,test}.csv`` (``id;label``),
  ``something-something-v1-labels.csv``; frames ``20bn-something-something-v1/<id>/00001.jpg``.
  Class index = alphabetical order of the label names (as TSM and GSM).
- ``sthv2``: ``something-something-v2-{train,validation,test}.json`` and ``-labels.json`` (or
  ``labels/{train,validation,test,labels}.json``); videos
  ``20bn-something-something-v2/<id>.webm`` (``ext=""`` for frame folders ``<id>/``).
- ``diving48``: ``Diving48_V2_{train,test}.json`` (``version=1``: ``Diving48_{train,test}.json``)
  and ``Diving48_vocab.json``, at the root or in ``annotations/``; videos ``rgb/<vid_name>.mp4``
  (or ``videos/``); ``val`` reads the test list. ``frame_range=True`` applies the JSON's
  ``start_frame``/``end_frame`` (the released clips are already trimmed).
- ``epic100``: ``EPIC_100_{train,validation,test_timestamps}.csv`` and
  ``EPIC_100_{verb,noun}_classes.csv`` at the root or in ``epic-kitchens-100-annotations/``;
  media ``<P01>/videos/<P01_01>.MP4`` or ``<P01>/rgb_frames/<P01_01>/frame_0000000001.jpg``
  (``media="auto"|"videos"|"frames"``). Labels ``(verb, noun)``.
- ``kinetics``: ``annotations/{train,validate,test}.csv`` (or at the root); clips
  ``{train,val,test}/[<label>/]{youtube_id}_{start:06d}_{end:06d}.mp4``, class folders (with
  spaces or underscores) or flat, detected. Classes = sorted labels of ``train.csv``.
- ``ucf101``: ``ucfTrainTestlist/{classInd,trainlist01,testlist01}.txt``; videos
  ``UCF-101/<Class>/<video>.avi``; ``split_id=1..3``; ``val`` reads the test list.
- ``hmdb51``: ``testTrainMulti_7030_splits/<class>_test_split1.txt``; videos
  ``hmdb51_org/<class>/<video>.avi`` (or ``hmdb51/``); ``split_id=1..3``.
- ``tsn_list``: ``{split}_videofolder.txt`` / ``{split}.txt`` / ``{split}_list.txt`` with lines
  ``path num_frames label`` (TSN / GSM); paths relative to ``data_dir`` (default the root);
  names from ``classes_file`` (one per line), else the label numbers.
- ``list``: ``{split}.txt`` / ``{split}.csv`` with lines ``path label``; the label an index or
  a class name (names: sorted over the train and this split, or ``classes_file``).
- ``folder``: ``<root>/<split>/<class_name>/<item>``, an item a video file or a frame folder;
  class index = sorted class folder names of the train split.
- ``prepared``: what ``gateshift data prepare`` writes (see :mod:`gateshift.data.prepare`):
  ``dataset.json`` + ``{split}.csv``.

Errors: a line that does not parse or a label not in the label list is a ``ValueError`` naming
the file and line (JSON files: the item number); a path that resolves outside its root is refused.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateshift.data import _formats as F
from gateshift.data.format_names import FORMATS, DataFormat, is_format
from gateshift.data.readers import VIDEO_EXTENSIONS
from gateshift.data.records import VideoDataset, VideoRecord

log = logging.getLogger(__name__)

PREPARED_COLUMNS = (
    "path",
    "start_frame",
    "end_frame",
    "num_frames",
    "labels",
    "video_id",
    "frame_rate",
)


def _list_file(root: Path, given: str | None, split: str, suffixes: tuple[str, ...]) -> Path:
    names = [f"{split}{s}" for s in suffixes]
    if split == "val":
        names += [f"validation{s}" for s in suffixes]
    return F.pick(root, given, names, f"{split} list")


def _names_or_numbers(root: Path, classes_file: str | None, top: int) -> list[str]:
    if classes_file is None:
        return [str(i) for i in range(top + 1)]
    names = [text for _, text in F.lines(F.pick(root, classes_file, [], "classes file"))]
    if top >= len(names):
        raise ValueError(f"label {top} but {classes_file} names {len(names)} classes")
    return names


def load_tsn_list(
    root: Path,
    split: str,
    *,
    annotation_file: str | None = None,
    classes_file: str | None = None,
    data_dir: str | None = None,
    frame_template: str | None = None,
    frame_start: int | str = 1,
) -> VideoDataset:
    """TSN/GSM list: ``path num_frames label`` per line; frames 0..num_frames-1 are used."""
    file = _list_file(root, annotation_file, split, ("_videofolder.txt", ".txt", "_list.txt"))
    media = F.media_dir(root, data_dir, [])
    records = []
    for number, text in F.lines(file):
        parts = text.split()
        if len(parts) < 3:
            raise F.bad_line(file, number, "expected 'path num_frames label'")
        count = F.to_int(parts[-2], file, number, "num_frames")
        label = F.to_int(parts[-1], file, number, "label")
        if count < 1 or label < 0:
            raise F.bad_line(file, number, f"bad num_frames {count} or label {label}")
        path = F.inside(media, " ".join(parts[:-2]), f"{file}:{number}")
        records.append(VideoRecord(path, (label,), 0, count, count, path.name))
    top = max((r.labels[0] for r in records), default=-1)
    classes = _names_or_numbers(root, classes_file, top)
    return F.dataset(
        records,
        [classes],
        root,
        "tsn_list",
        split,
        file,
        frame_template=frame_template,
        frame_start=int(frame_start),
    )


def load_list(
    root: Path,
    split: str,
    *,
    annotation_file: str | None = None,
    classes_file: str | None = None,
    data_dir: str | None = None,
    frame_template: str | None = None,
    frame_start: int | str = 1,
) -> VideoDataset:
    """``path label`` per line (``path,label`` in a .csv); the label an index or a name."""
    file = _list_file(root, annotation_file, split, (".txt", ".csv"))
    rows = _path_label_rows(file)
    named = any(not label.isdigit() for _, _, label in rows)
    if named and classes_file is None:
        names = {label for _, _, label in rows}
        train = _train_list(root, file, split)
        if train is not None:
            names |= {label for _, _, label in _path_label_rows(train)}
        classes = sorted(names)
    else:
        top = max((int(lb) for _, _, lb in rows if lb.isdigit()), default=-1)
        classes = _names_or_numbers(root, classes_file, top)
    index = F.class_index(classes, file)
    media = F.media_dir(root, data_dir, [])
    records = []
    for number, rel, label in rows:
        cls = int(label) if label.isdigit() and not named else F.lookup(index, label, file, number)
        path = F.inside(media, rel, f"{file}:{number}")
        records.append(VideoRecord(path, (cls,), video_id=Path(rel).stem))
    return F.dataset(
        records,
        [classes],
        root,
        "list",
        split,
        file,
        frame_template=frame_template,
        frame_start=int(frame_start),
    )


def _train_list(root: Path, file: Path, split: str) -> Path | None:
    if split == "train":
        return None
    for suffix in (".txt", ".csv"):
        if (root / f"train{suffix}").exists() and root / f"train{suffix}" != file:
            return root / f"train{suffix}"
    return None


def _path_label_rows(file: Path) -> list[tuple[int, str, str]]:
    rows = []
    for number, text in F.lines(file):
        if file.suffix.lower() == ".csv":
            path, sep, label = text.rpartition(",")
            if number == 1 and text.replace(" ", "").lower() == "path,label":
                continue  # header
        else:
            parts = text.rsplit(maxsplit=1)
            path, sep, label = (parts[0], " ", parts[1]) if len(parts) == 2 else ("", "", "")
        if not sep or not path.strip() or not label.strip():
            raise F.bad_line(file, number, "expected 'path label'")
        rows.append((number, path.strip(), label.strip()))
    return rows


def load_folder(root: Path, split: str) -> VideoDataset:
    """``<root>/<split>/<class>/<item>``: items are video files or frame folders."""
    name = F.norm_split(split, ("train", "val", "test"))
    options = {"train": ["train"], "val": ["val", "validation", "valid"], "test": ["test"]}
    split_dir = F.find(root, options[name], f"{name} folder")
    train_dir = next((root / d for d in options["train"] if (root / d).is_dir()), split_dir)
    classes = sorted(d.name for d in train_dir.iterdir() if d.is_dir() and _visible(d.name))
    index = F.class_index(classes, train_dir)
    records = []
    for class_dir in sorted(d for d in split_dir.iterdir() if d.is_dir() and _visible(d.name)):
        if class_dir.name not in index:
            raise ValueError(f"{class_dir}: class {class_dir.name!r} is not a class of {train_dir}")
        for item in sorted(class_dir.iterdir(), key=lambda p: p.name):
            if not _visible(item.name):
                continue
            if item.is_dir() or item.suffix.lower() in VIDEO_EXTENSIONS:
                records.append(VideoRecord(item, (index[class_dir.name],), video_id=item.stem))
            else:
                log.debug("skipping %s: neither a video nor a frame folder", item)
    return F.dataset(records, [classes], root, "folder", name, split_dir)


def _visible(name: str) -> bool:
    return not name.startswith(".")  # not "_": YouTube ids (Kinetics clips) may start with it


def load_prepared(root: Path, split: str) -> VideoDataset:
    """``dataset.json`` (classes, media root, frame naming) + ``{split}.csv``: data prepare."""
    info_file = root / "dataset.json"
    info = F.load_json(info_file)
    name = F.norm_split(split, ("train", "val", "test"))
    file = root / f"{name}.csv"
    if not file.exists():
        raise FileNotFoundError(f"{file} does not exist (splits here: {info.get('splits')})")
    media = Path(os.path.abspath(root / info.get("media_root", ".")))
    records = []
    for number, row in F.csv_rows(file, PREPARED_COLUMNS):
        ints = {
            key: F.to_int(row[key], file, number, key) if row[key] else None
            for key in ("start_frame", "end_frame", "num_frames")
        }
        labels = tuple(F.to_int(x, file, number, "label") for x in row["labels"].split())
        path = F.inside(media, row["path"], f"{file}:{number}")
        rate = float(row["frame_rate"]) if row["frame_rate"] else None
        start, end, count = ints["start_frame"] or 0, ints["end_frame"], ints["num_frames"]
        records.append(VideoRecord(path, labels, start, end, count, row["video_id"], rate))
    return F.dataset(
        records,
        info["classes"],
        root,
        "prepared",
        name,
        file,
        frame_template=info.get("frame_template"),
        frame_start=int(info.get("frame_start", 1)),
        meta={k: v for k, v in info.items() if k not in ("classes",)},
    )


# keys: exactly the names of format_names.DataFormat (mypy checks each, a test that none is missing)
_PARSERS: dict[DataFormat, Callable[..., VideoDataset]] = {
    "sthv1": F.load_sthv1,
    "sthv2": F.load_sthv2,
    "diving48": F.load_diving48,
    "epic100": F.load_epic100,
    "kinetics": F.load_kinetics,
    "ucf101": F.load_ucf101,
    "hmdb51": F.load_hmdb51,
    "tsn_list": load_tsn_list,
    "list": load_list,
    "folder": load_folder,
    "prepared": load_prepared,
}


def format_options(fmt: str) -> list[str]:
    """The keyword overrides ``fmt`` accepts."""
    parser = _parser(fmt)
    return [p for p in inspect.signature(parser).parameters if p not in ("root", "split")]


def _parser(fmt: str) -> Callable[..., VideoDataset]:
    if not is_format(fmt):
        raise ValueError(f"unknown annotation format {fmt!r}; choose from {', '.join(FORMATS)}")
    return _PARSERS[fmt]


def load_annotations(
    format: str, root: str | Path, split: str = "train", **overrides: Any
) -> VideoDataset:
    """Parse the ``split`` of the dataset at ``root`` in annotation ``format``."""
    parser = _parser(format)
    root = Path(os.path.abspath(os.path.expanduser(root)))
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} is not a folder")
    drop_missing = str(overrides.pop("drop_missing", False)).lower() in ("1", "true", "yes")
    unknown = sorted(set(overrides) - set(format_options(format)))
    if unknown:
        allowed = ", ".join(format_options(format)) or "none"
        raise ValueError(f"format {format!r} has no option {unknown[0]!r} (options: {allowed})")
    data = parser(root, split, **overrides)
    if drop_missing:
        kept = [r for r in data.records if r.path.exists()]
        if len(kept) < len(data.records):
            log.warning(
                "%s %s: dropped %d records whose media are missing",
                format,
                data.split,
                len(data.records) - len(kept),
            )
        data.records = kept
    return data

"""Parsers of the official dataset downloads (the layouts are listed in ``annotations``).

Something-Something V1/V2 (Goyal et al., ICCV 2017), Diving48 (Li et al., ECCV 2018),
EPIC-KITCHENS-100 (Damen et al., IJCV 2022), Kinetics (Kay et al., 2017), UCF101 (Soomro et al.,
2012) and HMDB51 (Kuehne et al., ICCV 2011). Each parser returns a ``VideoDataset`` with absolute
record paths and the label names of the dataset, in the class order the papers use.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from gateshift.data.records import VideoDataset, VideoRecord

SPLIT_ALIASES = {"validation": "val", "valid": "val", "validate": "val", "testing": "test"}


# ----------------------------------------------------------------------------- helpers


def bad_line(file: Path | str, line: int | str, message: str) -> ValueError:
    return ValueError(f"{file}:{line}: {message}")


def norm_split(split: str, allowed: Sequence[str]) -> str:
    name = SPLIT_ALIASES.get(split.lower(), split.lower())
    if name not in allowed:
        raise ValueError(f"unknown split {split!r}; this format has {', '.join(allowed)}")
    return name


def find(root: Path, candidates: Sequence[str], what: str) -> Path:
    """The first of ``candidates`` (relative to root) that exists."""
    for rel in candidates:
        if (root / rel).exists():
            return root / rel
    tried = ", ".join(str(root / c) for c in candidates)
    raise FileNotFoundError(f"{what} not found; looked for {tried} (override it by keyword)")


def pick(root: Path, given: str | Path | None, candidates: Sequence[str], what: str) -> Path:
    """A user-given location (relative to root or absolute), else the first candidate found."""
    if given is not None:
        path = root / given
        if not path.exists():
            raise FileNotFoundError(f"{what} {path} does not exist")
        return path
    return find(root, candidates, what)


def media_dir(root: Path, given: str | Path | None, candidates: Sequence[str]) -> Path:
    """Where the media live: given, else the first existing candidate, else the root."""
    if given is not None:
        return Path(os.path.abspath(root / given))
    return next((root / c for c in candidates if (root / c).is_dir()), root)


def inside(base: Path, rel: str, where: str) -> Path:
    """``base / rel``, refused when it leaves ``base`` ("../", or an absolute path elsewhere).

    The check is lexical on purpose: a dataset root often holds symlinks to other disks, and
    those are the user's choice, while a "../" in an annotation file is not.
    """
    if not os.path.isabs(rel) and ".." not in rel:
        return base / rel
    path = os.path.normpath(os.path.join(base, rel))
    top = os.path.normpath(base)
    if path != top and not path.startswith(top.rstrip(os.sep) + os.sep):
        raise ValueError(f"{where}: path {rel!r} resolves outside the dataset root {top}")
    return Path(path)


def lines(file: Path) -> Iterator[tuple[int, str]]:
    """(line number, stripped text) of the non-empty lines."""
    with open(file, encoding="utf-8") as f:
        for number, text in enumerate(f, start=1):
            if text.strip():
                yield number, text.strip()


def csv_rows(
    file: Path, required: Sequence[str], delimiter: str = ","
) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) of a CSV with a header holding ``required`` columns."""
    with open(file, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise bad_line(file, 1, f"header lacks column(s) {', '.join(missing)}")
        for row in reader:
            if any(v is None for v in row.values()) or None in row:
                raise bad_line(file, reader.line_num, "wrong number of fields")
            yield reader.line_num, row


def load_json(file: Path) -> Any:
    try:
        with open(file, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise bad_line(file, err.lineno, f"not valid JSON: {err.msg}") from err


def to_int(text: str, file: Path, line: int | str, what: str) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        raise bad_line(file, line, f"{what} {text!r} is not an integer") from None


def class_index(names: Sequence[str], file: Path) -> dict[str, int]:
    index = {name: i for i, name in enumerate(names)}
    if len(index) != len(names):
        raise ValueError(f"{file}: duplicate class names")
    return index


def lookup(index: dict[str, int], name: str, file: Path, line: int | str) -> int:
    if name not in index:
        raise bad_line(file, line, f"label {name!r} is not in the label list")
    return index[name]


def dataset(
    records: list[VideoRecord],
    classes: list[list[str]],
    root: Path,
    fmt: str,
    split: str,
    file: Path,
    **extra: Any,
) -> VideoDataset:
    meta: dict[str, object] = {"annotation_file": str(file), **extra.pop("meta", {})}
    return VideoDataset(records, classes, root, fmt, split, meta=meta, **extra)


# ----------------------------------------------------------------------------- Something-Something

_STHV1_FILES = {"train": "train", "val": "validation", "test": "test"}


def load_sthv1(
    root: Path,
    split: str,
    *,
    annotation_file: str | None = None,
    labels_file: str | None = None,
    data_dir: str | None = None,
) -> VideoDataset:
    """SS-V1: ``id;label`` CSVs, classes = label names in alphabetical order (as TSM/GSM)."""
    split = norm_split(split, tuple(_STHV1_FILES))
    stem = f"something-something-v1-{_STHV1_FILES[split]}.csv"
    file = pick(root, annotation_file, [stem, f"annotations/{stem}"], "SS-V1 split file")
    names = "something-something-v1-labels.csv"
    labels = pick(root, labels_file, [names, f"annotations/{names}"], "SS-V1 labels file")
    classes = sorted({text for _, text in lines(labels)})
    index = class_index(classes, labels)
    media = media_dir(root, data_dir, ["20bn-something-something-v1", "frames"])
    records = []
    for number, text in lines(file):
        item, sep, name = text.partition(";")
        if split != "test" and not sep:
            raise bad_line(file, number, "expected 'id;label'")
        where = f"{file}:{number}"
        label = (lookup(index, name, file, number),) if sep else ()
        records.append(VideoRecord(inside(media, item, where), label, video_id=item))
    return dataset(records, [classes], root, "sthv1", split, file, frame_template="{:05d}.jpg")


def load_sthv2(
    root: Path,
    split: str,
    *,
    annotation_file: str | None = None,
    labels_file: str | None = None,
    data_dir: str | None = None,
    ext: str = ".webm",
) -> VideoDataset:
    """SS-V2: official JSONs; an item's class is its template without the brackets."""
    split = norm_split(split, ("train", "val", "test"))
    name = {"train": "train", "val": "validation", "test": "test"}[split]
    file = pick(
        root,
        annotation_file,
        [f"something-something-v2-{name}.json", f"labels/{name}.json", f"{name}.json"],
        "SS-V2 split file",
    )
    labels = pick(
        root,
        labels_file,
        ["something-something-v2-labels.json", "labels/labels.json", "labels.json"],
        "SS-V2 labels file",
    )
    table = load_json(labels)
    if not isinstance(table, dict):
        raise ValueError(f"{labels}: expected an object of label name -> index")
    order = sorted(table.items(), key=lambda kv: to_int(kv[1], labels, kv[0], "index"))
    classes = [k for k, _ in order]
    index = class_index(classes, labels)
    media = media_dir(root, data_dir, ["20bn-something-something-v2", "videos"])
    items = load_json(file)
    if not isinstance(items, list):
        raise ValueError(f"{file}: expected a list of items")
    records = []
    for i, item in enumerate(items):
        where = f"item {i}"
        if not isinstance(item, dict) or "id" not in item:
            raise bad_line(file, where, "item without an 'id'")
        vid = str(item["id"])
        label: tuple[int, ...] = ()
        if "template" in item:
            text = str(item["template"]).replace("[", "").replace("]", "")
            label = (lookup(index, text, file, f"{where} (id {vid})"),)
        elif split != "test":
            raise bad_line(file, f"{where} (id {vid})", "item without a 'template'")
        path = inside(media, vid + ext, f"{file}:{where}")
        records.append(VideoRecord(path, label, video_id=vid))
    return dataset(records, [classes], root, "sthv2", split, file)


# ----------------------------------------------------------------------------- Diving48


def load_diving48(
    root: Path,
    split: str,
    *,
    annotation_file: str | None = None,
    vocab_file: str | None = None,
    data_dir: str | None = None,
    version: int | str = 2,
    ext: str = ".mp4",
    frame_range: bool | str = False,
) -> VideoDataset:
    """Diving48 V1/V2 JSONs. The released clips are already trimmed to the dive, so the
    ``start_frame``/``end_frame`` of the JSON are applied only with ``frame_range=True``."""
    split = norm_split(split, ("train", "val", "test"))
    tag = "Diving48_V2" if str(version) == "2" else "Diving48"
    stem = f"{tag}_{'train' if split == 'train' else 'test'}.json"
    file = pick(root, annotation_file, [stem, f"annotations/{stem}"], "Diving48 split file")
    items = load_json(file)
    if not isinstance(items, list):
        raise ValueError(f"{file}: expected a list of items")
    media = media_dir(root, data_dir, ["rgb", "videos"])
    apply_range = str(frame_range).lower() in ("1", "true", "yes")
    records = []
    top = -1
    for i, item in enumerate(items):
        where = f"item {i}"
        try:
            vid, label = str(item["vid_name"]), int(item["label"])
            start, end = int(item["start_frame"]), int(item["end_frame"])
        except (KeyError, TypeError, ValueError) as err:
            message = f"needs vid_name, label, start_frame, end_frame ({err})"
            raise bad_line(file, where, message) from None
        top = max(top, label)
        path = inside(media, vid + ext, f"{file}:{where}")
        first, last = (start, end) if apply_range else (0, None)
        records.append(VideoRecord(path, (label,), first, last, end - start, vid))
    classes = _diving48_vocab(root, vocab_file, top + 1)
    if top >= len(classes):
        raise ValueError(f"{file}: label {top} but the vocabulary has {len(classes)} classes")
    return dataset(records, [classes], root, "diving48", split, file)


def _diving48_vocab(root: Path, vocab_file: str | None, count: int) -> list[str]:
    try:
        file = pick(
            root,
            vocab_file,
            ["Diving48_vocab.json", "annotations/Diving48_vocab.json"],
            "Diving48 vocabulary",
        )
    except FileNotFoundError:
        if vocab_file is not None:
            raise
        return [str(i) for i in range(max(count, 48))]
    vocab = load_json(file)
    # Each class is (takeoff, somersaults, twists, flight position).
    return [" ".join(map(str, v)) if isinstance(v, list) else str(v) for v in vocab]


# ----------------------------------------------------------------------------- EPIC-KITCHENS-100

_EPIC_FILES = {"train": "train", "val": "validation", "test": "test_timestamps"}
_EPIC_DIRS = ["epic-kitchens-100-annotations", "annotations"]


def load_epic100(
    root: Path,
    split: str,
    *,
    annotation_file: str | None = None,
    verb_classes_file: str | None = None,
    noun_classes_file: str | None = None,
    data_dir: str | None = None,
    media: str = "auto",
    ext: str = ".MP4",
) -> VideoDataset:
    """EPIC-100 CSVs: two labels per record (verb, noun); 1-based inclusive frame numbers of the
    RGB frames, which run at 50 fps (videos ``Pxx_1yy``) or 60 fps (EPIC-55 videos)."""
    split = norm_split(split, tuple(_EPIC_FILES))
    stem = f"EPIC_100_{_EPIC_FILES[split]}.csv"
    file = pick(root, annotation_file, [stem] + [f"{d}/{stem}" for d in _EPIC_DIRS], "EPIC file")
    classes = [_epic_classes(root, verb_classes_file, "verb")]
    classes.append(_epic_classes(root, noun_classes_file, "noun"))
    sizes = (len(classes[0]), len(classes[1]))
    base = media_dir(root, data_dir, ["EPIC-KITCHENS", "EPIC-KITCHENS-100"])
    required = ["narration_id", "participant_id", "video_id", "start_frame", "stop_frame"]
    labelled = split != "test"
    records: list[VideoRecord] = []
    use_videos: bool | None = None if media == "auto" else media == "videos"
    for number, row in csv_rows(file, required + (["verb_class", "noun_class"] * labelled)):
        where = f"{file}:{number}"
        video = row["video_id"]
        participant = inside(base, row["participant_id"], where)
        if use_videos is None:  # media="auto": whatever the first record finds on disk
            use_videos = not (participant / "rgb_frames" / video).is_dir()
        if use_videos:
            path = inside(participant / "videos", video + ext, where)
            rate: float | None = 50.0 if len(video.split("_")[-1]) == 3 else 60.0
        else:
            path, rate = inside(participant / "rgb_frames", video, where), None
        labels = _epic_labels(row, file, number, sizes) if labelled else ()
        start, stop = _epic_range(row, file, number)
        records.append(
            VideoRecord(path, labels, start - 1, stop, stop - start + 1, row["narration_id"], rate)
        )
    return dataset(records, classes, root, "epic100", split, file,
                   frame_template="frame_{:010d}.jpg", frame_start=1,
                   meta={"label_sets": ["verb", "noun"]})  # fmt: skip


def _epic_range(row: dict[str, str], file: Path, number: int) -> tuple[int, int]:
    start = to_int(row["start_frame"], file, number, "start_frame")
    stop = to_int(row["stop_frame"], file, number, "stop_frame")
    if start < 1 or stop < start:
        raise bad_line(file, number, f"bad frame range {start}..{stop}")
    return start, stop


def _epic_labels(
    row: dict[str, str], file: Path, number: int, sizes: tuple[int, ...]
) -> tuple[int, int]:
    verb = to_int(row["verb_class"], file, number, "verb_class")
    noun = to_int(row["noun_class"], file, number, "noun_class")
    if not (0 <= verb < sizes[0] and 0 <= noun < sizes[1]):
        raise bad_line(file, number, f"class {verb}/{noun} is not in the class lists")
    return verb, noun


def _epic_classes(root: Path, given: str | None, kind: str) -> list[str]:
    stem = f"EPIC_100_{kind}_classes.csv"
    file = pick(root, given, [stem] + [f"{d}/{stem}" for d in _EPIC_DIRS], f"EPIC {kind} classes")
    names: dict[int, str] = {}
    for number, row in csv_rows(file, ["id", "key"]):
        names[to_int(row["id"], file, number, "id")] = row["key"]
    if sorted(names) != list(range(len(names))):
        raise ValueError(f"{file}: class ids are not 0..{len(names) - 1}")
    return [names[i] for i in range(len(names))]


# ----------------------------------------------------------------------------- Kinetics

_KINETICS_FILES = {"train": ["train"], "val": ["validate", "val"], "test": ["test"]}


def load_kinetics(
    root: Path,
    split: str,
    *,
    annotation_file: str | None = None,
    data_dir: str | None = None,
    classes_file: str | None = None,
    ext: str = ".mp4",
) -> VideoDataset:
    """Kinetics CSV ``label,youtube_id,time_start,time_end,split``; clips named
    ``{youtube_id}_{start:06d}_{end:06d}.mp4``, in class subfolders or flat (detected)."""
    split = norm_split(split, tuple(_KINETICS_FILES))
    names = [f"{d}{n}.csv" for n in _KINETICS_FILES[split] for d in ("annotations/", "")]
    file = pick(root, annotation_file, names, "Kinetics split file")
    required = ["youtube_id", "time_start", "time_end"]
    rows = list(csv_rows(file, required))
    labelled = bool(rows) and "label" in rows[0][1]
    classes = _kinetics_classes(root, classes_file, file, rows if labelled else [])
    index = class_index(classes, file)
    dirs = [f"{d}{n}" for n in _KINETICS_FILES[split] for d in ("", "videos/")]
    media = media_dir(root, data_dir, dirs)
    records = []
    for number, row in rows:
        try:
            start, end = int(float(row["time_start"])), int(float(row["time_end"]))
        except ValueError:
            raise bad_line(file, number, "time_start/time_end are not numbers") from None
        clip = f"{row['youtube_id']}_{start:06d}_{end:06d}{ext}"
        label = (lookup(index, row["label"], file, number),) if labelled else ()
        folder = row["label"] if labelled else ""
        records.append((number, clip, folder, label))
    layout = _kinetics_layout(media, [(c, f) for _, c, f, _ in records[:200]])
    out = []
    for number, clip, folder, label in records:
        rel = f"{layout(folder)}/{clip}" if layout(folder) else clip
        path = inside(media, rel, f"{file}:{number}")
        out.append(VideoRecord(path, label, video_id=clip.rsplit(".", 1)[0]))
    return dataset(out, [classes], root, "kinetics", split, file)


def _kinetics_classes(
    root: Path, given: str | None, file: Path, rows: list[tuple[int, dict[str, str]]]
) -> list[str]:
    # The class list is the sorted label names of the training CSV, whatever split is read.
    if given is not None:
        return [text for _, text in lines(pick(root, given, [], "classes file"))]
    names = {row["label"] for _, row in rows}
    train = file.with_name("train.csv")
    if train != file and train.exists():
        names |= {row["label"] for _, row in csv_rows(train, ["label"])}
    return sorted(names)


def _kinetics_layout(media: Path, sample: list[tuple[str, str]]) -> Callable[[str], str]:
    """Which of class folder / class folder with underscores / flat holds the clips."""
    layouts: list[Callable[[str], str]] = [lambda f: f, lambda f: f.replace(" ", "_"), lambda f: ""]
    hits = [sum((media / layout(f) / c).exists() for c, f in sample) for layout in layouts]
    if max(hits) > 0:
        return layouts[hits.index(max(hits))]
    return layouts[0] if any((media / f).is_dir() for _, f in sample) else layouts[2]


# ----------------------------------------------------------------------------- UCF101, HMDB51


def load_ucf101(
    root: Path,
    split: str,
    *,
    split_id: int | str = 1,
    splits_dir: str | None = None,
    data_dir: str | None = None,
) -> VideoDataset:
    """UCF101 official splits: ``classInd.txt`` (1-based), ``trainlistNN.txt`` with labels,
    ``testlistNN.txt`` without (the class is the video's folder)."""
    split = norm_split(split, ("train", "val", "test"))
    lists = pick(root, splits_dir, ["ucfTrainTestlist"], "UCF101 split folder")
    names = {}
    class_file = lists / "classInd.txt"
    for number, text in lines(class_file):
        idx, _, name = text.partition(" ")
        names[to_int(idx, class_file, number, "class id") - 1] = name.strip()
    classes = [names[i] for i in range(len(names))]
    index = {c.lower(): i for i, c in enumerate(classes)}
    file = lists / f"{'train' if split == 'train' else 'test'}list{int(split_id):02d}.txt"
    media = media_dir(root, data_dir, ["UCF-101", "UCF101", "videos"])
    records = []
    for number, text in lines(file):
        parts = text.split()
        folder = parts[0].split("/")[0].lower()
        if folder not in index:
            raise bad_line(file, number, f"class folder {folder!r} is not in classInd.txt")
        label = index[folder]
        if len(parts) > 1 and to_int(parts[1], file, number, "label") - 1 != label:
            raise bad_line(file, number, f"label {parts[1]} disagrees with folder {parts[0]}")
        path = inside(media, parts[0], f"{file}:{number}")
        records.append(VideoRecord(path, (label,), video_id=Path(parts[0]).stem))
    return dataset(records, [classes], root, "ucf101", split, file)


def load_hmdb51(
    root: Path,
    split: str,
    *,
    split_id: int | str = 1,
    splits_dir: str | None = None,
    data_dir: str | None = None,
) -> VideoDataset:
    """HMDB51 official splits: ``<class>_test_split<N>.txt`` lines ``<video>.avi <0|1|2>``
    (1 train, 2 test, 0 unused); classes in alphabetical order."""
    split = norm_split(split, ("train", "val", "test"))
    lists = pick(root, splits_dir, ["testTrainMulti_7030_splits", "splits"], "HMDB51 split folder")
    suffix = f"_test_split{int(split_id)}.txt"
    files = sorted(p for p in lists.iterdir() if p.name.endswith(suffix))
    if not files:
        raise FileNotFoundError(f"no *{suffix} files in {lists}")
    classes = [p.name[: -len(suffix)] for p in files]
    media = media_dir(root, data_dir, ["hmdb51_org", "hmdb51", "videos"])
    wanted = "1" if split == "train" else "2"
    records = []
    for label, file in enumerate(files):
        for number, text in lines(file):
            parts = text.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise bad_line(file, number, "expected '<video> <0|1|2>'")
            if parts[1] == wanted:
                path = inside(media, f"{classes[label]}/{parts[0]}", f"{file}:{number}")
                records.append(VideoRecord(path, (label,), video_id=Path(parts[0]).stem))
    return dataset(records, [classes], root, "hmdb51", split, lists)

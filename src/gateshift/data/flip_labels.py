"""Which labels a horizontal flip swaps, derived from class names.

A mirrored "Pushing something from left to right" video shows "Pushing something from right to
left", so TSN-style flip augmentation (arXiv 1608.00859) must swap those labels, as the GSM
recipe (arXiv 1912.00381) does for Something-Something (SS-V1 alphabetical order: 86<->87,
93<->94, 166<->167). The rule: mirror a name by swapping its direction words (left <-> right,
leftward(s) <-> rightward(s), clockwise <-> anticlockwise / counterclockwise) and pair it with
the class whose name is that mirror. Names are compared as lower-case word sequences, so
"Moving_Left", "moving left" and "moving-left" match; "counter clockwise" and "anti-clockwise"
all read as "anticlockwise".

A name that mentions a direction and has no mirrored twin makes the map underivable (flipping
such a dataset would silently mislabel it), except for idioms where the word is no direction:
"right" before a preposition or adverb ("pulling it right out", "right next to") and "left" as
the past of leave ("left behind").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

_MIRROR = {
    "left": "right",
    "right": "left",
    "leftward": "rightward",
    "rightward": "leftward",
    "leftwards": "rightwards",
    "rightwards": "leftwards",
    "clockwise": "anticlockwise",
    "anticlockwise": "clockwise",
}
# "right" used as an intensifier ("right out", "right next to"), not a direction
_RIGHT_IDIOMS = frozenset(
    {"out", "away", "now", "back", "here", "there", "after", "before", "through", "into", "onto",
     "next", "at", "behind", "under", "over", "off", "in", "on", "up", "down"}
)  # fmt: skip
# "left" as the past tense of leave
_LEFT_IDIOMS = frozenset({"behind", "over", "alone", "unattended", "untouched"})
_WORD = re.compile(r"[a-z0-9']+")


def name_key(name: str) -> tuple[str, ...]:
    """Lower-case words of a class name, with every spelling of anticlockwise unified."""
    words = _WORD.findall(name.lower())
    out: list[str] = []
    for word in words:
        if word == "clockwise" and out and out[-1] in ("anti", "counter"):
            out[-1] = "anticlockwise"
        elif word == "counterclockwise":
            out.append("anticlockwise")
        else:
            out.append(word)
    return tuple(out)


def _is_direction(words: tuple[str, ...], i: int) -> bool:
    word, after = words[i], words[i + 1] if i + 1 < len(words) else ""
    if word == "right":
        return after not in _RIGHT_IDIOMS
    if word == "left":
        return after not in _LEFT_IDIOMS
    return word in _MIRROR


def mentions_direction(name: str) -> bool:
    """True when the name uses left/right/clockwise as a direction."""
    words = name_key(name)
    return any(_is_direction(words, i) for i in range(len(words)))


def _mirror(words: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(_MIRROR.get(w, w) for w in words)


def unpaired_direction_classes(class_names: Sequence[str]) -> list[str]:
    """Names that mention a direction but whose mirrored name is not a class (or is ambiguous)."""
    keys = [name_key(n) for n in class_names]
    counts: dict[tuple[str, ...], int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    bad = []
    for name, key in zip(class_names, keys, strict=True):
        if not mentions_direction(name):
            continue
        mirrored = _mirror(key)
        if counts.get(mirrored, 0) != 1 or counts[key] != 1:
            bad.append(name)
    return bad


def flip_label_map(class_names: Sequence[str]) -> dict[int, int] | None:
    """Label swap of a horizontal flip, ``{i: j, j: i, ...}``, from the class names.

    ``{}`` when no class mentions a direction (flipping is safe and changes no label); ``None``
    when some direction class has no unique mirrored twin (no safe map can be derived).
    """
    if unpaired_direction_classes(class_names):
        return None
    index = {name_key(n): i for i, n in enumerate(class_names)}
    out: dict[int, int] = {}
    for i, name in enumerate(class_names):
        key = name_key(name)
        twin = index.get(_mirror(key))
        if twin is not None and twin != i:
            out[i] = twin
    return out


def check_label_map(label_map: Mapping[int, int], num_classes: int | None = None) -> None:
    """A flip map must be an involution (flipping twice restores every label) over valid ids."""
    for a, b in label_map.items():
        if label_map.get(b, b) != a:
            raise ValueError(
                f"flip label map must swap pairs: {a} -> {b} but {b} -> {label_map.get(b, b)}"
            )
        if num_classes is not None and not (0 <= a < num_classes and 0 <= b < num_classes):
            raise ValueError(f"flip label map entry {a} -> {b} is outside 0..{num_classes - 1}")


def resolve_flip_map(
    class_names: Sequence[str] | None, label_map: Mapping[int, int] | None
) -> dict[int, int]:
    """The label swap to use with horizontal flips, or a ValueError saying why flips are unsafe.

    An explicit ``label_map`` wins (checked to swap pairs); otherwise the map is derived from
    ``class_names``; with neither, the dataset is unknown and flipping is refused.
    """
    num_classes = len(class_names) if class_names is not None else None
    if label_map is not None:
        check_label_map(label_map, num_classes)
        return {int(a): int(b) for a, b in label_map.items() if a != b}
    if class_names is None:
        raise ValueError(
            "horizontal flip needs the class names (to derive the left/right label swap) or an "
            "explicit label_map ({} when flipping changes no label)"
        )
    derived = flip_label_map(class_names)
    if derived is None:
        bad = unpaired_direction_classes(class_names)
        shown = ", ".join(repr(n) for n in bad[:5]) + (" ..." if len(bad) > 5 else "")
        raise ValueError(
            f"horizontal flip refused: {len(bad)} class name(s) mention a direction without a "
            f"mirrored twin ({shown}); give an explicit label_map or disable flipping"
        )
    return derived

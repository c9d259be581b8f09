"""Class split (strong / weak classes) and the strong and weak training pools.

Strong pool: images with a mask whose foreground classes are all strong; their
masks are used. Weak pool: images with at least one weak class, and images
that come with labels only (no mask). A weak example carries the image and
its set of classes, never a mask: `WeakExample` has no field that could hold
one, and `build_pools` is the only code that sees both a weak image's record
and its mask path, so no training code can reach a weak mask.
"""

import dataclasses
from typing import FrozenSet, Tuple

from tss_keras.data.class_names import resolve_class
from tss_keras.errors import DataError


@dataclasses.dataclass(frozen=True)
class ClassSplit:
    """Strong and weak foreground class ids (background 0 is in neither)."""

    strong: FrozenSet[int]
    weak: FrozenSet[int]


@dataclasses.dataclass(frozen=True)
class StrongExample:
    """A strong-pool image with its mask path and present classes."""

    image_id: str
    image_path: str
    mask_path: str
    labels: FrozenSet[int]


@dataclasses.dataclass(frozen=True)
class WeakExample:
    """A weak-pool image with its image-level labels only (no mask, by design)."""

    image_id: str
    image_path: str
    labels: FrozenSet[int]


@dataclasses.dataclass(frozen=True)
class Pools:
    """The strong and weak pools of a split."""

    strong: Tuple[StrongExample, ...]
    weak: Tuple[WeakExample, ...]


def parse_strong_classes(spec, class_names, flag="--strong_classes"):
    """Parses ``all``, ``none`` or comma-separated names/ids into a ClassSplit."""
    foreground = frozenset(range(1, len(class_names)))
    spec = (spec or "").strip()
    if spec.lower() == "all":
        return ClassSplit(foreground, frozenset())
    if spec.lower() in ("none", ""):
        return ClassSplit(frozenset(), foreground)
    strong = {resolve_class(token, class_names, flag) for token in spec.split(",") if token.strip()}
    if 0 in strong:
        raise DataError(f"{flag}: background (0) is always known; list foreground classes only")
    return ClassSplit(frozenset(strong), foreground - strong)


def build_pools(records, class_split):
    """Splits VocRecords into the strong and the weak pool (docs/method.md, "Terms").

    A masked image whose foreground classes are all strong goes to the strong
    pool (a background-only image too, unless no class is strong); any image
    with a weak class, or with no mask, goes to the weak pool as image + labels.
    """
    strong, weak = [], []
    for record in records:
        has_weak_class = bool(record.labels & class_split.weak)
        if record.mask_path is not None and not has_weak_class and class_split.strong:
            strong.append(StrongExample(record.image_id, record.image_path,
                                        record.mask_path, record.labels))
        elif has_weak_class or record.mask_path is None:
            weak.append(WeakExample(record.image_id, record.image_path, record.labels))
    return Pools(tuple(strong), tuple(weak))

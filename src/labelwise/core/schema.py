"""Label schemas: the classes a dataset or project uses, and keypoint skeletons.

A class is either a *category* (image-level, for categorization, single- or multi-label per
schema) or an *object* class drawn with a tool: ``bbox``, ``polygon`` or ``keypoints``. A
keypoints class carries a ``Skeleton``: named points, edges between them and left/right flip
pairs (all 0-based indices).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ClassKind = Literal["category", "object"]
Tool = Literal["bbox", "polygon", "keypoints"]

CLASS_KINDS: tuple[str, ...] = ("category", "object")
TOOLS: tuple[str, ...] = ("bbox", "polygon", "keypoints")

# A colour-blind-friendly cycle (Okabe-Ito plus Tableau), used when a class comes without one.
PALETTE = (
    "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7",
    "#4E79A7", "#F28E2B", "#59A14F", "#EDC948", "#B07AA1", "#FF9DA7", "#9C755F",
    "#76B7B2", "#E15759",
)


def default_color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


@dataclass(slots=True)
class Skeleton:
    """Named keypoints with edges and flip pairs, all as 0-based indices into ``keypoints``."""

    keypoints: list[str]
    edges: list[tuple[int, int]] = field(default_factory=list)
    flip_pairs: list[tuple[int, int]] = field(default_factory=list)
    template: str | None = None

    def __post_init__(self) -> None:
        n = len(self.keypoints)
        if n == 0:
            raise ValueError("a skeleton needs at least one keypoint name")
        if len(set(self.keypoints)) != n:
            dupes = sorted({k for k in self.keypoints if self.keypoints.count(k) > 1})
            raise ValueError(f"skeleton keypoint names must be unique; repeated: {dupes}")
        for kind, pairs in (("edge", self.edges), ("flip pair", self.flip_pairs)):
            for a, b in pairs:
                if not (_index(a) and _index(b)) or not (0 <= a < n and 0 <= b < n) or a == b:
                    raise ValueError(
                        f"skeleton {kind} ({a!r}, {b!r}) must join two different points in "
                        f"0..{n - 1}"
                    )
        self.edges = [(int(a), int(b)) for a, b in self.edges]
        self.flip_pairs = [(int(a), int(b)) for a, b in self.flip_pairs]

    def __len__(self) -> int:
        return len(self.keypoints)

    def to_dict(self) -> dict:
        return {
            "keypoints": list(self.keypoints),
            "edges": [list(e) for e in self.edges],
            "flip_pairs": [list(p) for p in self.flip_pairs],
            "template": self.template,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Skeleton:
        return cls(
            keypoints=list(data["keypoints"]),
            edges=[tuple(e) for e in data.get("edges", [])],
            flip_pairs=[tuple(p) for p in data.get("flip_pairs", [])],
            template=data.get("template"),
        )


def _index(v: object) -> bool:
    """A point index: an int, or a float that is one (JSON may give 3.0); never a bool."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return isinstance(v, int) or v.is_integer()


def flip_pairs_by_name(names: list[str]) -> list[tuple[int, int]]:
    """Pair ``left_*`` with ``right_*`` names (also ``*_left``/``*_right``)."""
    index = {n: i for i, n in enumerate(names)}
    pairs = []
    for i, name in enumerate(names):
        for a, b in (("left_", "right_"), ("_left", "_right"), ("left", "right")):
            if a in name:
                j = index.get(name.replace(a, b, 1))
                if j is not None:
                    pairs.append((i, j))
                break
    return pairs


_COCO17 = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
]
# COCO's own skeleton, converted from 1-based to 0-based.
_COCO17_EDGES = [
    (a - 1, b - 1)
    for a, b in [
        (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8),
        (7, 9), (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
    ]
]

# The 33-landmark full-body layout (BlazePose topology): face, hands and feet points.
_BODY33 = [
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
]
_BODY33_EDGES = [
    (0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10), (11, 12),
    (11, 13), (13, 15), (15, 17), (15, 19), (15, 21), (17, 19), (12, 14), (14, 16), (16, 18),
    (16, 20), (16, 22), (18, 20), (11, 23), (12, 24), (23, 24), (23, 25), (24, 26), (25, 27),
    (26, 28), (27, 29), (28, 30), (29, 31), (30, 32), (27, 31), (28, 32),
]

SKELETON_TEMPLATES: dict[str, Skeleton] = {
    "coco-person-17": Skeleton(
        _COCO17, _COCO17_EDGES, flip_pairs_by_name(_COCO17), template="coco-person-17"
    ),
    "full-body-33": Skeleton(
        _BODY33, _BODY33_EDGES, flip_pairs_by_name(_BODY33), template="full-body-33"
    ),
}


def skeleton_template(name: str) -> Skeleton:
    """A fresh copy of a built-in skeleton; unknown names list the choices."""
    try:
        t = SKELETON_TEMPLATES[name]
    except KeyError:
        raise KeyError(
            f"unknown skeleton template {name!r}; choose one of {sorted(SKELETON_TEMPLATES)}"
        ) from None
    return Skeleton.from_dict(t.to_dict())


@dataclass(slots=True)
class LabelClass:
    """One class of a schema. ``external_id`` keeps the id a file gave it (COCO category id)."""

    name: str
    kind: ClassKind = "object"
    tool: Tool | None = "bbox"
    color: str | None = None
    skeleton: Skeleton | None = None
    supercategory: str | None = None
    external_id: int | None = None

    def __post_init__(self) -> None:
        if not self.name or not self.name.strip():
            raise ValueError("a class needs a non-empty name")
        if self.kind not in CLASS_KINDS:
            raise ValueError(f"class kind {self.kind!r} must be one of {CLASS_KINDS}")
        if self.kind == "category":
            self.tool = None
            self.skeleton = None
        elif self.tool not in TOOLS:
            raise ValueError(f"class tool {self.tool!r} must be one of {TOOLS}")
        if self.tool == "keypoints" and self.skeleton is None:
            raise ValueError(f"keypoints class {self.name!r} needs a skeleton")


@dataclass(slots=True)
class LabelSchema:
    """The classes of a dataset. ``multi_label``: an image may carry several categories."""

    classes: list[LabelClass] = field(default_factory=list)
    multi_label: bool = False

    def get(self, name: str, kind: ClassKind | None = None) -> LabelClass | None:
        for c in self.classes:
            if c.name == name and (kind is None or c.kind == kind):
                return c
        return None

    def add(self, cls: LabelClass) -> LabelClass:
        """Add a class unless one of that name and kind exists; return the one kept."""
        existing = self.get(cls.name, cls.kind)
        if existing is not None:
            return existing
        if cls.color is None:
            cls.color = default_color(len(self.classes))
        self.classes.append(cls)
        return cls

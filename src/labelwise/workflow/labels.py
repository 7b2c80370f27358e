"""Task labels: validate what a labeler saves against the project's schema and the image.

A label is ``{"class_id", "bbox"?, "polygons"?, "rle"?, "keypoints"?, "attributes"?,
"iscrowd"?}`` in image pixels (same conventions as ``labelwise.core.geometry``). A category
class takes no geometry; a bbox class needs ``bbox``; a polygon class ``polygons`` or ``rle``;
a keypoints class ``keypoints`` with 3 numbers per skeleton point.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from labelwise.core import geometry
from labelwise.db.models import LabelClassRow
from labelwise.errors import ValidationError

_OPTS = orjson.OPT_SORT_KEYS
GEOMETRY_KEYS = ("bbox", "polygons", "rle", "keypoints")


def _rounded(values: Any) -> Any:
    if isinstance(values, list | tuple):
        return [_rounded(v) for v in values]
    if isinstance(values, float | int) and not isinstance(values, bool):
        return round(float(values), 3)
    return values


def label_fingerprint(class_id: int, geom: Mapping[str, Any]) -> str:
    """Hash of a label's class, geometry, attributes and crowd flag (coordinates to 1/1000 px).

    Two labels with the same fingerprint are the same label: a model pre-label whose
    fingerprint did not change by submit was accepted as is.
    """
    parts = {
        "c": int(class_id),
        "b": _rounded(geom.get("bbox")),
        "p": _rounded(geom.get("polygons")),
        "r": geom.get("rle"),
        "k": _rounded(geom.get("keypoints")),
        "a": geom.get("attributes") or None,
        "i": bool(geom.get("iscrowd")),
    }
    return hashlib.blake2b(orjson.dumps(parts, option=_OPTS), digest_size=12).hexdigest()


def row_geometry(row: Any) -> dict[str, Any]:
    """The geometry of a stored label (a row or a dict of column values) as a label dict."""
    get = row.get if isinstance(row, Mapping) else lambda k: getattr(row, k)
    bbox = None
    if get("bbox_x") is not None:
        bbox = [get("bbox_x"), get("bbox_y"), get("bbox_w"), get("bbox_h")]
    return {
        "bbox": bbox,
        "polygons": get("polygons"),
        "rle": get("rle"),
        "keypoints": get("keypoints"),
        "attributes": get("attributes") or None,
        "iscrowd": bool(get("iscrowd")),
    }


def label_columns(label: Mapping[str, Any]) -> dict[str, Any]:
    """Column values of a validated label dict."""
    bbox = label.get("bbox")
    return {
        "class_id": int(label["class_id"]),
        "bbox_x": bbox[0] if bbox else None,
        "bbox_y": bbox[1] if bbox else None,
        "bbox_w": bbox[2] if bbox else None,
        "bbox_h": bbox[3] if bbox else None,
        "polygons": label.get("polygons"),
        "rle": label.get("rle"),
        "keypoints": label.get("keypoints"),
        "attributes": label.get("attributes") or None,
        "iscrowd": bool(label.get("iscrowd")),
    }


def validate_labels(
    labels: list[Mapping[str, Any]],
    classes: dict[int, LabelClassRow],
    *,
    width: int,
    height: int,
    multi_label: bool,
    where: str,
) -> None:
    """Raise one ValidationError listing every problem of ``labels`` (nothing is saved then)."""
    problems: list[str] = []
    categories = 0
    for i, label in enumerate(labels):
        cls = classes.get(label.get("class_id"))  # type: ignore[arg-type]
        if cls is None:
            known = ", ".join(f"{c.name}={c.id}" for c in classes.values())
            problems.append(f"labels[{i}]: class_id {label.get('class_id')!r} is not in the "
                            f"project's schema (classes: {known or 'none'})")
            continue
        if cls.kind == "category":
            categories += 1
        problem = _label_problem(label, cls, width, height)
        if problem:
            problems.append(f"labels[{i}] ({cls.name}): {problem}")
    if categories > 1 and not multi_label:
        problems.append(f"{categories} category labels on one image, but the schema is "
                        "single-label; keep one")
    if problems:
        raise ValidationError(f"{where}: {len(problems)} label(s) are invalid; nothing was saved",
                              problems=problems)


def _label_problem(
    label: Mapping[str, Any], cls: LabelClassRow, width: int, height: int
) -> str | None:
    given = [k for k in GEOMETRY_KEYS if label.get(k) is not None]
    if cls.kind == "category":
        if given:
            return f"a category label takes no geometry; remove {', '.join(given)}"
        return None
    need = {"bbox": ("bbox",), "polygon": ("polygons", "rle"), "keypoints": ("keypoints",)}
    wanted = need.get(cls.tool or "bbox", ("bbox",))
    if not any(k in given for k in wanted):
        return f"a {cls.tool} class needs {' or '.join(wanted)}"
    checks = []
    if label.get("bbox") is not None:
        checks.append(_check_bbox(label["bbox"], width, height))
    if label.get("polygons") is not None:
        checks.append(_check_polygons(label["polygons"], width, height))
    if label.get("rle") is not None:
        checks.append(geometry.rle_problem(label["rle"], width, height))
    if label.get("keypoints") is not None:
        n = len((cls.skeleton or {}).get("keypoints", [])) if cls.tool == "keypoints" else 0
        kp = label["keypoints"]
        if not isinstance(kp, list) or not n:
            checks.append("keypoints need a keypoints class with a skeleton")
        else:
            checks.append(geometry.keypoints_problem(kp, n, width, height))
    attrs = label.get("attributes")
    if attrs is not None and not isinstance(attrs, dict):
        checks.append("attributes must be an object of names to values")
    return next((c for c in checks if c), None)


def _check_bbox(bbox: Any, width: int, height: int) -> str | None:
    if not isinstance(bbox, list | tuple) or len(bbox) != 4:
        return "bbox must be 4 numbers [x, y, width, height]"
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in bbox):
        return "bbox must hold numbers only"
    return geometry.bbox_problem(bbox, width, height)


def _check_polygons(polygons: Any, width: int, height: int) -> str | None:
    if not isinstance(polygons, list) or not polygons:
        return "polygons must be a non-empty list of flat [x1, y1, x2, y2, ...] rings"
    for ring in polygons:
        if not isinstance(ring, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in ring
        ):
            return "each polygon ring must be a flat list of numbers [x1, y1, x2, y2, ...]"
        problem = geometry.polygon_problem(ring, width, height)
        if problem:
            return problem
    return None


def main_tool(kinds: list[tuple[str, str | None]]) -> str | None:
    """The tool most of a task's labels were drawn with, from their classes' (kind, tool);
    "category" for image-level labels, None without labels."""
    counts: dict[str, int] = {}
    for kind, tool in kinds:
        name = "category" if kind == "category" else (tool or "bbox")
        counts[name] = counts.get(name, 0) + 1
    if not counts:
        return None
    return max(sorted(counts), key=lambda t: counts[t])

"""Boxes, polygons and keypoints in pixel coordinates, and the checks they must pass.

Conventions (the COCO ones): boxes are ``(x, y, width, height)`` with the origin at the
top-left corner of the image; polygons are flat rings ``[x1, y1, x2, y2, ...]``; keypoints are
flat triplets ``[x, y, v, ...]`` with visibility ``v`` 0 (not labeled), 1 (labeled, hidden) or
2 (labeled, visible).
"""

from __future__ import annotations

from collections.abc import Sequence

BBox = tuple[float, float, float, float]

#: How far (pixels) a coordinate may stick out of the image before it counts as an error.
#: Tools round, so a box ending at 640.4 on a 640 px image is common and harmless; it is clipped.
EDGE_TOLERANCE = 1.0


def bbox_problem(bbox: Sequence[float], width: int, height: int) -> str | None:
    """Return why a box is unacceptable on a ``width`` x ``height`` image, or None if fine."""
    if len(bbox) != 4:
        return f"bbox must have 4 numbers [x, y, width, height], got {len(bbox)}"
    x, y, w, h = bbox
    if not all(_finite(v) for v in bbox):
        return f"bbox {list(bbox)} has a value that is not a finite number"
    if w <= 0 or h <= 0:
        return f"bbox {list(bbox)} has a non-positive size (width {w}, height {h})"
    t = EDGE_TOLERANCE
    if x < -t or y < -t or x + w > width + t or y + h > height + t:
        return (
            f"bbox {list(bbox)} lies outside the {width}x{height} image "
            f"(right edge {x + w:g}, bottom edge {y + h:g})"
        )
    return None


def clip_bbox(bbox: Sequence[float], width: int, height: int) -> BBox:
    """Clip a box that passed ``bbox_problem`` into the image."""
    x, y, w, h = (float(v) for v in bbox)
    x0, y0 = max(0.0, x), max(0.0, y)
    x1, y1 = min(float(width), x + w), min(float(height), y + h)
    return (x0, y0, x1 - x0, y1 - y0)


def polygon_problem(ring: Sequence[float], width: int, height: int) -> str | None:
    """Return why a polygon ring is unacceptable, or None."""
    n = len(ring)
    if n < 6 or n % 2:
        return f"polygon needs at least 3 points as [x1, y1, x2, y2, ...], got {n} numbers"
    if not all(_finite(v) for v in ring):
        return "polygon has a value that is not a finite number"
    t = EDGE_TOLERANCE
    xs, ys = ring[0::2], ring[1::2]
    if min(xs) < -t or min(ys) < -t or max(xs) > width + t or max(ys) > height + t:
        return f"polygon lies outside the {width}x{height} image"
    return None


def polygon_bbox(rings: Sequence[Sequence[float]]) -> BBox:
    """Bounding box of one or more rings."""
    xs = [v for ring in rings for v in ring[0::2]]
    ys = [v for ring in rings for v in ring[1::2]]
    x0, y0 = min(xs), min(ys)
    return (x0, y0, max(xs) - x0, max(ys) - y0)


def polygon_area(ring: Sequence[float]) -> float:
    """Area of one ring by the shoelace formula."""
    xs, ys = ring[0::2], ring[1::2]
    n = len(xs)
    s = 0.0
    for i in range(n):
        j = (i + 1) % n
        s += xs[i] * ys[j] - xs[j] * ys[i]
    return abs(s) / 2.0


def keypoints_problem(
    keypoints: Sequence[float], num_points: int, width: int, height: int
) -> str | None:
    """Return why a keypoint triplet list is unacceptable for a ``num_points`` skeleton."""
    if len(keypoints) != 3 * num_points:
        return (
            f"keypoints must have 3 x {num_points} = {3 * num_points} numbers "
            f"[x, y, visibility, ...] for this skeleton, got {len(keypoints)}"
        )
    if not all(_finite(v) for v in keypoints):
        return "keypoints have a value that is not a finite number"
    t = EDGE_TOLERANCE
    for i in range(num_points):
        x, y, v = keypoints[3 * i : 3 * i + 3]
        if v not in (0, 1, 2):
            return f"keypoint {i} has visibility {v:g}; it must be 0, 1 or 2"
        if v > 0 and (x < -t or y < -t or x > width + t or y > height + t):
            return f"keypoint {i} at ({x:g}, {y:g}) lies outside the {width}x{height} image"
    return None


def keypoints_bbox(keypoints: Sequence[float]) -> BBox | None:
    """Bounding box of the labeled keypoints (v > 0), or None when none are labeled."""
    pts = [
        (keypoints[i], keypoints[i + 1]) for i in range(0, len(keypoints), 3) if keypoints[i + 2]
    ]
    if not pts:
        return None
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))


def num_labeled(keypoints: Sequence[float]) -> int:
    """COCO's num_keypoints: how many points have visibility > 0."""
    return sum(1 for i in range(2, len(keypoints), 3) if keypoints[i] > 0)


def _finite(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")

"""Boxes, polygons and keypoints in pixel coordinates, and the checks they must pass.

Conventions (the COCO ones): boxes are ``(x, y, width, height)`` with the origin at the
top-left corner of the image; polygons are flat rings ``[x1, y1, x2, y2, ...]``; keypoints are
flat triplets ``[x, y, v, ...]`` with visibility ``v`` 0 (not labeled), 1 (labeled, hidden) or
2 (labeled, visible).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

BBox = tuple[float, float, float, float]

#: How far (pixels) a coordinate may stick out of the image before it counts as an error.
#: Tools round, so a box ending at 640.4 on a 640 px image is common and harmless; it is clipped.
EDGE_TOLERANCE = 1.0


def bbox_problem(bbox: Sequence[float], width: int, height: int) -> str | None:
    """Return why a box is unacceptable on a ``width`` x ``height`` image, or None if fine."""
    if _inside(bbox, width, height):
        return None  # the common case, decided in a few comparisons
    if len(bbox) != 4:
        return f"bbox must have 4 numbers [x, y, width, height], got {len(bbox)}"
    x, y, w, h = bbox
    if not all(_finite(v) for v in bbox):
        return f"bbox {list(bbox)} has a value that is not a finite number; fix the box"
    if w <= 0 or h <= 0:
        return (
            f"bbox {list(bbox)} has a non-positive size (width {w:g}, height {h:g}); boxes are "
            "[x, y, width, height] with width and height > 0: fix or remove the box"
        )
    t = EDGE_TOLERANCE
    if x < -t or y < -t or x + w > width + t or y + h > height + t:
        return (
            f"bbox {list(bbox)} lies outside the {width}x{height} image "
            f"(right edge {x + w:g}, bottom edge {y + h:g}); fix the box, or the image's "
            "declared width/height if the image was resized"
        )
    _, _, cw, ch = clip_bbox(bbox, width, height)
    if cw <= 0 or ch <= 0:
        return (
            f"bbox {list(bbox)} has no area inside the {width}x{height} image (it only touches "
            "the edge); fix or remove the box"
        )
    return None


def clip_bbox(bbox: Sequence[float], width: int, height: int) -> BBox:
    """Clip a box that passed ``bbox_problem`` into the image."""
    if _inside(bbox, width, height):
        return (float(bbox[0]), float(bbox[1]), float(bbox[2]), float(bbox[3]))
    x, y, w, h = (float(v) for v in bbox)
    x0, y0 = max(0.0, x), max(0.0, y)
    x1, y1 = min(float(width), x + w), min(float(height), y + h)
    return (x0, y0, x1 - x0, y1 - y0)


def _inside(bbox: Sequence[float], width: int, height: int) -> bool:
    """True for a 4-number box of positive size wholly inside the image (NaN and inf fail)."""
    try:
        x, y, w, h = bbox
        return (
            type(x) in _NUMBER and type(y) in _NUMBER and type(w) in _NUMBER
            and type(h) in _NUMBER and 0 <= x and 0 <= y and 0 < w and 0 < h
            and x + w <= width and y + h <= height
        )
    except (TypeError, ValueError):
        return False


_NUMBER = (int, float)


def polygon_problem(ring: Sequence[float], width: int, height: int) -> str | None:
    """Return why a polygon ring is unacceptable, or None."""
    n = len(ring)
    if n < 6 or n % 2:
        return f"polygon needs at least 3 points as [x1, y1, x2, y2, ...], got {n} numbers"
    if not all(_finite(v) for v in ring):
        return "polygon has a value that is not a finite number; fix the polygon"
    t = EDGE_TOLERANCE
    xs, ys = ring[0::2], ring[1::2]
    if min(xs) < -t or min(ys) < -t or max(xs) > width + t or max(ys) > height + t:
        return (
            f"polygon spans x {min(xs):g}..{max(xs):g}, y {min(ys):g}..{max(ys):g}, outside the "
            f"{width}x{height} image; fix the polygon's points"
        )
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
        return "keypoints have a value that is not a finite number; fix the keypoints"
    t = EDGE_TOLERANCE
    for i in range(num_points):
        x, y, v = keypoints[3 * i : 3 * i + 3]
        if v not in (0, 1, 2):
            return f"keypoint {i} has visibility {v:g}; it must be 0, 1 or 2"
        if v > 0 and (x < -t or y < -t or x > width + t or y > height + t):
            return (
                f"keypoint {i} at ({x:g}, {y:g}) lies outside the {width}x{height} image; fix it "
                "or set its visibility to 0 (not labeled)"
            )
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


def rle_counts(rle: Mapping[str, Any]) -> list[int]:
    """Run lengths of a COCO RLE mask, from either form of ``counts``.

    ``counts`` is a list of ints (uncompressed RLE) or COCO's compressed string. Runs alternate
    0s and 1s, start with 0s and go down the columns (Fortran order). Raises ValueError when
    ``counts`` is neither, holds a negative run, or the string is not valid COCO encoding.

    >>> rle_counts({"size": [2, 2], "counts": "13"})
    [1, 3]
    """
    counts = rle.get("counts") if isinstance(rle, Mapping) else None
    if isinstance(counts, str):
        runs = _decode_rle_string(counts)
    elif isinstance(counts, (list, tuple)) and all(
        isinstance(c, int) and not isinstance(c, bool) for c in counts
    ):
        runs = list(counts)
    else:
        raise ValueError("RLE 'counts' must be a list of run lengths or a COCO-compressed string")
    if any(c < 0 for c in runs):
        raise ValueError("RLE 'counts' has a negative run length")
    return runs


def _decode_rle_string(s: str) -> list[int]:
    """COCO's compressed counts: 5-bit groups with a continue bit, deltas from the 4th run on."""
    runs: list[int] = []
    p, n = 0, len(s)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n or k > 12:
                raise ValueError("RLE 'counts' string ends in the middle of a number")
            c = ord(s[p]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"RLE 'counts' string has an invalid character {s[p]!r}")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        runs.append(x)
    return runs


def rle_problem(rle: object, width: int, height: int) -> str | None:
    """Return why a COCO RLE mask (``{"size": [h, w], "counts": ...}``) is unacceptable, or None."""
    if not isinstance(rle, Mapping):
        return "RLE segmentation must be an object with 'size' and 'counts'"
    size = rle.get("size")
    if not isinstance(size, (list, tuple)) or [*size] != [height, width]:
        return (f"RLE mask size {size!r:.40} does not match the image's [height, width] "
                f"{[height, width]}")
    try:
        runs = rle_counts(rle)
    except ValueError as err:
        return str(err)
    if sum(runs) != width * height:
        return (f"RLE runs cover {sum(runs)} pixels but the mask is {height}x{width} = "
                f"{width * height}; the mask does not belong to this image size")
    return None


def rle_area(runs: Sequence[int]) -> int:
    """Pixels set in a mask given its run lengths (the odd-indexed runs are 1s)."""
    return sum(runs[1::2])


def rle_bbox(runs: Sequence[int], height: int) -> BBox | None:
    """Bounding box ``(x, y, w, h)`` of the set pixels of a column-major RLE, or None if empty."""
    x0 = y0 = x1 = y1 = None
    pos = 0
    for i, run in enumerate(runs):
        if i % 2 and run > 0:
            first, last = pos, pos + run - 1
            cx0, cx1 = first // height, last // height
            ry0, ry1 = (first % height, last % height) if cx0 == cx1 else (0, height - 1)
            x0 = cx0 if x0 is None else min(x0, cx0)
            x1 = cx1 if x1 is None else max(x1, cx1)
            y0 = ry0 if y0 is None else min(y0, ry0)
            y1 = ry1 if y1 is None else max(y1, ry1)
        pos += run
    if x0 is None:
        return None
    return (float(x0), float(y0), float(x1 - x0 + 1), float(y1 - y0 + 1))


def _finite(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")

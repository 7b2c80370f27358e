"""A content hash of one annotation, so the same label imported twice is recognised.

Coordinates are rounded to 1/1000 px, so a value written out and read back in compares equal.
The hash is stored with each annotation: changing this function changes what counts as "the
same" for data already in a workspace, so it needs a migration that recomputes the column.
"""

from __future__ import annotations

import hashlib

import orjson

from labelwise.core.annotations import Annotation

_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _r(values) -> list[float]:
    return [round(float(v), 3) for v in values]


def annotation_fingerprint(ann: Annotation, class_key: str) -> str:
    """Hex digest over class, geometry, attributes, source, confidence and the crowd flag."""
    parts = [class_key, ann.source, "c" if ann.iscrowd else "-"]
    if ann.bbox is not None:
        parts.append("b%.3f,%.3f,%.3f,%.3f" % tuple(ann.bbox))
    if ann.polygons is not None:
        parts.append("p" + orjson.dumps([_r(ring) for ring in ann.polygons]).decode())
    if ann.rle is not None:
        parts.append("r" + orjson.dumps(ann.rle, option=_OPTS).decode())
    if ann.keypoints is not None:
        parts.append("k" + orjson.dumps(_r(ann.keypoints)).decode())
    if ann.attributes:
        parts.append("a" + orjson.dumps(ann.attributes, option=_OPTS).decode())
    if ann.confidence is not None:
        parts.append("s%.6f" % ann.confidence)
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=12).hexdigest()

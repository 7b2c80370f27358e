"""A content hash of one annotation, so the same label imported twice is recognised."""

from __future__ import annotations

import hashlib

import orjson

from labelwise.core.annotations import Annotation


def _r(values):
    return None if values is None else [round(float(v), 3) for v in values]


def annotation_fingerprint(ann: Annotation, class_key: str) -> str:
    """Hex digest over class, geometry (rounded to 1/1000 px), attributes, source and flags."""
    payload = (
        class_key,
        _r(ann.bbox),
        None if ann.polygons is None else [_r(ring) for ring in ann.polygons],
        ann.rle,
        _r(ann.keypoints),
        ann.attributes or None,
        ann.source,
        None if ann.confidence is None else round(ann.confidence, 6),
        bool(ann.iscrowd),
    )
    data = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY)
    return hashlib.blake2b(data, digest_size=12).hexdigest()

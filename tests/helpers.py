"""Tiny real fixtures built inline: images, COCO dicts, comparable annotation sets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image

from labelwise.core.annotations import DatasetDraft


def make_image(path: Path, size: tuple[int, int] = (64, 48), seed: int = 0, fmt: str | None = None) -> Path:
    """Write a small distinct image (content depends on ``seed``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.new("RGB", size, ((seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256))
    im.putpixel((0, 0), (seed % 256, (seed // 256) % 256, 7))
    im.save(path, format=fmt)
    return path


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def annotation_set(draft: DatasetDraft, *, ndigits: int = 3) -> set[tuple]:
    """Everything that must survive a round trip, per image path, order-free but complete."""

    def r(values):
        return None if values is None else tuple(round(float(v), ndigits) for v in values)

    out = set()
    for rec in draft.images:
        for i, a in enumerate(sorted(rec.annotations, key=lambda a: (a.label, r(a.bbox) or ()))):
            out.add((
                rec.path, i, a.label, a.kind, r(a.bbox),
                None if a.polygons is None else tuple(r(p) for p in a.polygons),
                r(a.keypoints), a.iscrowd, a.source,
                None if a.confidence is None else round(a.confidence, 4),
            ))
    return out

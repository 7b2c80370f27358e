"""The object crops of a dataset: one per annotation with geometry, keyed by content and box.

A crop is the object's box (or polygon, mask or keypoint bounds) grown by ``margin`` of its size
per side and clipped to the image. Its cache key is (image content hash, ``"x0,y0,x1,y1"``), so
the same object in identical bytes is embedded once, whichever annotation or dataset names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select

from labelwise.db import queries
from labelwise.db.models import AnnotationRow, AssetRow, SplitAssetRow
from labelwise.embeddings.preprocess import DEFAULT_MARGIN, Box, box_key, crop_box, object_bounds

if TYPE_CHECKING:
    from labelwise.workspace import Workspace

__all__ = ["DEFAULT_MARGIN", "ObjectCrop", "SkippedObject", "dataset_objects"]


@dataclass(frozen=True, slots=True)
class ObjectCrop:
    """One annotated object to embed: where its image is and which box to cut out."""

    annotation_id: int
    asset_id: int
    path: str
    content_hash: str
    format: str
    box: Box

    @property
    def key(self) -> tuple[str, str]:
        return self.content_hash, box_key(self.box)


@dataclass(frozen=True, slots=True)
class SkippedObject:
    annotation_id: int
    asset_id: int
    path: str
    reason: str


def dataset_objects(
    ws: Workspace, dataset: str | int, *, split: str | None = None, margin: float = DEFAULT_MARGIN
) -> tuple[list[ObjectCrop], list[SkippedObject]]:
    """Every object annotation of a dataset (or split) as a crop, in annotation id order.

    Image-level categories have no geometry and are not objects. Objects whose crop falls
    outside the image come back in the second list with the reason.
    """
    if not 0 <= margin <= 2:
        from labelwise.errors import ValidationError

        raise ValidationError(f"margin {margin!r} must be between 0 and 2 (0.1 = 10% per side)")
    A = AnnotationRow
    with ws.session() as s:
        ds = queries.get_dataset(s, dataset)
        stmt = (
            select(A.id, A.asset_id, A.bbox_x, A.bbox_y, A.bbox_w, A.bbox_h, A.polygons, A.rle,
                   A.keypoints, AssetRow.path, AssetRow.content_hash, AssetRow.format,
                   AssetRow.width, AssetRow.height)
            .join(AssetRow, AssetRow.id == A.asset_id)
            .where(A.dataset_id == ds.id)
            .order_by(A.id)
        )
        if split is not None:
            sp = queries.get_split(s, ds, split)
            stmt = stmt.where(A.asset_id.in_(
                select(SplitAssetRow.asset_id).where(SplitAssetRow.split_id == sp.id)))
        rows = s.execute(stmt).all()
    crops: list[ObjectCrop] = []
    skipped: list[SkippedObject] = []
    for (ann_id, asset_id, bx, by, bw, bh, polygons, rle, keypoints, path, content_hash, fmt,
         width, height) in rows:
        bbox = None if bx is None else (bx, by, bw, bh)
        bounds = object_bounds(bbox=bbox, polygons=polygons, rle=rle, keypoints=keypoints)
        if bounds is None:
            if keypoints is not None and bbox is None:
                skipped.append(SkippedObject(ann_id, asset_id, path,
                                             "no visible keypoints and no box to crop"))
            continue
        box = crop_box(bounds, width=width, height=height, margin=margin)
        if box is None:
            skipped.append(SkippedObject(ann_id, asset_id, path,
                                         "the object lies outside the image"))
            continue
        crops.append(ObjectCrop(ann_id, asset_id, path, content_hash, fmt, box))
    return crops, skipped

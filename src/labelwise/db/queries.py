"""Read queries shared by the CLI, the Python API and the web server.

Lists use keyset pagination: the cursor is the last id seen, so page 10,000 costs what page 1
costs. Cursors are opaque strings to callers.
"""

from __future__ import annotations

import base64
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, any_, func, literal, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from labelwise.db.models import (
    AnnotationRow,
    AssetRow,
    AssetTagRow,
    DatasetRow,
    LabelClassRow,
    SplitAssetRow,
    SplitRow,
)
from labelwise.errors import LabelwiseError, NotFoundError

MAX_PAGE = 1000
#: Largest id a row can have: ids are 64-bit, and a bigger number overflows the driver.
MAX_ID = 2**63 - 1


def id_in(session: Session, column: Any, ids: list[int]) -> ColumnElement[bool]:
    """``column IN ids`` for long lists of ids: one array parameter on PostgreSQL (a list of
    5,000 separate parameters cost about 0.25 s of driver time per statement there), a plain
    ``IN`` elsewhere."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(literal(list(ids), ARRAY(BigInteger)))
    return column.in_(ids)


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(str(last_id).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        last_id = int(base64.urlsafe_b64decode(padded.encode()).decode())
        if not 0 <= last_id < 2**63:  # ids are 64-bit; larger numbers overflow the driver
            raise ValueError(last_id)
        return last_id
    except (ValueError, UnicodeDecodeError) as err:
        raise LabelwiseError(
            f"invalid cursor {cursor!r}; pass the next_cursor of the previous page"
        ) from err


def get_dataset(session: Session, ref: str | int) -> DatasetRow:
    """A dataset by name or id; unknown ones list the names that exist."""
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        row = session.get(DatasetRow, int(ref)) if 1 <= int(ref) <= MAX_ID else None
        if row is None and isinstance(ref, str):
            row = session.scalar(select(DatasetRow).where(DatasetRow.name == ref))
    else:
        row = session.scalar(select(DatasetRow).where(DatasetRow.name == ref))
    if row is None:
        names = session.scalars(select(DatasetRow.name).order_by(DatasetRow.name).limit(20)).all()
        raise NotFoundError(
            f"no dataset {ref!r} in this workspace (datasets: {', '.join(names) or 'none'}); "
            "import one with `labelwise import`"
        )
    return row


def get_split(session: Session, dataset: DatasetRow, name: str) -> SplitRow:
    row = session.scalar(
        select(SplitRow).where(SplitRow.dataset_id == dataset.id, SplitRow.name == name)
    )
    if row is None:
        names = session.scalars(
            select(SplitRow.name).where(SplitRow.dataset_id == dataset.id).order_by(SplitRow.name)
        ).all()
        raise NotFoundError(
            f"dataset {dataset.name!r} has no split {name!r} (splits: {', '.join(names) or 'none'})"
        )
    return row


def dataset_public(row: DatasetRow, *, num_assets: int | None = None) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "num_assets": num_assets,
    }


def count_datasets(session: Session) -> int:
    """How many datasets the workspace holds (one cheap query: also a database liveness check)."""
    return session.scalar(select(func.count()).select_from(DatasetRow)) or 0


def list_datasets(session: Session) -> list[dict[str, Any]]:
    counts = dict(
        session.execute(
            select(AssetRow.dataset_id, func.count()).group_by(AssetRow.dataset_id)
        ).all()
    )
    rows = session.scalars(select(DatasetRow).order_by(DatasetRow.id)).all()
    return [dataset_public(r, num_assets=counts.get(r.id, 0)) for r in rows]


def class_public(row: LabelClassRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "kind": row.kind,
        "tool": row.tool,
        "color": row.color,
        "skeleton": row.skeleton,
        "supercategory": row.supercategory,
    }


def dataset_summary(session: Session, ds: DatasetRow) -> dict[str, Any]:
    """Counts of assets, annotations per class and kind, and splits."""
    num_assets = session.scalar(select(func.count()).where(AssetRow.dataset_id == ds.id))
    per_class = dict(
        session.execute(
            select(AnnotationRow.class_id, func.count())
            .where(AnnotationRow.dataset_id == ds.id)
            .group_by(AnnotationRow.class_id)
        ).all()
    )
    splits = session.execute(
        select(SplitRow.name, func.count(SplitAssetRow.asset_id))
        .outerjoin(SplitAssetRow, SplitAssetRow.split_id == SplitRow.id)
        .where(SplitRow.dataset_id == ds.id)
        .group_by(SplitRow.id, SplitRow.name)
        .order_by(SplitRow.name)
    ).all()
    classes = [
        {**class_public(c), "num_annotations": per_class.get(c.id, 0)} for c in ds.schema.classes
    ]
    return {
        **dataset_public(ds, num_assets=num_assets),
        "multi_label": ds.schema.multi_label,
        "num_annotations": sum(per_class.values()),
        "classes": classes,
        "splits": [{"name": n, "num_assets": k} for n, k in splits],
    }


def asset_public(row: AssetRow, tags: list[str]) -> dict[str, Any]:
    return {
        "id": row.id,
        "dataset_id": row.dataset_id,
        "path": row.path,
        "content_hash": row.content_hash,
        "width": row.width,
        "height": row.height,
        "format": row.format,
        "size_bytes": row.size_bytes,
        "metadata": row.meta,
        "tags": tags,
    }


def list_assets(
    session: Session,
    dataset_id: int,
    *,
    tag: str | None = None,
    split: str | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    """A page of a dataset's assets in id order, optionally only those with ``tag`` or in ``split``.

    Each filter is an index range scan on ``(dataset_id, tag, asset_id)`` or the split
    membership's primary key, so deep pages are as fast as the first.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise LabelwiseError(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
    after = decode_cursor(cursor)
    q = select(AssetRow)
    if tag is not None:
        q = q.join(AssetTagRow, AssetTagRow.asset_id == AssetRow.id).where(
            AssetTagRow.dataset_id == dataset_id, AssetTagRow.tag == tag,
            AssetTagRow.asset_id > after,
        ).order_by(AssetTagRow.asset_id)
    elif split is not None:
        ds = session.get(DatasetRow, dataset_id)
        sp = get_split(session, ds, split)
        q = q.join(SplitAssetRow, SplitAssetRow.asset_id == AssetRow.id).where(
            SplitAssetRow.split_id == sp.id, SplitAssetRow.asset_id > after
        ).order_by(SplitAssetRow.asset_id)
    else:
        q = q.where(AssetRow.dataset_id == dataset_id, AssetRow.id > after).order_by(AssetRow.id)
    rows = session.scalars(q.limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    tags = tags_for(session, [r.id for r in rows])
    return {
        "items": [asset_public(r, tags.get(r.id, [])) for r in rows],
        "next_cursor": encode_cursor(rows[-1].id) if more and rows else None,
    }


def tags_for(session: Session, asset_ids: list[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    if not asset_ids:
        return out
    for aid, tag in session.execute(
        select(AssetTagRow.asset_id, AssetTagRow.tag)
        .where(AssetTagRow.asset_id.in_(asset_ids))
        .order_by(AssetTagRow.asset_id, AssetTagRow.tag)
    ):
        out.setdefault(aid, []).append(tag)
    return out


def get_asset(session: Session, asset_id: int) -> AssetRow:
    row = session.get(AssetRow, asset_id)
    if row is None:
        raise NotFoundError(f"no asset with id {asset_id}")
    return row


def annotation_public(row: AnnotationRow, class_name: str) -> dict[str, Any]:
    bbox = None if row.bbox_x is None else [row.bbox_x, row.bbox_y, row.bbox_w, row.bbox_h]
    return {
        "id": row.id,
        "asset_id": row.asset_id,
        "class_id": row.class_id,
        "label": class_name,
        "bbox": bbox,
        "polygons": row.polygons,
        "rle": row.rle,
        "keypoints": row.keypoints,
        "attributes": row.attributes or {},
        "iscrowd": row.iscrowd,
        "source": row.source,
        "confidence": row.confidence,
    }


def asset_annotations(session: Session, asset: AssetRow) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(AnnotationRow).where(AnnotationRow.asset_id == asset.id).order_by(AnnotationRow.id)
    ).all()
    class_ids = {r.class_id for r in rows}
    names = dict(
        session.execute(
            select(LabelClassRow.id, LabelClassRow.name).where(LabelClassRow.id.in_(class_ids))
        ).all()
    ) if class_ids else {}
    return [annotation_public(r, names.get(r.class_id, "?")) for r in rows]

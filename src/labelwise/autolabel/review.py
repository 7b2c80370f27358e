"""Review pre-labels by uncertainty, and bulk-accept a difficulty bucket.

The queue walks one run's pending pre-labels most uncertain first over the index
``(run_id, status, uncertainty, asset_id)``, a page at a time (keyset cursors, never
OFFSET). Without a run it takes the dataset's latest run (of ``model`` when given).
Accepting a bucket marks its pending pre-labels accepted: they then count as labels (they
train the next version and a later run leaves them alone), and the answer says the bucket's
expected error rate, so "accept the easy bucket" comes with its price. Rejecting an image's
pre-label deletes its model labels; the image is unlabeled again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from labelwise.autolabel.versions import get_model
from labelwise.db import queries
from labelwise.db.autolabel_models import (
    BUCKET_NAMES,
    PRELABEL_STATUSES,
    AutolabelModelRow,
    AutolabelVersionRow,
    PrelabelRow,
    PrelabelRunRow,
)
from labelwise.db.models import AnnotationRow, AssetRow, LabelClassRow
from labelwise.errors import NotFoundError, ValidationError
from labelwise.workflow import pages

if TYPE_CHECKING:
    from labelwise.workspace import Workspace

MAX_LIMIT = 1000


def find_run(s: Session, dataset: str | int, *, run: int | None = None,
             model: str | None = None) -> tuple[PrelabelRunRow, str, int]:
    """The run to review: ``run`` (it must be on ``dataset``), else the dataset's latest (of
    ``model``). Returns (run, model name, version)."""
    ds = queries.get_dataset(s, dataset)
    q = (select(PrelabelRunRow, AutolabelModelRow.name, AutolabelVersionRow.version)
         .join(AutolabelVersionRow, AutolabelVersionRow.id == PrelabelRunRow.version_id)
         .join(AutolabelModelRow, AutolabelModelRow.id == AutolabelVersionRow.model_id)
         .where(PrelabelRunRow.dataset_id == ds.id))
    if run is not None:
        row = s.execute(q.where(PrelabelRunRow.id == run)).first()
        if row is None:
            raise NotFoundError(f"dataset {ds.name!r} has no pre-label run {run}")
        return row[0], row[1], row[2]
    if model is not None:
        q = q.where(AutolabelModelRow.id == get_model(s, model).id)
    row = s.execute(q.order_by(PrelabelRunRow.id.desc()).limit(1)).first()
    if row is None:
        of = f" of model {model!r}" if model else ""
        raise NotFoundError(f"dataset {ds.name!r} has no pre-labels{of} yet; make them with "
                            f"`labelwise autolabel apply {model or 'MODEL'} {ds.name}`")
    return row[0], row[1], row[2]


def _check_bucket(bucket: str | None) -> None:
    if bucket is not None and bucket not in BUCKET_NAMES:
        raise ValidationError(f"unknown bucket {bucket!r}; choose one of "
                              f"{', '.join(BUCKET_NAMES)}")


def review_queue(
    ws: Workspace,
    dataset: str | int,
    *,
    run: int | None = None,
    model: str | None = None,
    bucket: str | None = None,
    status: str = "pending",
    cursor: str | None = None,
    limit: int = 50,
) -> dict[str, Any]:
    """A page of pre-labels, most uncertain first: ``{"run", "items", "next_cursor"}``.

    Each item: asset id and path, uncertainty, expected error, bucket, status and the model's
    labels (class, confidence, box, keypoints). Pass ``next_cursor`` back as ``cursor``.
    """
    _check_bucket(bucket)
    if status not in PRELABEL_STATUSES:
        raise ValidationError(f"unknown status {status!r}; choose one of "
                              f"{', '.join(PRELABEL_STATUSES)}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"limit must be between 1 and {MAX_LIMIT}, got {limit!r}")
    pos = pages.decode(cursor, keys=("u", "id"))
    with ws.session() as s:
        run_row, name, version = find_run(s, dataset, run=run, model=model)
        p = PrelabelRow
        q = (select(p, AssetRow.path).join(AssetRow, AssetRow.id == p.asset_id)
             .where(p.run_id == run_row.id, p.status == status))
        if bucket is not None:
            q = q.where(p.bucket == bucket)
        if pos is not None:
            q = q.where(or_(p.uncertainty < pos["u"],
                            and_(p.uncertainty == pos["u"], p.asset_id < pos["id"])))
        rows = s.execute(q.order_by(p.uncertainty.desc(), p.asset_id.desc())
                         .limit(limit + 1)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        labels = _labels(s, run_row.id, [r.asset_id for r, _ in rows])
        items = [{"asset_id": r.asset_id, "path": path, "uncertainty": r.uncertainty,
                  "expected_error": r.expected_error, "bucket": r.bucket, "status": r.status,
                  "labels": labels.get(r.asset_id, [])} for r, path in rows]
        last = rows[-1][0] if rows else None
        return {
            "run": _run_public(run_row, name, version),
            "items": items,
            "next_cursor": pages.encode({"u": last.uncertainty, "id": last.asset_id})
            if more else None,
        }


def _labels(s: Session, run_id: int, asset_ids: list[int]) -> dict[int, list[dict]]:
    if not asset_ids:
        return {}
    a = AnnotationRow
    out: dict[int, list[dict]] = {}
    q = (select(a, LabelClassRow.name).join(LabelClassRow, LabelClassRow.id == a.class_id)
         .where(a.prelabel_run_id == run_id, a.asset_id.in_(asset_ids)).order_by(a.id))
    for ann, cls in s.execute(q):
        bbox = None if ann.bbox_w is None else [ann.bbox_x, ann.bbox_y, ann.bbox_w, ann.bbox_h]
        out.setdefault(ann.asset_id, []).append(
            {"annotation_id": ann.id, "class": cls, "confidence": ann.confidence,
             "bbox": bbox, "keypoints": ann.keypoints})
    return out


def _run_public(run: PrelabelRunRow, name: str, version: int) -> dict[str, Any]:
    return {"id": run.id, "model": name, "version": version, "split": run.split,
            "created_at": run.created_at, "buckets": (run.summary or {}).get("buckets", {})}


def accept(
    ws: Workspace,
    dataset: str | int,
    *,
    run: int | None = None,
    model: str | None = None,
    bucket: str = "easy",
    dry_run: bool = False,
) -> dict[str, Any]:
    """Accept every pending pre-label of ``bucket`` (default the easy one) of a run.

    Returns the run, the bucket, how many were (or with ``dry_run`` would be) accepted, their
    mean expected error (``expected_error_rate``: the share of them likely wrong) and the
    model card's held-out error estimate for the bucket.
    """
    _check_bucket(bucket)
    if bucket is None:
        raise ValidationError("name the bucket to accept (easy, medium or hard)")
    with ws.session() as s, s.begin():
        run_row, name, version = find_run(s, dataset, run=run, model=model)
        p = PrelabelRow
        where = (p.run_id == run_row.id, p.status == "pending", p.bucket == bucket)
        count, mean_err = s.execute(select(func.count(), func.avg(p.expected_error))
                                    .where(*where)).one()
        if not dry_run and count:
            s.execute(update(PrelabelRow).where(*where).values(status="accepted"))
        held = ((run_row.summary or {}).get("buckets", {}).get(bucket) or {}).get(
            "held_out_error")
        return {"run": _run_public(run_row, name, version), "bucket": bucket,
                "count": int(count), "accepted": 0 if dry_run else int(count),
                "expected_error_rate": None if mean_err is None else float(mean_err),
                "expected_errors": float(mean_err or 0.0) * int(count),
                "held_out_error_rate": held}


def reject(
    ws: Workspace,
    dataset: str | int,
    asset_ids: list[int],
    *,
    run: int | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """Reject the pending pre-labels of ``asset_ids`` in a run: their model labels are
    deleted and the images count as unlabeled again. Images whose pre-label is not pending
    (or not in the run) are listed in ``skipped``."""
    ids = sorted({int(a) for a in asset_ids})
    if not ids:
        raise ValidationError("name the images whose pre-labels to reject (asset ids)")
    with ws.session() as s, s.begin():
        run_row, name, version = find_run(s, dataset, run=run, model=model)
        pending = set(s.scalars(select(PrelabelRow.asset_id).where(
            PrelabelRow.run_id == run_row.id, PrelabelRow.status == "pending",
            PrelabelRow.asset_id.in_(ids))))
        if pending:
            s.execute(delete(AnnotationRow).where(
                AnnotationRow.prelabel_run_id == run_row.id, AnnotationRow.source == "model",
                AnnotationRow.asset_id.in_(pending)))
            s.execute(update(PrelabelRow).where(PrelabelRow.run_id == run_row.id,
                                                PrelabelRow.asset_id.in_(pending))
                      .values(status="rejected"))
        return {"run": _run_public(run_row, name, version), "rejected": len(pending),
                "skipped": [a for a in ids if a not in pending]}

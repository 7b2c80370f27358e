"""Which labels a model learns from: a dataset's trusted labels, or a frozen project export.

Trusted labels are human ones plus model pre-labels a reviewer accepted (or edited): pending
pre-labels never train the next model, or it would learn its own guesses. Training from an
export reads the export's own files (COCO or CSV), so the model learns exactly the approved
labels that were frozen, however the dataset changed since.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session

from labelwise.db.autolabel_models import PrelabelRow
from labelwise.db.models import AnnotationRow, AssetRow, ExportRow, LabelClassRow, SplitAssetRow
from labelwise.db.workflow_models import ProjectExportRow
from labelwise.errors import NotFoundError, UnsafePathError, ValidationError
from labelwise.io.formats import get_format

if TYPE_CHECKING:
    from labelwise.workspace import Workspace

#: Export formats whose files keep each image's dataset path (so labels map back to assets).
EXPORT_FORMATS = {"coco": "annotations.json", "csv": "labels.csv"}
CHUNK = 5000


@dataclass
class CategoryLabels:
    """Image-level labels: asset id -> set of class names, and what was left out."""

    by_asset: dict[int, set[str]]
    multi_label: bool
    source: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def trusted(a: type[AnnotationRow] = AnnotationRow) -> Any:
    """SQL condition: the annotation is a human label or an accepted/edited pre-label."""
    reviewed = exists(select(PrelabelRow.asset_id).where(
        PrelabelRow.run_id == a.prelabel_run_id, PrelabelRow.asset_id == a.asset_id,
        PrelabelRow.status.in_(("accepted", "edited"))))
    return or_(a.source != "model", reviewed)


def is_category(a: type[AnnotationRow] = AnnotationRow) -> Any:
    return and_(a.bbox_w.is_(None), a.polygons.is_(None), a.rle.is_(None),
                a.keypoints.is_(None))


def object_kind_filter(task: str, a: type[AnnotationRow] = AnnotationRow) -> Any:
    """SQL condition for the annotations a dense task learns from."""
    if task == "keypoints":
        return a.keypoints.is_not(None)
    return and_(a.bbox_w.is_not(None), a.keypoints.is_(None))


def labeled_assets(s: Session, dataset_id: int, task: str) -> set[int]:
    """Assets with a trusted label of the task's kind (these are not pre-labeled again)."""
    kind = is_category() if task in ("category", "multilabel") else object_kind_filter(task)
    q = select(AnnotationRow.asset_id).where(AnnotationRow.dataset_id == dataset_id, kind,
                                             trusted()).distinct()
    return set(s.scalars(q))


def split_asset_ids(s: Session, split_id: int) -> list[int]:
    return sorted(s.scalars(select(SplitAssetRow.asset_id).where(
        SplitAssetRow.split_id == split_id)))


def dataset_category_labels(
    s: Session, dataset_id: int, *, split_id: int | None, multi_label: bool, source: dict
) -> CategoryLabels:
    """(``multi_label``: the schema's flag, until ``resolve_multi`` fixes the model's kind.)"""
    """Trusted category labels of a dataset's images (or one split's)."""
    a = AnnotationRow
    q = (select(a.asset_id, LabelClassRow.name)
         .join(LabelClassRow, LabelClassRow.id == a.class_id)
         .where(a.dataset_id == dataset_id, is_category(), trusted()))
    if split_id is not None:
        q = q.where(a.asset_id.in_(select(SplitAssetRow.asset_id).where(
            SplitAssetRow.split_id == split_id)))
    by_asset: dict[int, set[str]] = {}
    for asset_id, name in s.execute(q):
        by_asset.setdefault(asset_id, set()).add(name)
    return CategoryLabels(by_asset, multi_label, source)


def export_category_labels(
    ws: Workspace, s: Session, dataset_id: int, dataset_name: str, export_id: int
) -> CategoryLabels:
    """The approved category labels frozen in project export ``export_id`` (its id in
    ``labelwise project exports``), mapped back to the dataset's assets by path."""
    link = s.get(ProjectExportRow, export_id)
    export = s.get(ExportRow, link.export_id) if link is not None else None
    if export is None:
        raise NotFoundError(f"there is no project export {export_id}; list a project's exports "
                            "with GET /api/projects/{id}/exports")
    if export.dataset_id != dataset_id:
        raise ValidationError(f"export {export_id} is of another dataset (id "
                              f"{export.dataset_id}), not of {dataset_name!r}; train on the "
                              "dataset it was made from")
    if not link.approved_only:
        raise ValidationError(f"export {export_id} holds every label, reviewed or not; train "
                              "on approved labels: export the project again with approved "
                              "labels only (`labelwise project export P coco DIR --approved-only`)")
    if export.format not in EXPORT_FORMATS:
        raise ValidationError(f"export {export_id} is in {export.format} format; models train "
                              f"from {' or '.join(EXPORT_FORMATS)} exports (they keep each "
                              "image's path): export the project again as coco")
    draft = _read_export(ws.store.get_bytes(export.storage_key), export.format,
                         export.options.get("filename") or EXPORT_FORMATS[export.format])
    paths = [r.path for r in draft.images]
    ids: dict[str, int] = {}
    for i in range(0, len(paths), CHUNK):
        ids.update(s.execute(select(AssetRow.path, AssetRow.id).where(
            AssetRow.dataset_id == dataset_id, AssetRow.path.in_(paths[i:i + CHUNK]))).all())
    by_asset: dict[int, set[str]] = {}
    missing = 0
    for record in draft.images:
        names = {a.label for a in record.annotations if a.is_category}
        if not names:
            continue
        if record.path not in ids:
            missing += 1
            continue
        by_asset.setdefault(ids[record.path], set()).update(names)
    labels = CategoryLabels(by_asset, draft.schema.multi_label,
                            {"export": export_id, "export_sha256": export.sha256})
    if missing:
        labels.warnings.append(f"{missing} labeled images of export {export_id} are no longer "
                               f"in dataset {dataset_name!r}; they were left out")
    return labels


def _read_export(data: bytes, fmt: str, filename: str):
    with tempfile.TemporaryDirectory(prefix="labelwise-export-") as tmp:
        root = Path(tmp)
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist():
                target = (root / info.filename).resolve()
                if not target.is_relative_to(root.resolve()):
                    raise UnsafePathError(f"export member {info.filename!r} points outside the "
                                          "export; the snapshot is damaged")
            zf.extractall(root)
        label_file = root / filename
        if not label_file.is_file():
            raise ValidationError(f"the export snapshot has no {filename}; export the project "
                                  "again")
        return get_format(fmt).read(label_file, images=root / "images")


def resolve_multi(labels: CategoryLabels, *, multi_label: bool) -> CategoryLabels:
    """Fix the kind of model; single-label: images with several categories are ambiguous
    and left out (with a warning)."""
    labels.multi_label = multi_label
    if multi_label:
        return labels
    several = [a for a, names in labels.by_asset.items() if len(names) > 1]
    for a in several:
        del labels.by_asset[a]
    if several:
        labels.warnings.append(
            f"{len(several)} images carry several categories in a single-label schema (e.g. "
            f"asset {min(several)}) and were left out; keep one category each or make the "
            "schema multi-label")
    return labels

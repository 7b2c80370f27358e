"""Which labels a model learns from: a dataset's trusted labels, or a frozen project export.

Trusted labels are human ones plus model pre-labels a reviewer accepted as they were: pending
pre-labels never train the next model, or it would learn its own guesses, and neither do
edited ones (the dataset still holds the model's label; the correction lives in the project,
and training from the project's export learns it). Training from an
export reads the export's own files (COCO or CSV), so the model learns exactly the approved
labels that were frozen, however the dataset changed since.
"""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session

from labelwise.core.annotations import Annotation, DatasetDraft
from labelwise.core.schema import Skeleton
from labelwise.db.autolabel_models import PrelabelRow
from labelwise.db.models import (
    AnnotationRow,
    AssetRow,
    DatasetRow,
    ExportRow,
    LabelClassRow,
    SplitAssetRow,
)
from labelwise.db.workflow_models import ProjectExportRow
from labelwise.errors import NotFoundError, UnsafePathError, ValidationError
from labelwise.io.formats import get_format
from labelwise.storage import image_key

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


@dataclass
class FrozenLabels:
    """Objects a boxes/keypoints model learns from instead of the dataset's annotations: a
    project export's, per asset id, in the image's original pixels (all ``source="human"``),
    the skeletons of its keypoint classes, and what was left out."""

    by_asset: dict[int, list[Annotation]]
    skeletons: dict[str, Skeleton]
    source: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    def objects(self, task: str) -> list[tuple[int, Annotation]]:
        """(asset id, object) pairs of a dense task's kind, as ``object_kind_filter`` picks
        them from the dataset."""
        return [(aid, a) for aid, objs in sorted(self.by_asset.items()) for a in objs
                if (a.keypoints is not None if task == "keypoints"
                    else a.bbox is not None and a.keypoints is None)]


def trusted(a: type[AnnotationRow] = AnnotationRow) -> Any:
    """SQL condition: the annotation is a human label or a pre-label accepted as it was
    (what models learn from)."""
    return _human_or_prelabel(a, ("accepted",))


def settled(a: type[AnnotationRow] = AnnotationRow) -> Any:
    """SQL condition: the annotation is a human label or a pre-label a person ruled on
    (accepted, or edited in a project): such images are not pre-labeled or proposed for
    labeling again, though an edited one does not train from the dataset."""
    return _human_or_prelabel(a, ("accepted", "edited"))


def _human_or_prelabel(a: type[AnnotationRow], statuses: tuple[str, ...]) -> Any:
    ruled = exists(select(PrelabelRow.asset_id).where(
        PrelabelRow.run_id == a.prelabel_run_id, PrelabelRow.asset_id == a.asset_id,
        PrelabelRow.status.in_(statuses)))
    return or_(a.source != "model", ruled)


def is_category(a: type[AnnotationRow] = AnnotationRow) -> Any:
    return and_(a.bbox_w.is_(None), a.polygons.is_(None), a.rle.is_(None),
                a.keypoints.is_(None))


def object_kind_filter(task: str, a: type[AnnotationRow] = AnnotationRow) -> Any:
    """SQL condition for the annotations a dense task learns from."""
    if task == "keypoints":
        return a.keypoints.is_not(None)
    return and_(a.bbox_w.is_not(None), a.keypoints.is_(None))


def labeled_assets(s: Session, dataset_id: int, task: str) -> set[int]:
    """Assets with a settled label of the task's kind (these are not pre-labeled again)."""
    kind = is_category() if task in ("category", "multilabel") else object_kind_filter(task)
    q = select(AnnotationRow.asset_id).where(AnnotationRow.dataset_id == dataset_id, kind,
                                             settled()).distinct()
    return set(s.scalars(q))


def split_asset_ids(s: Session, split_id: int) -> list[int]:
    return sorted(s.scalars(select(SplitAssetRow.asset_id).where(
        SplitAssetRow.split_id == split_id)))


def dataset_category_labels(
    s: Session, dataset_id: int, *, split_id: int | None, multi_label: bool, source: dict
) -> CategoryLabels:
    """Trusted category labels of a dataset's images (or one split's). ``multi_label``: the
    schema's flag, until ``resolve_multi`` fixes the model's kind."""
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


@dataclass
class ExportSnapshot:
    """A checked project export read back: its records, and the dataset asset of each image
    that is still there unchanged (``asset_of``: path -> asset id)."""

    export_id: int
    sha256: str
    format: str
    draft: DatasetDraft
    asset_of: dict[str, int]

    @property
    def source(self) -> dict[str, Any]:
        return {"export": self.export_id, "export_sha256": self.sha256}


def open_export(
    ws: Workspace, s: Session, dataset_id: int, dataset_name: str, export_id: int
) -> ExportSnapshot:
    """Project export ``export_id`` (its id in ``labelwise project exports``), checked to be an
    approved-only export of this dataset in a format that keeps image paths, and read back."""
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
    blob = ws.store.get_bytes(export.storage_key)
    draft = _read_export(blob, export.format,
                         export.options.get("filename") or EXPORT_FORMATS[export.format])
    return ExportSnapshot(export_id, export.sha256, export.format, draft,
                          _unchanged_assets(s, dataset_id, draft, _manifest(blob)))


def _unchanged_assets(s: Session, dataset_id: int, draft: DatasetDraft,
                      manifest: dict[str, str]) -> dict[str, int]:
    """Path -> asset id for the export's images still in the dataset as the same image (the
    manifest's blob key; without one, the same size), so frozen labels meet their pixels."""
    paths = [r.path for r in draft.images]
    size = {r.path: (r.width, r.height) for r in draft.images}
    ids: dict[str, int] = {}
    for i in range(0, len(paths), CHUNK):
        q = select(AssetRow.path, AssetRow.id, AssetRow.content_hash, AssetRow.format,
                   AssetRow.width, AssetRow.height).where(
            AssetRow.dataset_id == dataset_id, AssetRow.path.in_(paths[i:i + CHUNK]))
        for path, aid, chash, fmt, w, h in s.execute(q):
            frozen = manifest.get(path)
            if frozen == image_key(chash, fmt) or (frozen is None and size[path] == (w, h)):
                ids[path] = aid
    return ids


def _manifest(blob: bytes) -> dict[str, str]:
    """The export's path -> image blob key manifest ({} for a snapshot without one)."""
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        if "manifest.json" not in zf.namelist():
            return {}
        data = json.loads(zf.read("manifest.json"))
    return data if isinstance(data, dict) else {}


def export_category_labels(
    ws: Workspace, s: Session, dataset_id: int, dataset_name: str, export_id: int
) -> CategoryLabels:
    """The approved category labels frozen in project export ``export_id``, mapped back to
    the dataset's assets by path."""
    snap = open_export(ws, s, dataset_id, dataset_name, export_id)
    by_asset: dict[int, set[str]] = {}
    missing = 0
    for record in snap.draft.images:
        names = {a.label for a in record.annotations if a.is_category}
        if not names:
            continue
        if record.path not in snap.asset_of:
            missing += 1
            continue
        by_asset.setdefault(snap.asset_of[record.path], set()).update(names)
    labels = CategoryLabels(by_asset, snap.draft.schema.multi_label, snap.source)
    if missing:
        labels.warnings.append(_gone(missing, export_id, dataset_name))
    return labels


def _gone(missing: int, export_id: int, dataset_name: str) -> str:
    return (f"{missing} labeled images of export {export_id} are no longer in dataset "
            f"{dataset_name!r} (or their image was replaced); they were left out")


def export_object_labels(
    ws: Workspace, s: Session, dataset_id: int, dataset_name: str, export_id: int
) -> FrozenLabels:
    """The approved objects (boxes, polygons, keypoints) frozen in project export
    ``export_id``, per dataset asset, in the image's original pixels as the dataset's own
    annotations are. Every object counts as a person's label: the export holds approved tasks
    only. Refuses an export naming an object class the dataset's schema lacks (a model
    of it could not pre-label the dataset)."""
    snap = open_export(ws, s, dataset_id, dataset_name, export_id)
    if snap.format != "coco":
        raise ValidationError(f"export {export_id} is in {snap.format} format, which keeps "
                              "image-level categories only; boxes and keypoints train from a "
                              "coco export: export the project again as coco")
    classes = {c.name: c for c in s.scalars(select(LabelClassRow).where(
        LabelClassRow.schema_id == s.get(DatasetRow, dataset_id).schema_id,
        LabelClassRow.kind == "object"))}
    by_asset: dict[int, list[Annotation]] = {}
    missing = 0
    for record in snap.draft.images:
        objects = [replace(a, source="human", confidence=None)
                   for a in record.annotations if not a.is_category]
        if not objects:
            continue
        if record.path not in snap.asset_of:
            missing += 1
            continue
        by_asset.setdefault(snap.asset_of[record.path], []).extend(objects)
    unknown = sorted({a.label for objs in by_asset.values() for a in objs} - set(classes))
    if unknown:
        raise ValidationError(
            f"export {export_id} labels objects of class(es) {unknown} that dataset "
            f"{dataset_name!r} has no object class for, so a model of them could not pre-label "
            f"it; add them to the dataset's schema (`labelwise schema add {dataset_name} NAME "
            "--tool bbox`) or remove them from the project and export again")
    labels = FrozenLabels(by_asset, _export_skeletons(snap, classes), snap.source)
    if missing:
        labels.warnings.append(_gone(missing, export_id, dataset_name))
    return labels


def _export_skeletons(snap: ExportSnapshot, classes: dict[str, LabelClassRow]
                      ) -> dict[str, Skeleton]:
    """Skeletons of the export's keypoint classes: the dataset's (it has the left/right pairs
    a COCO file lacks) when its points are the same, the export's when the dataset has none;
    refuses points that differ, as the frozen coordinates follow the export's order."""
    out: dict[str, Skeleton] = {}
    for cls in snap.draft.schema.classes:
        if cls.skeleton is None or cls.name not in classes:
            continue
        row = classes[cls.name]
        mine = Skeleton.from_dict(row.skeleton) if row.skeleton else None
        if mine is None:
            out[cls.name] = cls.skeleton
        elif list(mine.keypoints) == list(cls.skeleton.keypoints):
            out[cls.name] = mine
        else:
            raise ValidationError(
                f"class {cls.name!r} has points {list(cls.skeleton.keypoints)} in export "
                f"{snap.export_id} but {list(mine.keypoints)} in the dataset's schema; make the "
                "project's skeleton the dataset's and export again")
    return out


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

"""Read a dataset (or split) back out of the workspace and write it in a format.

Every export is also kept as a frozen snapshot: the annotation files plus a manifest of the
images' content hashes, zipped into the blob store and recorded in ``exports``.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import select

from labelwise.core.annotations import Annotation, DatasetDraft, ImageRecord
from labelwise.core.schema import LabelClass, LabelSchema, Skeleton
from labelwise.db import queries
from labelwise.db.models import (
    AnnotationRow,
    AssetRow,
    AssetTagRow,
    ExportRow,
    LabelClassRow,
    SplitAssetRow,
)
from labelwise.io.formats import FormatSpec, WriteResult
from labelwise.io.importer import Progress
from labelwise.storage import image_key

if TYPE_CHECKING:
    from labelwise.workspace import Workspace


@dataclass
class ExportReport:
    dataset: str
    format: str
    dest: str
    export_id: int
    num_images: int
    num_annotations: int
    files: list[str] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def load_draft(ws: Workspace, dataset: str, *, split: str | None = None) -> DatasetDraft:
    """The dataset (or split) as a ``DatasetDraft``: schema, images, annotations, tags."""
    return _load(ws, dataset, split)[0]


def _load(ws: Workspace, dataset: str, split: str | None) -> tuple[DatasetDraft, list[str]]:
    """The draft plus each image's blob key, in the order of ``draft.images``."""
    blobs: list[str] = []
    with ws.session() as s:
        ds = queries.get_dataset(s, dataset)
        split_row = queries.get_split(s, ds, split) if split else None
        class_rows = list(ds.schema.classes)
        schema = LabelSchema(
            classes=[_class(c) for c in class_rows], multi_label=ds.schema.multi_label
        )
        cls_by_id = {c.id: (c.name, c.kind) for c in class_rows}
        conn = s.connection()
        q = select(
            AssetRow.id, AssetRow.path, AssetRow.width, AssetRow.height, AssetRow.meta,
            AssetRow.external_id, AssetRow.content_hash, AssetRow.format,
        ).where(AssetRow.dataset_id == ds.id)
        if split_row is not None:
            q = q.join(SplitAssetRow, SplitAssetRow.asset_id == AssetRow.id).where(
                SplitAssetRow.split_id == split_row.id
            )
        records: dict[int, ImageRecord] = {}
        for aid, path, w, h, meta, ext, chash, fmt in conn.execute(q.order_by(AssetRow.id)):
            records[aid] = ImageRecord(
                path=path, width=w, height=h, metadata=meta or {}, external_id=ext
            )
            blobs.append(image_key(chash, fmt))
        tq = select(AssetTagRow.asset_id, AssetTagRow.tag).where(
            AssetTagRow.dataset_id == ds.id
        ).order_by(AssetTagRow.asset_id, AssetTagRow.tag)
        for aid, tag in conn.execute(tq):
            if aid in records:
                records[aid].tags.append(tag)
        a = AnnotationRow
        aq = select(
            a.asset_id, a.class_id, a.bbox_x, a.bbox_y, a.bbox_w, a.bbox_h, a.polygons,
            a.rle, a.keypoints, a.attributes, a.iscrowd, a.area, a.source, a.confidence,
        ).where(a.dataset_id == ds.id).order_by(a.id)
        for row in conn.execute(aq).yield_per(20_000):
            rec = records.get(row[0])
            if rec is None:
                continue
            name, _kind = cls_by_id[row[1]]
            bbox = None if row[2] is None else (row[2], row[3], row[4], row[5])
            rec.annotations.append(
                Annotation(
                    label=name, bbox=bbox, polygons=row[6], rle=row[7], keypoints=row[8],
                    attributes=row[9], iscrowd=bool(row[10]), area=row[11], source=row[12],
                    confidence=row[13],
                )
            )
    draft = DatasetDraft(
        schema=schema, images=list(records.values()), source=f"dataset {ds.name}",
        info=dict(ds.info or {}),
    )
    return draft, blobs


def _class(row: LabelClassRow) -> LabelClass:
    return LabelClass(
        name=row.name, kind=row.kind, tool=row.tool, color=row.color,
        skeleton=Skeleton.from_dict(row.skeleton) if row.skeleton else None,
        supercategory=row.supercategory, external_id=row.external_id,
    )


def export_draft(
    ws: Workspace,
    dataset: str,
    spec: FormatSpec,
    dest: Path,
    *,
    split: str | None,
    copy_images: bool,
    progress: Progress | None,
    options: dict[str, Any],
) -> ExportReport:
    t0 = time.perf_counter()
    notify = progress or (lambda *_: None)
    draft, keys = _load(ws, dataset, split)
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    manifest = {r.path: k for r, k in zip(draft.images, keys, strict=True)}
    try:
        result: WriteResult = spec.write(draft, dest, **options)
    except BaseException:
        if created and not any(dest.iterdir()):
            dest.rmdir()  # a refused export leaves no empty folder behind
        raise
    if copy_images:
        # Writers may have moved records (class folders put each image under its class).
        _copy_images(ws, draft, keys, dest / spec.images_dir(options), notify)
    export_id = _snapshot(ws, dataset, split, spec.name, dest, result, manifest, options)
    return ExportReport(
        dataset=dataset, format=spec.name, dest=str(dest), export_id=export_id,
        num_images=result.num_images, num_annotations=result.num_annotations,
        files=[str(p) for p in result.files], skipped=dict(result.skipped),
        seconds=round(time.perf_counter() - t0, 3),
    )


def _copy_images(
    ws: Workspace, draft: DatasetDraft, keys: list[str], root: Path, notify: Progress
) -> None:
    """Put each image at ``root / path``: a hard link when the store is local, else a copy."""
    total = len(draft.images)
    made: set[Path] = set()
    for i, (rec, key) in enumerate(zip(draft.images, keys, strict=True), 1):
        target = root / rec.path
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        if target.exists():
            target.unlink()
        local = ws.store.local_path(key)
        if local is not None:
            try:
                os.link(local, target)
            except OSError:
                shutil.copyfile(local, target)
        else:
            target.write_bytes(ws.store.get_bytes(key))
        if i % 1000 == 0 or i == total:
            notify("images", i, total)


def _snapshot(
    ws: Workspace, dataset: str, split: str | None, fmt: str, dest: Path, result: WriteResult,
    manifest: dict[str, str], options: dict[str, Any],
) -> int:
    """Zip the written annotation files and the image manifest into the blob store."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for path in result.files:
            zf.write(path, arcname=str(Path(path).relative_to(dest)))
        zf.writestr("manifest.json", orjson.dumps(manifest))
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    key = f"exports/{digest}.zip"
    if not ws.store.exists(key):
        ws.store.put_bytes(key, data)
    with ws.session() as s, s.begin():
        ds = queries.get_dataset(s, dataset)
        split_row = queries.get_split(s, ds, split) if split else None
        row = ExportRow(
            dataset_id=ds.id, split_id=split_row.id if split_row else None,
            name=f"{ds.name}{'-' + split if split else ''}-{fmt}",
            format=fmt, storage_key=key, sha256=digest, num_assets=result.num_images,
            num_annotations=result.num_annotations,
            options={k: v for k, v in options.items() if isinstance(v, (str, int, float, bool))},
        )
        s.add(row)
        s.flush()
        return row.id

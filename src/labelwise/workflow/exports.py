"""Frozen exports of a project's labels, in any writable format, approved only or all.

An export writes the project's labels (its own schema, its task labels) with the format's
writer, zips the written files with a manifest of the images' content hashes into the blob
store, and records it in ``exports`` + ``project_exports``: the snapshot stays downloadable
however the labels change afterwards.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import select

from labelwise.core.annotations import Annotation, DatasetDraft, ImageRecord
from labelwise.core.schema import LabelSchema
from labelwise.db.models import AssetRow, ExportRow, LabelSchemaRow
from labelwise.db.workflow_models import (
    ProjectExportRow,
    ProjectRow,
    TaskAnnotationRow,
    TaskRow,
)
from labelwise.errors import NotFoundError, UnsafePathError, ValidationError
from labelwise.io.exporter import _class, _copy_images
from labelwise.io.formats import FormatSpec, get_format
from labelwise.storage import image_key
from labelwise.workflow.projects import project_classes

if TYPE_CHECKING:
    from labelwise.workspace import Workspace


@dataclass
class ProjectExport:
    id: int
    project_id: int
    export_id: int
    format: str
    approved_only: bool
    num_assets: int
    num_annotations: int
    sha256: str
    storage_key: str
    created_at: Any = None
    dest: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def project_draft(
    ws: Workspace, project_id: int, *, approved_only: bool
) -> tuple[DatasetDraft, list[str]]:
    """The project's labels as a draft (plus each image's blob key, in image order)."""
    with ws.session() as s:
        project = s.get(ProjectRow, project_id)
        classes = project_classes(s, project)
        schema_row = s.get(LabelSchemaRow, project.schema_id)
        schema = LabelSchema(classes=[_class(c) for c in classes],
                             multi_label=schema_row.multi_label)
        names = {c.id: c.name for c in classes}
        q = (select(TaskRow.id, AssetRow.path, AssetRow.width, AssetRow.height, AssetRow.meta,
                    AssetRow.external_id, AssetRow.content_hash, AssetRow.format)
             .join(AssetRow, AssetRow.id == TaskRow.asset_id)
             .where(TaskRow.project_id == project_id).order_by(TaskRow.asset_id))
        if approved_only:
            q = q.where(TaskRow.status == "approved")
        records: dict[int, ImageRecord] = {}
        keys: list[str] = []
        for tid, path, w, h, meta, ext, chash, fmt in s.execute(q):
            records[tid] = ImageRecord(path=path, width=w, height=h, metadata=meta or {},
                                       external_id=ext)
            keys.append(image_key(chash, fmt))
        ta = TaskAnnotationRow
        lq = (select(ta).where(ta.project_id == project_id, ta.deleted.is_(False))
              .order_by(ta.task_id, ta.id))
        for row in s.scalars(lq).yield_per(10_000):
            rec = records.get(row.task_id)
            if rec is None:
                continue
            bbox = None if row.bbox_x is None else (row.bbox_x, row.bbox_y, row.bbox_w,
                                                    row.bbox_h)
            rec.annotations.append(Annotation(
                label=names[row.class_id], bbox=bbox, polygons=row.polygons, rle=row.rle,
                keypoints=row.keypoints, attributes=row.attributes, iscrowd=row.iscrowd,
                source=row.source, confidence=row.confidence,
            ))
        draft = DatasetDraft(schema=schema, images=list(records.values()),
                             source=f"project {project.name}")
    return draft, keys


def export_project(
    ws: Workspace,
    project_id: int,
    fmt: str,
    *,
    dest: str | Path | None = None,
    approved_only: bool = True,
    copy_images: bool = False,
    created_by: int | None = None,
    options: dict[str, Any] | None = None,
) -> ProjectExport:
    """Write and snapshot the project's labels; ``dest`` None keeps only the snapshot."""
    spec = get_format(fmt, writable=True)
    options = dict(options or {})
    check_options(spec, options)
    draft, keys = project_draft(ws, project_id, approved_only=approved_only)
    manifest = {r.path: k for r, k in zip(draft.images, keys, strict=True)}
    with tempfile.TemporaryDirectory(prefix="labelwise-export-") as tmp:
        out = Path(dest) if dest is not None else Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        result = spec.write(draft, out, **options)
        if copy_images and dest is not None:
            _copy_images(ws, draft, keys, out / spec.images_dir(options), lambda *_: None)
        data = _zip(out, result.files, manifest)
    digest = hashlib.sha256(data).hexdigest()
    key = f"exports/{digest}.zip"
    if not ws.store.exists(key):
        ws.store.put_bytes(key, data)
    with ws.session() as s, s.begin():
        project = s.get(ProjectRow, project_id)
        plain = {k: v for k, v in options.items() if isinstance(v, str | int | float | bool)}
        export = ExportRow(
            dataset_id=project.dataset_id, split_id=project.split_id,
            name=f"project-{project.name}-{spec.name}", format=spec.name, storage_key=key,
            sha256=digest, num_assets=result.num_images,
            num_annotations=result.num_annotations,
            options={**plain, "project_id": project.id, "approved_only": approved_only},
        )
        s.add(export)
        s.flush()
        link = ProjectExportRow(project_id=project.id, export_id=export.id,
                                approved_only=approved_only, created_by=created_by)
        s.add(link)
        s.flush()
        return _public(link, export, dest=str(dest) if dest is not None else None)


#: Writer options naming a file or folder: a plain name, never a path out of the export.
_NAME_OPTIONS = ("filename", "split_name")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_options(spec: FormatSpec, options: dict[str, Any]) -> None:
    """Options must be keyword options of the format's writer; names must be plain names."""
    params = inspect.signature(spec.write).parameters
    accepted = [n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValidationError(
            f"format {spec.name!r} has no option {', '.join(map(repr, unknown))}; its options: "
            f"{', '.join(accepted) or 'none'}"
        )
    for key in _NAME_OPTIONS:
        value = options.get(key)
        if value is not None and not (isinstance(value, str) and _PLAIN_NAME.fullmatch(value)):
            raise UnsafePathError(
                f"option {key}={value!r} must be a plain file or folder name (letters, digits, "
                "'.', '_', '-'), not a path"
            )


#: Every entry's time and mode: the zip holds no clock, so the same labels always make the
#: same bytes, the same sha256 and one stored blob however often they are exported.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_ZIP_MODE = 0o644 << 16


def _zip(root: Path, files: list[Path], manifest: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for path in files:
            zf.writestr(_entry(Path(path).relative_to(root)), Path(path).read_bytes(),
                        compresslevel=1)
        zf.writestr(_entry("manifest.json"), orjson.dumps(manifest), compresslevel=1)
    return buf.getvalue()


def _entry(name: str | Path) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(str(name), date_time=_ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = _ZIP_MODE
    return info


def _public(link: ProjectExportRow, export: ExportRow, *, dest: str | None = None
            ) -> ProjectExport:
    return ProjectExport(
        id=link.id, project_id=link.project_id, export_id=export.id, format=export.format,
        approved_only=link.approved_only, num_assets=export.num_assets,
        num_annotations=export.num_annotations, sha256=export.sha256,
        storage_key=export.storage_key, created_at=link.created_at, dest=dest,
    )


def list_exports(ws: Workspace, project_id: int) -> list[ProjectExport]:
    with ws.session() as s:
        rows = s.execute(
            select(ProjectExportRow, ExportRow)
            .join(ExportRow, ExportRow.id == ProjectExportRow.export_id)
            .where(ProjectExportRow.project_id == project_id)
            .order_by(ProjectExportRow.id)
        ).all()
        return [_public(link, export) for link, export in rows]


def get_export(ws: Workspace, project_id: int, export_id: int) -> ProjectExport:
    """A project's export by its id (the ``id`` of ``list_exports``)."""
    with ws.session() as s:
        link = s.get(ProjectExportRow, export_id)
        if link is None or link.project_id != project_id:
            raise NotFoundError(f"project {project_id} has no export {export_id}; list them "
                                f"with GET /api/projects/{project_id}/exports")
        return _public(link, s.get(ExportRow, link.export_id))


def export_bytes(ws: Workspace, export: ProjectExport) -> bytes:
    """The snapshot zip: the written label files plus manifest.json."""
    return ws.store.get_bytes(export.storage_key)

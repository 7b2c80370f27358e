"""Bring a ``DatasetDraft`` into a workspace: check everything first, then write in one go.

Phase 1 reads and checks every image (paths stay inside the images folder, files decode, no
bombs, declared sizes match) and every annotation (known class, geometry inside the image,
keypoint count matches the skeleton). Any problem stops the import with the full list, and
nothing is written. Phase 2 writes rows in one database transaction; image bytes go to the
blob store first and are removed again if that transaction fails. Re-importing the same
files adds nothing: assets are matched by path and annotations by a content fingerprint.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import func, select

from labelwise.core.annotations import Annotation, DatasetDraft, ImageRecord
from labelwise.core.geometry import (
    bbox_problem,
    clip_bbox,
    keypoints_problem,
    polygon_problem,
    rle_problem,
)

from labelwise.db.bulk import bulk_insert
from labelwise.db.schemas import class_row
from labelwise.db.models import (
    AnnotationRow,
    AssetRow,
    AssetTagRow,
    DatasetRow,
    ImportRow,
    LabelClassRow,
    LabelSchemaRow,
    SplitAssetRow,
    SplitRow,
)
from labelwise.errors import ConflictError, ImportValidationError, LabelwiseError
from labelwise.io.fingerprint import annotation_fingerprint
from labelwise.io.images import ImageInfo, probe_bytes, read_image_file
from labelwise.io.paths import PathResolver, normalize_relpath
from labelwise.storage import BlobStore, image_key

if TYPE_CHECKING:
    from labelwise.workspace import Workspace

#: progress(stage, done, total): called as work advances; the CLI draws bars from it.
Progress = Callable[[str, int, int], None]

_MAX_PROBLEMS = 1000  # stop collecting after this many; the message says so


@dataclass
class ImportReport:
    """What one import did."""

    dataset: str
    dataset_id: int
    format: str
    source: str
    images: int = 0
    assets_added: int = 0
    assets_existing: int = 0
    annotations_added: int = 0
    annotations_existing: int = 0
    classes_added: list[str] = field(default_factory=list)
    splits: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(slots=True)
class _Checked:
    record: ImageRecord
    path: str  # normalized relative path
    info: ImageInfo


def import_draft(
    ws: Workspace,
    draft: DatasetDraft,
    *,
    dataset: str,
    fmt: str,
    verify_images: bool | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import ``draft`` into dataset ``dataset`` (created if missing). All or nothing."""
    t0 = time.perf_counter()
    notify = progress or (lambda *_: None)
    verify = ws.settings.verify_images if verify_images is None else verify_images
    if not dataset or not dataset.strip():
        raise LabelwiseError("a dataset name is required: pass --dataset NAME")
    if draft.images_root is None:
        raise LabelwiseError(f"{draft.source}: no images folder given; pass --images DIR")

    _check_texts(draft, dataset)
    written: list[str] = []
    try:
        checked = _check_images(ws, draft, verify=verify, written=written, notify=notify)
        with ws.session() as session, session.begin():
            existing_ds = session.scalar(select(DatasetRow).where(DatasetRow.name == dataset))
            schema_row, classes = _merge_schema(session, existing_ds, draft, dataset)
            _check_annotations(draft, checked, classes)
            report = _write(
                session, existing_ds, schema_row, dataset, draft, checked, classes, fmt, notify
            )
    except BaseException:
        for key in written:
            try:
                ws.store.delete(key)
            except Exception:  # noqa: BLE001 - cleanup must not hide the real error
                pass
        raise
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


_MAX_NAME = 200  # the width of name, tag and split columns


def _check_texts(draft: DatasetDraft, dataset: str) -> None:
    """Names, tags and splits must fit their columns and hold no NUL (PostgreSQL refuses it)."""
    src = draft.source
    problems: list[str] = []

    def check(value: str, what: str) -> None:
        if len(value) > _MAX_NAME:
            problems.append(f"{src}: {what} is {len(value)} characters; the limit is {_MAX_NAME}")
        elif "\x00" in value:
            problems.append(f"{src}: {what} contains a NUL character; remove it")

    check(dataset, f"dataset name {dataset[:40]!r}")
    for cls in draft.schema.classes:
        check(cls.name, f"class name {cls.name[:40]!r}")
    for rec in draft.images:
        for tag in rec.tags:
            check(tag, f"{rec.origin or rec.path}: tag {tag[:40]!r}")
        if rec.split:
            check(rec.split, f"{rec.origin or rec.path}: split {rec.split[:40]!r}")
        if len(problems) >= _MAX_PROBLEMS:
            break
    if problems:
        raise ImportValidationError(
            f"{src}: {len(problems)} problem(s) with names; nothing was imported",
            problems=problems,
        )


def _check_images(
    ws: Workspace,
    draft: DatasetDraft,
    *,
    verify: bool,
    written: list[str],
    notify: Progress,
) -> list[_Checked]:
    """Resolve, read, hash and decode every image; store new bytes. Raise with all problems."""
    root = Path(draft.images_root)
    src = draft.source or str(root)
    problems: list[str] = []
    seen: dict[str, str] = {}
    jobs: list[tuple[ImageRecord, str, Path]] = []
    resolver = PathResolver(root)
    for rec in draft.images:
        where = rec.origin or rec.path
        try:
            rel = normalize_relpath(rec.path)
            real = resolver.resolve(rel)
        except LabelwiseError as err:
            problems.append(f"{src}: {where}: {err}")
            continue
        if rel in seen:
            problems.append(
                f"{src}: {where}: file name {rel!r} is listed twice (also at {seen[rel]}); "
                "each image may appear once: merge the two entries or rename one file"
            )
            continue
        seen[rel] = where
        jobs.append((rec, rel, real))
    if problems:
        raise ImportValidationError(
            f"{src}: {len(problems)} problem(s) with image paths; nothing was imported",
            problems=problems,
        )

    # Chunks, not one future per file: a future costs more than probing a small image.
    chunks = [jobs[i : i + 256] for i in range(0, len(jobs), 256)]
    settings = ws.settings
    args = (settings.max_image_pixels, verify)
    store = ws.store
    # Threads: reading, hashing and writing files release the GIL. (Worker processes were
    # measured too and were no faster: per-file cost here is the file system's.)
    pool = ThreadPoolExecutor(max_workers=settings.import_workers)
    results = pool.map(
        lambda c: [_check_one(rel, real, store, *args) for _rec, rel, real in c], chunks
    )
    out: list[_Checked] = []
    total = len(jobs)
    done = 0
    with pool:
        for chunk, chunk_results in zip(chunks, results, strict=True):
            for (rec, rel, _real), (info, problem, new_key) in zip(
                chunk, chunk_results, strict=True
            ):
                if new_key is not None:
                    written.append(new_key)
                if problem is not None:
                    if len(problems) < _MAX_PROBLEMS:
                        problems.append(f"{src}: {rec.origin + ': ' if rec.origin else ''}{problem}")
                elif info is not None:
                    if (rec.width and rec.width != info.width) or (
                        rec.height and rec.height != info.height
                    ):
                        problems.append(
                            f"{src}: {rec.origin or rel}: declared size {rec.width}x{rec.height} "
                            f"but the file {rel} is {info.width}x{info.height}; fix width/height "
                            "in the annotation file (or the image was rotated or resized after "
                            "labeling)"
                        )
                    out.append(_Checked(rec, rel, info))
            done += len(chunk)
            notify("images", done, total)
    if problems:
        raise ImportValidationError(
            f"{src}: {len(problems)} problem(s) with image files; nothing was imported",
            problems=problems,
        )
    return out


def _check_one(
    rel: str, real: Path | str, store: BlobStore, max_pixels: int, verify: bool
) -> tuple[ImageInfo | None, str | None, str | None]:
    """Read, check and store one image: (info, problem, key of a newly written blob)."""
    try:
        data = read_image_file(real, name=rel)
        info = probe_bytes(data, name=rel, max_pixels=max_pixels, verify=verify)
    except LabelwiseError as err:
        return None, str(err), None
    key = image_key(info.content_hash, info.format)
    if store.exists(key):
        return info, None, None
    store.put_bytes(key, data)
    return info, None, key


def _merge_schema(
    session, existing_ds: DatasetRow | None, draft: DatasetDraft, dataset: str
) -> tuple[LabelSchemaRow, dict[tuple[str, str], LabelClassRow]]:
    """Classes by (kind, name): the dataset's, plus the draft's new ones (added, not yet flushed)."""
    if existing_ds is None:
        schema_row = LabelSchemaRow(name=dataset, multi_label=draft.schema.multi_label)
        session.add(schema_row)
        rows: list[LabelClassRow] = []
    else:
        schema_row = existing_ds.schema
        rows = list(schema_row.classes)
        if draft.schema.multi_label and not schema_row.multi_label:
            schema_row.multi_label = True
    by_key = {(r.kind, r.name): r for r in rows}
    problems = []
    for cls in draft.schema.classes:
        key = (cls.kind, cls.name)
        row = by_key.get(key)
        if row is None:
            row = class_row(cls, position=len(by_key))
            row.schema = schema_row
            session.add(row)
            by_key[key] = row
            row._new = True  # type: ignore[attr-defined]
        elif cls.skeleton is not None and row.skeleton is not None:
            if len(row.skeleton["keypoints"]) != len(cls.skeleton):
                problems.append(
                    f"class {cls.name!r} has a {len(row.skeleton['keypoints'])}-point skeleton in "
                    f"dataset {dataset!r} but {len(cls.skeleton)} points in {draft.source}; "
                    "import into a new dataset or fix the skeleton"
                )
    if problems:
        raise ImportValidationError(
            f"{draft.source}: the schema does not fit dataset {dataset!r}; nothing was imported",
            problems=problems,
        )
    return schema_row, by_key


def _check_annotations(
    draft: DatasetDraft, checked: list[_Checked], classes: dict[tuple[str, str], LabelClassRow]
) -> None:
    """Validate every annotation against its image's real size and its class; clip boxes."""
    src = draft.source
    problems: list[str] = []
    known = sorted({name for _, name in classes})
    for item in checked:
        w, h = item.info.width, item.info.height
        for i, ann in enumerate(item.record.annotations):
            kind = "category" if ann.is_category else "object"
            where = f"{src}: {item.record.origin or item.path}: annotation {i}"
            cls = classes.get((kind, ann.label))
            if cls is None:
                if len(problems) < _MAX_PROBLEMS:
                    problems.append(
                        f"{where}: unknown {kind} class {ann.label!r} "
                        f"(known: {', '.join(known[:20]) or 'none'}); add it to the schema "
                        "or fix the label"
                    )
                continue
            problem = None
            # Shapes first: a reader may have derived the box from them, and the user should
            # hear about the points they wrote, not a box they did not.
            if ann.polygons is not None:
                if not ann.polygons:
                    problem = "segmentation has no polygon"
                for ring in ann.polygons:
                    problem = problem or polygon_problem(ring, w, h)
            if problem is None and ann.rle is not None:
                problem = rle_problem(ann.rle, w, h)
            if problem is None and ann.keypoints is not None:
                if cls.skeleton is None:
                    problem = f"class {ann.label!r} has no skeleton, so it cannot carry keypoints"
                else:
                    problem = keypoints_problem(ann.keypoints, len(cls.skeleton["keypoints"]), w, h)
            if problem is None and ann.bbox is not None:
                problem = bbox_problem(ann.bbox, w, h)
                if problem is None:
                    ann.bbox = clip_bbox(ann.bbox, w, h)
            if problem is None and ann.confidence is not None and not 0 <= ann.confidence <= 1:
                problem = f"confidence {ann.confidence} must be between 0 and 1"
            if problem is not None and len(problems) < _MAX_PROBLEMS:
                problems.append(f"{where}: {problem}")
    if problems:
        raise ImportValidationError(
            f"{src}: {len(problems)} problem(s) with annotations; nothing was imported",
            problems=problems,
        )


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _write(
    session,
    existing_ds: DatasetRow | None,
    schema_row: LabelSchemaRow,
    dataset: str,
    draft: DatasetDraft,
    checked: list[_Checked],
    classes: dict[tuple[str, str], LabelClassRow],
    fmt: str,
    notify: Progress,
) -> ImportReport:
    if existing_ds is None:
        ds = DatasetRow(name=dataset, description="", schema=schema_row, info=draft.info or {})
        session.add(ds)
    else:
        ds = existing_ds
    new_classes = [r.name for r in classes.values() if getattr(r, "_new", False)]
    session.flush()
    conn = session.connection()
    report = ImportReport(dataset=dataset, dataset_id=ds.id, format=fmt, source=draft.source)
    report.images = len(checked)
    report.classes_added = new_classes

    # Assets: match by path; a path whose bytes changed is a conflict, never a silent overwrite.
    paths = [c.path for c in checked] if existing_ds is not None else []
    existing: dict[str, tuple[int, str]] = {}
    for chunk in _chunks(paths, 5000):
        for aid, p, h in conn.execute(
            select(AssetRow.id, AssetRow.path, AssetRow.content_hash).where(
                AssetRow.dataset_id == ds.id, AssetRow.path.in_(chunk)
            )
        ):
            existing[p] = (aid, h)
    conflicts = [
        f"{c.path}: already in dataset {dataset!r} with different content"
        for c in checked
        if c.path in existing and existing[c.path][1] != c.info.content_hash
    ]
    if conflicts:
        raise ConflictError(
            f"{draft.source}: {len(conflicts)} image(s) changed since they were imported; "
            "nothing was imported. Import them into another dataset or under new file names",
            problems=conflicts,
        )
    new_items = [c for c in checked if c.path not in existing]
    report.assets_existing = len(checked) - len(new_items)
    last_id = conn.execute(select(func.max(AssetRow.id))).scalar() or 0
    report.assets_added = bulk_insert(
        conn,
        "assets",
        ("dataset_id", "path", "content_hash", "width", "height", "format", "size_bytes",
         "metadata", "external_id"),
        (
            (ds.id, c.path, c.info.content_hash, c.info.width, c.info.height, c.info.format,
             c.info.size_bytes, _json(c.record.metadata or {}),
             None if c.record.external_id is None else str(c.record.external_id))
            for c in new_items
        ),
    )
    asset_ids: dict[str, int] = {p: v[0] for p, v in existing.items()}
    if new_items:
        # Ids only grow, so this import's rows are the dataset's rows above the old maximum
        # (one range scan instead of a lookup per path).
        new_paths = {c.path for c in new_items}
        for aid, p in conn.execute(
            select(AssetRow.id, AssetRow.path).where(
                AssetRow.dataset_id == ds.id, AssetRow.id > last_id
            )
        ):
            if p in new_paths:
                asset_ids[p] = aid
    notify("assets", len(checked), len(checked))

    # Tags and splits: add what is missing.
    old_ids = [v[0] for v in existing.values()]
    have_tags: set[tuple[int, str]] = set()
    for chunk in _chunks(old_ids, 5000):
        have_tags.update(
            conn.execute(
                select(AssetTagRow.asset_id, AssetTagRow.tag).where(AssetTagRow.asset_id.in_(chunk))
            )
        )
    tag_rows = {
        (asset_ids[c.path], t)
        for c in checked
        for t in c.record.tags
        if (asset_ids[c.path], t) not in have_tags
    }
    bulk_insert(
        conn, "asset_tags", ("asset_id", "tag", "dataset_id"),
        ((aid, t, ds.id) for aid, t in sorted(tag_rows)),
    )
    by_split: dict[str, list[int]] = defaultdict(list)
    for c in checked:
        if c.record.split:
            by_split[c.record.split].append(asset_ids[c.path])
    for name, ids in by_split.items():
        split = session.scalar(
            select(SplitRow).where(SplitRow.dataset_id == ds.id, SplitRow.name == name)
        )
        if split is None:
            split = SplitRow(dataset_id=ds.id, name=name, description=f"from {fmt} import")
            session.add(split)
            session.flush()
            members: set[int] = set()
        else:
            members = set()
            for chunk in _chunks(ids, 5000):
                members.update(
                    conn.execute(
                        select(SplitAssetRow.asset_id).where(
                            SplitAssetRow.split_id == split.id, SplitAssetRow.asset_id.in_(chunk)
                        )
                    ).scalars()
                )
        added = bulk_insert(
            conn, "split_assets", ("split_id", "asset_id"),
            ((split.id, a) for a in sorted(set(ids) - members)),
        )
        report.splits[name] = added

    # Annotations: insert the multiset difference against what each asset already has.
    have_fp: dict[int, Counter] = defaultdict(Counter)
    for chunk in _chunks(old_ids, 5000):
        for aid, fp in conn.execute(
            select(AnnotationRow.asset_id, AnnotationRow.fingerprint).where(
                AnnotationRow.asset_id.in_(chunk)
            )
        ):
            have_fp[aid][fp] += 1
    class_ids = {key: row.id for key, row in classes.items()}
    counts = {"added": 0, "existing": 0}
    total_anns = sum(len(c.record.annotations) for c in checked)

    def rows() -> Iterator[tuple]:
        done = 0
        for c in checked:
            aid = asset_ids[c.path]
            have = have_fp.get(aid)
            for ann in c.record.annotations:
                kind = "category" if ann.is_category else "object"
                fp = annotation_fingerprint(ann, f"{kind}:{ann.label}")
                if have and have[fp] > 0:
                    have[fp] -= 1
                    counts["existing"] += 1
                    continue
                counts["added"] += 1
                yield _annotation_tuple(ds.id, aid, class_ids[(kind, ann.label)], ann, fp)
            done += len(c.record.annotations)
            if done and (done % 50_000 < len(c.record.annotations) or done == total_anns):
                notify("annotations", done, total_anns)

    bulk_insert(
        conn,
        "annotations",
        ("dataset_id", "asset_id", "class_id", "bbox_x", "bbox_y", "bbox_w", "bbox_h",
         "polygons", "rle", "keypoints", "attributes", "iscrowd", "area", "source",
         "confidence", "fingerprint"),
        rows(),
    )
    report.annotations_added = counts["added"]
    report.annotations_existing = counts["existing"]
    session.add(
        ImportRow(
            dataset_id=ds.id,
            format=fmt,
            source=draft.source,
            counts={
                "images": report.images,
                "assets_added": report.assets_added,
                "annotations_added": report.annotations_added,
                "annotations_existing": report.annotations_existing,
                "classes_added": new_classes,
            },
        )
    )
    return report


def _annotation_tuple(ds_id: int, asset_id: int, class_id: int, ann: Annotation, fp: str) -> tuple:
    b = ann.bbox
    return (
        ds_id, asset_id, class_id,
        *(b if b is not None else (None, None, None, None)),
        _json(ann.polygons), _json(ann.rle), _json(ann.keypoints),
        _json(ann.attributes) if ann.attributes else None,
        bool(ann.iscrowd), ann.area, ann.source, ann.confidence, fp,
    )


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]

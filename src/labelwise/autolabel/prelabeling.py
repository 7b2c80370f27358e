"""Apply a model version to a dataset: pre-labels with confidence, uncertainty and buckets.

A run pre-labels the embedded images of a dataset (or split) that have no settled label of
the model's kind yet (``training_data.settled``: a person's, or a pre-label accepted or
edited). It is written in one transaction: the run, one ``prelabels`` row per
image, the model-sourced annotations (``source="model"``, ``confidence``,
``prelabel_run_id``), and, in the projects on the dataset, the uncertainty of the images'
tasks and the run's labels in those tasks nobody has touched yet (``push_prelabels``).
Pending pre-labels an earlier run left on the same images (of the same kind) are replaced;
human labels and accepted pre-labels are never touched.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import delete, select

from labelwise.autolabel import training_data as data
from labelwise.autolabel.versions import DENSE_DIR, get_model, get_version, read_dense_info
from labelwise.core.annotations import Annotation
from labelwise.db import queries
from labelwise.db.autolabel_models import (
    BUCKET_NAMES,
    AutolabelModelRow,
    AutolabelVersionRow,
    PrelabelRow,
    PrelabelRunRow,
)
from labelwise.db.bulk import bulk_insert
from labelwise.db.models import AnnotationRow, AssetRow, LabelClassRow
from labelwise.db.workflow_models import ProjectRow
from labelwise.errors import ValidationError
from labelwise.io.fingerprint import annotation_fingerprint
from labelwise.workflow.projects import push_prelabels, set_uncertainty

if TYPE_CHECKING:
    from labelwise.workspace import Workspace

ENGINES = ("local", "ray")
CATEGORY_TASKS = ("category", "multilabel")
CHUNK = 5000
_ANN_COLUMNS = ("dataset_id", "asset_id", "class_id", "bbox_x", "bbox_y", "bbox_w", "bbox_h",
                "keypoints", "attributes", "iscrowd", "area", "source", "confidence",
                "prelabel_run_id",
                "fingerprint")


@dataclass
class Prediction:
    """One image's pre-label: its labels (Annotation objects) and how sure the model is."""

    asset_id: int
    labels: list[Annotation]
    uncertainty: float
    expected_error: float
    bucket: str


@dataclass
class ApplyResult:
    """What a run wrote: counts, and per bucket the count, share and expected error rate."""

    run_id: int
    model: str
    version: int
    task: str
    dataset: str
    split: str | None
    engine: str
    images: int
    labels: int
    skipped_labeled: int
    replaced: int
    tasks_updated: int
    buckets: dict[str, dict[str, Any]]
    seconds: float
    warnings: list[str] = field(default_factory=list)
    #: Untouched todo tasks of projects on the dataset that got the run's labels.
    tasks_prelabeled: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def apply(
    ws: Workspace,
    name: str,
    dataset: str | int,
    *,
    split: str | None = None,
    version: int | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ApplyResult:
    """Pre-label the unlabeled embedded images of ``dataset`` (or its ``split``) with model
    ``name`` (its latest version, or ``version``); ``engine`` ``local`` or ``ray``."""
    t0 = time.perf_counter()
    if engine not in ENGINES:
        raise ValidationError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    with ws.session() as s:
        model = get_model(s, name)
        ver = get_version(s, model, version)
        ds = queries.get_dataset(s, dataset)
        split_id = queries.get_split(s, ds, split).id if split else None
        task, ds_id, ds_name, ver_id, v = model.task, ds.id, ds.name, ver.id, ver.version
        folder = ws.path / ver.path
        done = data.labeled_assets(s, ds_id, task)
        classes = _class_ids(s, ds.schema_id, "category" if task in CATEGORY_TASKS else "object")
    notify = progress or (lambda done, total: None)
    if task in CATEGORY_TASKS:
        preds, total, skipped, summary_extra = _predict_categories(
            ws, folder, ds_id, split, done, engine=engine, ray_address=ray_address)
    else:
        preds, total, skipped, summary_extra = _predict_dense(
            ws, folder, ds_id, split_id, done, engine=engine, notify=notify)
    if total == 0:
        where = f"split {split!r} of dataset {ds_name!r}" if split else f"dataset {ds_name!r}"
        raise ValidationError(f"nothing to pre-label: every image of {where} already has a "
                              f"trusted {task} label ({skipped} images)")
    preds = list(preds)
    _check_classes(preds, classes, name=name, ds_name=ds_name)
    notify(total, total)
    result = ApplyResult(0, name, v, task, ds_name, split, engine, len(preds), 0, skipped, 0,
                         0, _bucket_summary(preds, summary_extra.get("held_out", {})), 0.0)

    def finish(run_id: int, replaced: int, tasks: int, prelabeled: int, n_labels: int
               ) -> dict[str, Any]:
        result.run_id, result.replaced, result.tasks_updated = run_id, replaced, tasks
        result.tasks_prelabeled = prelabeled
        result.labels, result.seconds = n_labels, time.perf_counter() - t0
        return {k: val for k, val in result.as_dict().items() if k != "run_id"}

    _write_run(ws, preds, ds_id=ds_id, version_id=ver_id, split=split, task=task,
               classes=classes, finish=finish)
    return result


# -- predicting -------------------------------------------------------------------------------
def _predict_categories(ws, folder: Path, ds_id, split, done, *, engine, ray_address):
    from labelwise.autolabel.store import StoredClassifier
    from labelwise.embeddings.store import load_embeddings

    stored = StoredClassifier(folder)
    emb = stored.card.embedding
    ids, X = load_embeddings(ws, ds_id, model=emb.get("model"), size=int(emb.get("size")),
                             split=split)
    keep = np.array([int(a) not in done for a in ids], bool)
    ids, X = ids[keep], X[keep]
    skipped = int((~keep).sum())
    if not len(ids):
        return [], 0, skipped, {}
    if engine == "ray":
        from labelwise.autolabel.ray_apply import ray_probabilities

        P = ray_probabilities(folder / "model.onnx", X, address=ray_address)
    else:
        P = stored.predict_proba(X)
    pre = stored.prelabels(P, X)  # smoothed over neighbours among X when the model smooths
    held = {b: stored.buckets.held_out[b].estimated_error for b in BUCKET_NAMES}
    return (_category_predictions(stored, ids, pre), len(ids), skipped, {"held_out": held})


def _category_predictions(stored, ids: np.ndarray, pre) -> Iterable[Prediction]:
    classes = stored.classes
    for i, asset_id in enumerate(ids.tolist()):
        if stored.multi_label:
            labels = [Annotation(label=classes[k], source="model",
                                 confidence=float(pre.probabilities[i, k]))
                      for k in np.flatnonzero(pre.labels[i])]
        else:
            k = int(pre.labels[i])
            labels = [Annotation(label=classes[k], source="model",
                                 confidence=float(pre.confidence[i]))]
        yield Prediction(asset_id, labels, _unit(pre.uncertainty[i]),
                         _unit(pre.expected_error[i]), str(pre.buckets[i]))


def _predict_dense(ws, folder: Path, ds_id, split_id, done, *, engine, notify):
    from labelwise.autolabel import dense_service

    info = read_dense_info(folder)
    with ws.session() as s:
        if split_id is not None:
            candidates = data.split_asset_ids(s, split_id)
        else:
            candidates = list(s.scalars(select(AssetRow.id).where(AssetRow.dataset_id == ds_id)
                                        .order_by(AssetRow.id)))
    asset_ids = [a for a in candidates if a not in done]
    skipped = len(candidates) - len(asset_ids)
    if not asset_ids:
        return [], 0, skipped, {}
    total = len(asset_ids)
    preds = []
    for p in dense_service.apply_dense(ws, folder=folder / DENSE_DIR, meta=info["meta"],
                                       asset_ids=asset_ids, engine=engine,
                                       progress=lambda n: notify(n, total)):
        labels = [_dense_annotation(o) for o in p.objects]
        preds.append(Prediction(int(p.asset_id), labels, _unit(p.uncertainty),
                                _unit(p.expected_error), str(p.bucket)))
    return preds, total, skipped, {"held_out": _held_out_errors(info["meta"].get("buckets"))}


def _held_out_errors(buckets: dict[str, Any] | None) -> dict[str, float | None]:
    """Each bucket's held-out error estimate from stored ``DifficultyBuckets`` (if any)."""
    from labelwise.autolabel.uncertainty import DifficultyBuckets

    if not buckets:
        return {}
    parsed = DifficultyBuckets.from_dict(buckets)
    return {b: parsed.held_out[b].estimated_error for b in BUCKET_NAMES if b in parsed.held_out}


def _dense_annotation(obj: dict[str, Any]) -> Annotation:
    x, y, w, h = (float(v) for v in obj["bbox"])
    kps = obj.get("keypoints")
    flat = None if kps is None else [float(v) for point in kps for v in point]
    return Annotation(label=str(obj["class_name"]), bbox=(x, y, w, h), keypoints=flat,
                      attributes=obj.get("attributes") or None,  # per-point scores
                      source="model", confidence=float(obj["confidence"]), area=w * h)


def _unit(v: float) -> float:
    """A score in [0, 1] (float rounding may step a hair outside)."""
    return float(min(1.0, max(0.0, float(v))))


# -- writing ----------------------------------------------------------------------------------
def _class_ids(s, schema_id: int, kind: str) -> dict[str, int]:
    return dict(s.execute(select(LabelClassRow.name, LabelClassRow.id).where(
        LabelClassRow.schema_id == schema_id, LabelClassRow.kind == kind)).all())


def _check_classes(preds: list[Prediction], classes: dict[str, int], *, name, ds_name) -> None:
    """Every predicted class must exist in the dataset's schema: refuse before writing."""
    missing = sorted({a.label for p in preds for a in p.labels} - set(classes))
    if missing:
        raise ValidationError(
            f"model {name!r} predicts classes that dataset {ds_name!r} does not have: "
            f"{', '.join(missing)}; add them to its schema (`labelwise schema add-class`) or "
            "apply the model to the dataset it was trained for")


def _write_run(ws, preds: list[Prediction], *, ds_id, version_id, split, task, classes,
               finish) -> None:
    """One transaction: the run, its pre-labels and annotations, replaced pending ones,
    workflow task labels and uncertainty, and the run's summary from
    ``finish(run id, replaced, tasks updated, tasks pre-labeled, labels written)``."""
    family = CATEGORY_TASKS if task in CATEGORY_TASKS else (task,)
    kind = "category" if task in CATEGORY_TASKS else "object"
    asset_ids = [p.asset_id for p in preds]
    with ws.session() as s, s.begin():
        run = PrelabelRunRow(version_id=version_id, dataset_id=ds_id, split=split, summary={})
        s.add(run)
        s.flush()
        earlier = _earlier_runs(s, ds_id, run.id, family)
        replaced = _replace_pending(s, earlier, asset_ids)
        conn = s.connection()
        bulk_insert(conn, "prelabels", ("run_id", "asset_id", "uncertainty", "expected_error",
                                        "bucket", "status"),
                    ((run.id, p.asset_id, p.uncertainty, p.expected_error, p.bucket, "pending")
                     for p in preds))
        n_labels = bulk_insert(conn, "annotations", _ANN_COLUMNS,
                               _annotation_rows(preds, ds_id, run.id, classes, kind))
        scores = {p.asset_id: p.uncertainty for p in preds}
        tasks = prelabeled = 0
        for project in s.scalars(select(ProjectRow).where(ProjectRow.dataset_id == ds_id)).all():
            prelabeled += push_prelabels(s, project, run_id=run.id, replaces=earlier,
                                         asset_ids=asset_ids)
            tasks += set_uncertainty(s, project, scores)
        run.summary = finish(run.id, replaced, tasks, prelabeled, n_labels)


def _annotation_rows(preds, ds_id: int, run_id: int, classes: dict[str, int], kind: str):
    import orjson

    for p in preds:
        for a in p.labels:
            b = a.bbox if a.bbox is not None else (None, None, None, None)
            kps = None if a.keypoints is None else orjson.dumps(a.keypoints).decode()
            attrs = None if not a.attributes else orjson.dumps(a.attributes).decode()
            yield (ds_id, p.asset_id, classes[a.label], *b, kps, attrs, False, a.area, "model",
                   a.confidence, run_id, annotation_fingerprint(a, f"{kind}:{a.label}"))


def _earlier_runs(s, ds_id: int, run_id: int, family) -> list[int]:
    """Ids of the dataset's other runs of models of the same kind (``family`` of tasks)."""
    return list(s.scalars(
        select(PrelabelRunRow.id)
        .join(AutolabelVersionRow, AutolabelVersionRow.id == PrelabelRunRow.version_id)
        .join(AutolabelModelRow, AutolabelModelRow.id == AutolabelVersionRow.model_id)
        .where(PrelabelRunRow.dataset_id == ds_id, PrelabelRunRow.id != run_id,
               AutolabelModelRow.task.in_(family))))


def _replace_pending(s, runs: list[int], asset_ids: list[int]) -> int:
    """Delete pending pre-labels (and their model annotations) that the earlier ``runs`` left
    on ``asset_ids``; returns how many images had one."""
    if not runs:
        return 0
    replaced = 0
    for i in range(0, len(asset_ids), CHUNK):
        chunk = asset_ids[i:i + CHUNK]
        pairs = s.execute(select(PrelabelRow.run_id, PrelabelRow.asset_id).where(
            PrelabelRow.run_id.in_(runs), PrelabelRow.asset_id.in_(chunk),
            PrelabelRow.status == "pending")).all()
        by_run: dict[int, list[int]] = {}
        for r, a in pairs:
            by_run.setdefault(r, []).append(a)
        for r, assets in by_run.items():
            s.execute(delete(AnnotationRow).where(
                AnnotationRow.prelabel_run_id == r, AnnotationRow.asset_id.in_(assets),
                AnnotationRow.source == "model"))
            s.execute(delete(PrelabelRow).where(PrelabelRow.run_id == r,
                                                PrelabelRow.asset_id.in_(assets)))
        replaced += len({a for _, a in pairs})
    return replaced


def _bucket_summary(preds: list[Prediction], held_out: dict[str, Any]) -> dict[str, dict]:
    n = len(preds)
    out = {}
    for b in BUCKET_NAMES:
        errs = [p.expected_error for p in preds if p.bucket == b]
        out[b] = {"count": len(errs), "share": len(errs) / n if n else 0.0,
                  "expected_error": float(np.mean(errs)) if errs else None,
                  "held_out_error": held_out.get(b)}
    return out

"""Custom Auto-Label on a workspace: train on a dataset's labels, apply, review, pick the next
batch. The kernels (``classify``, ``store``, ``active``, the dense trainers) take arrays and
folders; this module is where datasets, splits, exports and rows come in.

    from labelwise.autolabel import service
    service.train(ws, "shoes", source_split="labeled", name="shoes")   # v1, then v2, ...
    service.show(ws, "shoes")                                          # card + versions
    run = service.apply(ws, "shoes", "shoes")          # pre-labels with uncertainty, buckets
    service.review_queue(ws, "shoes", bucket="hard")   # most uncertain first
    service.accept(ws, "shoes", bucket="easy")         # says the bucket's expected error rate
    service.next_batch(ws, "shoes", budget=100, name="round-2", model="shoes")
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from labelwise.autolabel import training_data as data
from labelwise.autolabel.next_batch import next_batch
from labelwise.autolabel.prelabeling import ENGINES, ApplyResult, apply
from labelwise.autolabel.review import accept, reject, review_queue
from labelwise.autolabel.versions import (
    DENSE_DIR,
    MODELS_DIR,
    get_model,
    get_version,
    model_public,
    model_root,
    save_dense_version,
    version_public,
    versions_of,
)
from labelwise.db import queries
from labelwise.db.autolabel_models import MODEL_TASKS, AutolabelModelRow, AutolabelVersionRow
from labelwise.db.models import (
    AnnotationRow,
    AssetRow,
    LabelClassRow,
    LabelSchemaRow,
    SplitAssetRow,
)
from labelwise.embeddings.backbones import BUILTIN
from labelwise.errors import ConflictError, NotFoundError, ValidationError

if TYPE_CHECKING:
    from labelwise.workspace import Workspace

__all__ = ["ENGINES", "TASKS", "ApplyResult", "TrainResult", "accept", "apply", "export_onnx",
           "list_models", "next_batch", "reject", "review_queue", "show", "train"]

TASKS = ("auto", *MODEL_TASKS)
#: Options of categorization training (the rest of ``options`` goes to the dense trainer).
CATEGORY_OPTIONS = ("seed", "head", "l2", "uncertainty", "model", "size")
Progress = Callable[[str, float], None]


@dataclass
class TrainResult:
    """A trained and stored model version."""

    name: str
    version: int
    task: str
    dataset: str
    path: str
    trained_on: dict[str, Any]
    card: dict[str, Any] = field(repr=False)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# -- train ------------------------------------------------------------------------------------
def train(
    ws: Workspace,
    dataset: str | int,
    *,
    name: str,
    source_split: str | None = None,
    source_export: int | None = None,
    task: str = "auto",
    options: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Train model ``name`` (its next version) on the trusted labels of ``dataset``, of its
    split ``source_split``, or of project export ``source_export``.

    ``task``: ``auto`` (from the labels), ``category``, ``multilabel``, ``boxes`` or
    ``keypoints``. ``options``: ``seed``, ``head``, ``l2``, ``uncertainty``, embedding
    ``model`` and ``size`` for categories; anything else goes to the boxes/keypoints
    trainer. Refuses (ValidationError, with the reason and the fix) when there are no labels
    of the task's kind, fewer than 2 classes or fewer than 5 examples of a class; warns under
    about 100 images. An export (approved labels only, COCO for boxes and keypoints) is read
    from its own files: labels changed in the dataset since do not reach the model.
    """
    model_root(ws, name)  # checks the name before any work
    if task not in TASKS:
        raise ValidationError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if source_split is not None and source_export is not None:
        raise ValidationError("train from a split or from an export, not both (--from or "
                              "--from-export)")
    options = dict(options or {})
    notify = progress or (lambda stage, share: None)
    notify("labels", 0.0)
    with ws.session() as s:
        ds = queries.get_dataset(s, dataset)
        split_id = queries.get_split(s, ds, source_split).id if source_split else None
        schema = s.get(LabelSchemaRow, ds.schema_id)
        ds_id, ds_name, multi = ds.id, ds.name, bool(schema.multi_label)
        source = {"dataset": ds_name, "dataset_id": ds_id, "split": source_split,
                  "export": source_export}
        labels = frozen = None
        if source_export is not None and task not in ("boxes", "keypoints"):
            labels = data.export_category_labels(ws, s, ds_id, ds_name, source_export)
            multi = labels.multi_label
        elif task in ("auto", "category", "multilabel"):
            labels = data.dataset_category_labels(s, ds_id, split_id=split_id,
                                                  multi_label=multi, source=source)
        if (source_export is not None and task in ("auto", "boxes", "keypoints")
                and (labels is None or not labels.by_asset)):
            frozen = data.export_object_labels(ws, s, ds_id, ds_name, source_export)
        task = _resolve_task(s, task, ds_id, split_id, labels, multi, where=_where(source),
                             frozen=frozen)
        _check_model_slot(s, name, task, ds_id, ds_name)
    if task in ("boxes", "keypoints"):
        if frozen is not None:
            source.update(frozen.source)
        return _train_dense(ws, name=name, task=task, ds_id=ds_id, ds_name=ds_name,
                            split_id=split_id, source=source, options=options, notify=notify,
                            frozen=frozen)
    labels.source.update(source)
    data.resolve_multi(labels, multi_label=task == "multilabel")
    return _train_categories(ws, name=name, task=task, ds_id=ds_id, ds_name=ds_name,
                             labels=labels, options=options, notify=notify)


def _where(source: dict[str, Any]) -> str:
    if source.get("export") is not None:
        return f"export {source['export']}"
    if source.get("split"):
        return f"split {source['split']!r} of dataset {source['dataset']!r}"
    return f"dataset {source['dataset']!r}"


def _resolve_task(s, task, ds_id, split_id, labels, multi, *, where: str,
                  frozen: data.FrozenLabels | None = None) -> str:
    """The task asked for, or (``auto``) the one the labels support; refuse without labels.
    ``frozen``: an export's objects, which stand for the dataset's."""
    has_categories = labels is not None and bool(labels.by_asset)

    def has_objects(kind: str) -> bool:
        if frozen is not None:
            return bool(frozen.objects(kind))
        return _has_objects(s, ds_id, split_id, kind)

    if task in ("category", "multilabel"):
        if not has_categories:
            raise ValidationError(
                f"no image-level category labels in {where}: nothing to train a {task} model "
                "on; label some images (at least 5 of each class) or choose another --task")
        return task
    if task in ("boxes", "keypoints"):
        if not has_objects(task):
            what = "keypoints" if task == "keypoints" else "boxes"
            raise ValidationError(
                f"no {what} labeled in {where}: nothing to train a {task} model on; label "
                f"some {what} (at least 5 of each class) or choose another --task")
        return task
    if has_categories:
        return "multilabel" if multi else "category"
    for dense in ("keypoints", "boxes"):
        if has_objects(dense):
            return dense
    raise ValidationError(
        f"no labels to train on in {where}: label images with categories, boxes or keypoints "
        "first (at least 5 of each class, about 100 images for a useful model)")


def _has_objects(s, ds_id: int, split_id: int | None, task: str) -> bool:
    a = AnnotationRow
    q = select(a.id).where(a.dataset_id == ds_id, data.object_kind_filter(task), data.trusted())
    if split_id is not None:
        q = q.where(a.asset_id.in_(select(SplitAssetRow.asset_id).where(
            SplitAssetRow.split_id == split_id)))
    return s.scalar(q.limit(1)) is not None


def _check_model_slot(s, name: str, task: str, ds_id: int, ds_name: str) -> None:
    """A retrain keeps the model's task and dataset; another task or dataset needs a name."""
    row = s.scalar(select(AutolabelModelRow).where(AutolabelModelRow.name == name))
    if row is None:
        return
    if row.task != task:
        raise ConflictError(f"model {name!r} is a {row.task} model; a {task} model needs "
                            "another --name")
    if row.dataset_id != ds_id:
        raise ConflictError(f"model {name!r} learns from another dataset (id {row.dataset_id})"
                            f", not {ds_name!r}; choose another --name")


def _category_classes(s, ds_id: int, names: set[str]) -> list[str]:
    """The classes to learn, in the schema's order (names unknown to it last, sorted)."""
    schema_id = queries.get_dataset(s, ds_id).schema_id
    ordered = list(s.scalars(select(LabelClassRow.name).where(
        LabelClassRow.schema_id == schema_id, LabelClassRow.kind == "category")
        .order_by(LabelClassRow.position, LabelClassRow.id)))
    return [n for n in ordered if n in names] + sorted(names - set(ordered))


def _train_categories(ws, *, name, task, ds_id, ds_name, labels, options, notify) -> TrainResult:
    from labelwise.autolabel.classify import TrainOptions, train_classifier
    from labelwise.autolabel.store import save_classifier
    from labelwise.embeddings.search import resolve_size
    from labelwise.embeddings.store import load_embeddings

    unknown = sorted(set(options) - set(CATEGORY_OPTIONS))
    if unknown:
        raise ValidationError(f"unknown option(s) {', '.join(unknown)} for a {task} model; "
                              f"options: {', '.join(CATEGORY_OPTIONS)}")
    emb_model = options.get("model") or BUILTIN
    size = resolve_size(ws, emb_model, options.get("size"), dataset=ds_id)
    ids, X = load_embeddings(ws, ds_id, model=emb_model, size=size)
    warnings = list(labels.warnings)
    row_of = {int(a): i for i, a in enumerate(ids)}
    labeled = sorted(a for a in labels.by_asset if a in row_of)
    missing = len(labels.by_asset) - len(labeled)
    if labels.by_asset and not labeled:
        raise NotFoundError(f"none of the {missing} labeled images of dataset {ds_name!r} has "
                            f"a {emb_model} embedding at {size} px; compute them with "
                            f"`labelwise embed {ds_name} --model {emb_model} --size {size}`")
    if missing:
        warnings.append(f"{missing} labeled images have no {emb_model} embedding at {size} px "
                        f"and were left out; run `labelwise embed {ds_name} --size {size}`")
    with ws.session() as s:
        classes = _category_classes(s, ds_id, set().union(*labels.by_asset.values()))
    index = {c: k for k, c in enumerate(classes)}
    if labels.multi_label:
        T = np.zeros((len(labeled), len(classes)), np.int64)
        for r, a in enumerate(labeled):
            T[r, [index[c] for c in labels.by_asset[a]]] = 1
    else:
        T = np.array([index[next(iter(labels.by_asset[a]))] for a in labeled], np.int64)
    rows = np.array([row_of[a] for a in labeled], np.int64)
    rest = np.setdiff1d(np.arange(len(ids)), rows)
    opts = TrainOptions(**{k: v for k, v in options.items() if k in ("seed", "head", "l2",
                                                                     "uncertainty")})
    notify("train", 0.2)
    trained = train_classifier(X[rows], T, classes=classes, multi_label=labels.multi_label,
                               ids=np.array(labeled, np.int64),
                               X_unlabeled=X[rest] if len(rest) else None, options=opts)
    trained.card.warnings = warnings + trained.card.warnings
    notify("save", 0.9)
    folder = save_classifier(model_root(ws, name), trained, name=name,
                             embedding={"model": emb_model, "size": size})
    counts = trained.card.counts
    trained_on = {**labels.source, "assets": len(labeled), "class_counts": counts,
                  "data_digest": trained.card.data_digest,
                  "embedding": {"model": emb_model, "size": size}}
    card = trained.card.to_dict()
    version = _register(ws, folder, name=name, task=task, ds_id=ds_id, trained_on=trained_on,
                        card=card)
    notify("done", 1.0)
    return TrainResult(name, version, task, ds_name, str(folder.relative_to(ws.path)),
                       trained_on, card, list(trained.card.warnings))


def _train_dense(ws, *, name, task, ds_id, ds_name, split_id, source, options, notify,
                 frozen: data.FrozenLabels | None = None) -> TrainResult:
    """Train on the dataset's (or split's) trusted objects, or on ``frozen``: an export's
    images and objects, whatever the dataset holds now."""
    from labelwise.autolabel import dense_service

    if frozen is not None:
        asset_ids = sorted(frozen.by_asset)
        counts, digest = _frozen_counts(frozen, task)
    else:
        with ws.session() as s:
            if split_id is not None:
                asset_ids = data.split_asset_ids(s, split_id)
            else:
                asset_ids = list(s.scalars(select(AssetRow.id).where(
                    AssetRow.dataset_id == ds_id).order_by(AssetRow.id)))
            counts, digest = _object_counts(s, ds_id, asset_ids, task)
    # passed only when set: a trainer without the argument still serves dataset training
    extra = {} if frozen is None else {"labels": frozen}

    def fit(folder: Path):
        result = dense_service.train_dense(
            ws, task=task, dataset_id=ds_id, asset_ids=asset_ids, folder=folder,
            options=options, progress=lambda stage, share: notify(stage, share), **extra)
        if frozen is not None:  # the card says which snapshot trained it, and what it lacked
            result.card.setdefault("data", {}).update(frozen.source)
            result.warnings[:0] = frozen.warnings
        return result

    folder, card = save_dense_version(model_root(ws, name), name=name, task=task, train=fit)
    trained_on = {**source, "assets": len(asset_ids), "class_counts": counts,
                  "data_digest": digest}
    version = _register(ws, folder, name=name, task=task, ds_id=ds_id, trained_on=trained_on,
                        card=card)
    notify("done", 1.0)
    return TrainResult(name, version, task, ds_name, str(folder.relative_to(ws.path)),
                       trained_on, card, list(card.get("warnings", [])))


def _object_counts(s, ds_id: int, asset_ids: list[int], task: str) -> tuple[dict, str]:
    """Trusted objects per class among ``asset_ids`` and a sha256 of (asset, fingerprint)."""
    a = AnnotationRow
    counts: dict[str, int] = {}
    h = hashlib.sha256()
    wanted = set(asset_ids)
    q = (select(a.asset_id, LabelClassRow.name, a.fingerprint)
         .join(LabelClassRow, LabelClassRow.id == a.class_id)
         .where(a.dataset_id == ds_id, data.object_kind_filter(task), data.trusted())
         .order_by(a.asset_id, a.fingerprint))
    for asset_id, cls, fp in s.execute(q):
        if asset_id in wanted:
            counts[cls] = counts.get(cls, 0) + 1
            h.update(f"{asset_id}:{fp};".encode())
    return counts, h.hexdigest()


def _frozen_counts(frozen: data.FrozenLabels, task: str) -> tuple[dict, str]:
    """``_object_counts`` of an export's objects: per class, and a sha256 of (asset, label,
    geometry)."""
    counts: dict[str, int] = {}
    h = hashlib.sha256()
    for asset_id, a in frozen.objects(task):
        counts[a.label] = counts.get(a.label, 0) + 1
        h.update(json.dumps([asset_id, a.label, a.bbox, a.polygons, a.keypoints]).encode())
    return counts, h.hexdigest()


def _register(ws, folder: Path, *, name, task, ds_id, trained_on, card) -> int:
    """Record a written version folder; remove it again if the database refuses."""
    version = int(folder.name[1:])
    try:
        with ws.session() as s, s.begin():
            model = s.scalar(select(AutolabelModelRow).where(AutolabelModelRow.name == name))
            if model is None:
                model = AutolabelModelRow(name=name, task=task, dataset_id=ds_id)
                s.add(model)
                s.flush()
            s.add(AutolabelVersionRow(model_id=model.id, version=version,
                                      path=folder.relative_to(ws.path).as_posix(),
                                      trained_on=trained_on, card=card))
    except IntegrityError as err:
        shutil.rmtree(folder, ignore_errors=True)
        raise ConflictError(f"model {name!r} was being trained by another run at the same "
                            "time; try again") from err
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return version


# -- look ---------------------------------------------------------------------------------------
def list_models(ws: Workspace) -> list[dict[str, Any]]:
    """Every model: name, task, dataset, number of versions, the latest one's accuracy."""
    with ws.session() as s:
        rows = s.scalars(select(AutolabelModelRow).order_by(AutolabelModelRow.name)).all()
        return [model_public(s, m) for m in rows]


def show(ws: Workspace, name: str, version: int | None = None) -> dict[str, Any]:
    """A model, its versions (each with the data that trained it) and one version's card."""
    with ws.session() as s:
        model = get_model(s, name)
        chosen = get_version(s, model, version)
        out = model_public(s, model)
        out["version"] = chosen.version
        out["card"] = chosen.card
        out["trained_on"] = chosen.trained_on
        out["all_versions"] = [version_public(v) for v in versions_of(s, model)]
        out["runs"] = _run_count(s, model)
        return out


def _run_count(s, model: AutolabelModelRow) -> int:
    from labelwise.db.autolabel_models import PrelabelRunRow

    return s.scalar(select(func.count()).select_from(PrelabelRunRow).join(
        AutolabelVersionRow, AutolabelVersionRow.id == PrelabelRunRow.version_id).where(
        AutolabelVersionRow.model_id == model.id)) or 0


def onnx_path(ws: Workspace, name: str, version: int | None = None) -> tuple[Path, int]:
    """The ONNX file of a model version and the version number."""
    with ws.session() as s:
        model = get_model(s, name)
        row = get_version(s, model, version)
        folder, task, v = ws.path / row.path, model.task, row.version
    if task in ("category", "multilabel"):
        path = folder / "model.onnx"
    else:
        # A boxes model is one ONNX head on the backbone's feature maps; keypoints models
        # have a head per class besides the detector, so there is no single file to give.
        found = sorted((folder / DENSE_DIR).rglob("*.onnx"))
        if len(found) != 1:
            raise ValidationError(f"model {name!r} v{v} ({task}) is {len(found)} ONNX files, "
                                  "not one; export it as a .zip (`labelwise autolabel export "
                                  f"{name} {name}.zip`)")
        path = found[0]
    if not path.is_file():
        raise NotFoundError(f"{path}: the model file is missing from the workspace; retrain "
                            f"model {name!r}")
    return path, v


def export_onnx(ws: Workspace, name: str, version: int | None, dest: str | Path) -> Path:
    """Write a model version for use outside labelwise: ``dest`` ending in ``.onnx`` gets
    its ONNX file (categories, boxes); ending in ``.zip``, every ONNX file of the version with
    its ``card.json`` and ``model.json`` (any task; the only way for keypoints models, which
    are a detector and a head per class)."""
    dest = Path(dest)
    suffix = dest.suffix.lower()
    if suffix not in (".onnx", ".zip"):
        raise ValidationError(f"{dest}: name the exported file with a .onnx suffix (one ONNX "
                              "file) or .zip (every file of the version)")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".onnx":
            src, _ = onnx_path(ws, name, version)
            shutil.copyfile(src, dest)
        else:
            _write_zip(ws, name, version, dest)
    except OSError as err:
        raise ValidationError(f"{dest}: cannot write the model ({err.strerror}); choose "
                              "another path") from err
    return dest


def _write_zip(ws: Workspace, name: str, version: int | None, dest: Path) -> None:
    import zipfile

    with ws.session() as s:
        row = get_version(s, get_model(s, name), version)
        folder = ws.path / row.path
    files = sorted(p for p in folder.rglob("*")
                   if p.is_file() and (p.suffix == ".onnx" or p.name in ("card.json",
                                                                          "model.json")))
    if not any(p.suffix == ".onnx" for p in files):
        raise NotFoundError(f"{folder}: the model files are missing from the workspace; "
                            f"retrain model {name!r}")
    tmp = dest.with_name(f".{dest.name}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in files:
                zf.write(path, path.relative_to(folder).as_posix())
        tmp.replace(dest)  # never a half-written archive under the given name
    finally:
        tmp.unlink(missing_ok=True)


__all__ += ["MODELS_DIR", "onnx_path"]

"""Auto-Curate on a workspace: load embeddings and labels, run the kernels, store the results.

The kernels (``labelwise.curate.*``) take arrays; this module is where datasets, splits and
rows come in. Each run stores the scores it computed (``asset_scores`` / ``object_scores``),
so the API and the CLI can filter and sort by them afterwards.

    from labelwise.curate import service
    service.compute_scores(ws, "shoes")                        # stored, filterable
    service.select_split(ws, "shoes", budget="10%", name="to-label")  # a named split + a summary
    service.validation_set(ws, "shoes", size=500, exclude="to-label")
    service.mislabels(ws, "shoes", top=100)
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import delete, select, tuple_, update

from labelwise.curate.analysis import ItemScores, curate_unlabeled, score_items
from labelwise.curate.labeled import select_labeled
from labelwise.curate.objects import select_images_by_objects
from labelwise.curate.validation import select_validation
from labelwise.db import queries
from labelwise.db.bulk import bulk_insert
from labelwise.db.models import (
    AnnotationRow,
    AssetRow,
    AssetScoreRow,
    AssetTagRow,
    LabelClassRow,
    ObjectScoreRow,
    SplitAssetRow,
)
from labelwise.db.splits import create_split
from labelwise.embeddings.backbones import BUILTIN
from labelwise.embeddings.search import pixel_check, resolve_size
from labelwise.embeddings.store import load_embeddings, load_object_embeddings
from labelwise.errors import ConflictError, NotFoundError, ValidationError
from labelwise.workspace import Workspace

#: Tag given to assets marked for review by ``mark_for_review``.
REVIEW_TAG = "needs-review"
#: Selection modes of ``select``.
MODES = ("auto", "unlabeled", "labeled", "objects")
#: Share of the pool's images with a category label above which ``auto`` picks ``labeled``.
LABELED_SHARE = 0.5


# -- loading ----------------------------------------------------------------------------------
@dataclass
class Pool:
    """What the kernels see of a dataset: rows, their ids, vectors and labels."""

    dataset_id: int
    dataset: str
    model: str
    size: int
    ids: np.ndarray  # asset ids (or annotation ids for objects), ascending
    X: np.ndarray
    labels: np.ndarray  # class index per row, -1 = no single label
    class_ids: list[int]  # class index -> label class id
    class_names: list[str]
    asset_of: np.ndarray | None = None  # objects: the asset id of each row
    objects: bool = False

    @property
    def labeled(self) -> np.ndarray:
        return self.labels >= 0


def load_pool(
    ws: Workspace,
    dataset: str | int,
    *,
    model: str = BUILTIN,
    size: int | None = None,
    split: str | None = None,
    objects: bool = False,
) -> Pool:
    """Embeddings and labels of a dataset's images (or annotated objects).

    Image labels are the category annotations: an image with exactly one category gets it,
    others (none, or several in a multi-label schema) count as unlabeled. Object labels are
    the objects' classes. A dataset without embeddings raises NotFoundError naming the
    ``labelwise embed`` command to run.
    """
    size = resolve_size(ws, model, size, dataset=dataset)
    with ws.session() as s:
        ds = queries.get_dataset(s, dataset)
        if split is not None:
            queries.get_split(s, ds, split)  # unknown split: NotFoundError listing the names
        ds_id, ds_name = ds.id, ds.name
    if objects:
        ids, X = load_object_embeddings(ws, ds_id, model=model, size=size, split=split)
    else:
        ids, X = load_embeddings(ws, ds_id, model=model, size=size, split=split)
    with ws.session() as s:
        classes = s.execute(
            select(LabelClassRow.id, LabelClassRow.name)
            .join(AnnotationRow, AnnotationRow.class_id == LabelClassRow.id)
            .where(AnnotationRow.dataset_id == ds_id)
            .distinct()
            .order_by(LabelClassRow.id)
        ).all()
        class_ids = [c for c, _ in classes]
        index = {c: i for i, c in enumerate(class_ids)}
        labels = np.full(len(ids), -1, np.int64)
        asset_of = None
        if objects:
            rows = s.execute(
                select(AnnotationRow.id, AnnotationRow.class_id, AnnotationRow.asset_id)
                .where(AnnotationRow.dataset_id == ds_id,
                       AnnotationRow.bbox_w.is_not(None) | AnnotationRow.polygons.is_not(None)
                       | AnnotationRow.keypoints.is_not(None))
            ).all()
            by_id = {a: (index[c], asset) for a, c, asset in rows}
            labels[:] = [by_id[int(a)][0] for a in ids]
            asset_of = np.array([by_id[int(a)][1] for a in ids], np.int64)
        else:
            rows = s.execute(
                select(AnnotationRow.asset_id, AnnotationRow.class_id)
                .where(AnnotationRow.dataset_id == ds_id, AnnotationRow.bbox_w.is_(None),
                       AnnotationRow.polygons.is_(None), AnnotationRow.keypoints.is_(None))
            ).all()
            per_asset: dict[int, set[int]] = {}
            for asset, cls in rows:
                per_asset.setdefault(asset, set()).add(cls)
            pos = {int(a): i for i, a in enumerate(ids)}
            for asset, found in per_asset.items():
                if len(found) == 1 and asset in pos:
                    labels[pos[asset]] = index[next(iter(found))]
    return Pool(ds_id, ds_name, model, size, ids, X, labels, class_ids,
                [n for _, n in classes], asset_of, objects)


# -- scores -----------------------------------------------------------------------------------
@dataclass
class ScoreRun:
    """What ``compute_scores`` found and stored."""

    dataset: str
    model: str
    size: int
    items: int
    objects: bool
    clusters: int
    duplicate_groups: int
    in_duplicate_groups: int
    labeled: int
    likely_mislabeled: int
    scores: ItemScores = field(repr=False)
    pool: Pool = field(repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("scores", "pool")}


def compute_scores(
    ws: Workspace,
    dataset: str | int,
    *,
    model: str = BUILTIN,
    size: int | None = None,
    objects: bool = False,
    seed: int = 0,
    verify: bool = True,
    n_clusters: int | None = None,
) -> ScoreRun:
    """Score every embedded image (or object) of ``dataset`` and store the scores.

    Replaces the dataset's previous scores of the same kind (images or objects) in one
    transaction, keeping review marks on items that are still there. ``verify`` confirms
    near-duplicate candidates with the pixel check (images only).
    """
    pool = load_pool(ws, dataset, model=model, size=size, objects=objects)
    return _score_and_store(ws, pool, seed=seed, verify=verify, n_clusters=n_clusters)


def _score_and_store(
    ws: Workspace, pool: Pool, *, seed: int, verify: bool, n_clusters: int | None = None
) -> ScoreRun:
    if len(pool.ids) < 2:
        raise ValidationError(
            f"dataset {pool.dataset!r} has {len(pool.ids)} embedded "
            f"{'object' if pool.objects else 'image'}(s); curation needs at least 2"
        )
    pair_filter = pixel_check(ws, pool.ids) if verify and not pool.objects else None
    labels = pool.labels if pool.labeled.any() else None
    scores = score_items(pool.X, labels=labels, seed=seed, pair_filter=pair_filter,
                         n_clusters=n_clusters)
    _store(ws, pool, scores)
    groups = scores.duplicate_group
    mis = scores.mislabel
    return ScoreRun(
        dataset=pool.dataset, model=pool.model, size=pool.size, items=len(pool.ids),
        objects=pool.objects, clusters=scores.n_clusters,
        duplicate_groups=len(np.unique(groups[groups >= 0])),
        in_duplicate_groups=int((groups >= 0).sum()),
        labeled=int(pool.labeled.sum()),
        likely_mislabeled=int(np.nansum(mis > 0.5)) if mis is not None else 0,
        scores=scores, pool=pool,
    )


def _store(ws: Workspace, pool: Pool, scores: ItemScores) -> None:
    table = ObjectScoreRow if pool.objects else AssetScoreRow
    key = table.annotation_id if pool.objects else table.asset_id
    mis = scores.mislabel
    sug = scores.suggested
    columns = ["dataset_id", "model", "size", "cluster", "cluster_size", "rarity", "typicality",
               "duplicate_group", "mislabel_score", "suggested_class_id", "flagged"]
    columns = (["annotation_id", "asset_id"] if pool.objects else ["asset_id"]) + columns
    with ws.session() as s, s.begin():
        flagged = set(s.scalars(select(key).where(table.dataset_id == pool.dataset_id,
                                                  table.flagged.is_(True))))
        s.execute(delete(table).where(table.dataset_id == pool.dataset_id))

        def rows():
            for i, item in enumerate(pool.ids.tolist()):
                head = (item, int(pool.asset_of[i])) if pool.objects else (item,)
                m = None if mis is None or np.isnan(mis[i]) else float(mis[i])
                suggested = (pool.class_ids[int(sug[i])]
                             if m is not None and sug is not None and sug[i] >= 0 else None)
                group = int(scores.duplicate_group[i])
                yield (*head, pool.dataset_id, pool.model, pool.size, int(scores.cluster[i]),
                       int(scores.cluster_size[i]), float(scores.rarity[i]),
                       float(scores.typicality[i]), group if group >= 0 else None, m,
                       suggested, item in flagged)

        bulk_insert(s.connection(), table.__tablename__, tuple(columns), rows())


# -- selection --------------------------------------------------------------------------------
def parse_budget(budget: str | int, pool_size: int) -> int:
    """``"25%"``, ``"0.25"``-style shares or a count ``"500"`` as a number of items in the pool."""
    text = str(budget).strip()
    try:
        if text.endswith("%"):
            share = float(text[:-1]) / 100
            count = round(share * pool_size) if share > 0 else 0
            if share > 1:
                raise ValidationError(
                    f"budget {text} is more than the whole pool; ask for at most 100%"
                )
        elif re.fullmatch(r"[+-]?\d+", text):
            count = int(text)
        else:
            raise ValueError
    except ValueError:
        raise ValidationError(
            f"budget {text!r} is neither a count (500) nor a share of the pool (25%)"
        ) from None
    if count <= 0:
        raise ValidationError(f"budget {text} selects nothing; ask for at least 1 item or 1%")
    if count > pool_size:
        raise ValidationError(
            f"budget {text} is larger than the pool of {pool_size:,} embedded images; ask "
            f"for at most {pool_size:,} (or 100%)"
        )
    return count


@dataclass
class Selection:
    """A curated split and what went into it."""

    dataset: str
    split: str
    mode: str
    seed: int
    asset_ids: list[int]
    summary: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def select_split(
    ws: Workspace,
    dataset: str | int,
    *,
    budget: str | int,
    name: str,
    mode: str = "auto",
    seed: int = 0,
    model: str = BUILTIN,
    size: int | None = None,
    from_split: str | None = None,
    replace: bool = False,
    verify: bool = True,
) -> Selection:
    """Choose ``budget`` images of ``dataset`` (or of its split ``from_split``) as split ``name``.

    ``mode``: ``unlabeled`` (what to label: every mode covered, then rare images),
    ``labeled`` (a smaller training set: classes balanced, clusters covered, likely
    mislabels left out), ``objects`` (detection data: the same on object crops, rolled up to
    images), or ``auto`` (``objects`` when the images carry embedded objects, ``labeled``
    when most images have a category, else ``unlabeled``). Reproducible given ``seed``.
    """
    if mode not in MODES:
        raise ValidationError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    _check_new_split(ws, dataset, name, replace)
    images = load_pool(ws, dataset, model=model, size=size, split=from_split)
    b = parse_budget(budget, len(images.ids))
    objects = None
    if mode in ("auto", "objects"):
        try:
            objects = load_pool(ws, dataset, model=model, size=images.size, split=from_split,
                                objects=True)
        except NotFoundError:
            if mode == "objects":
                raise
    if mode == "auto":
        labeled = images.labeled.mean() > LABELED_SHARE
        mode = "objects" if objects is not None else "labeled" if labeled else "unlabeled"
    image_run = _score_and_store(ws, images, seed=seed, verify=verify)
    if objects is not None and mode == "objects":
        object_run = _score_and_store(ws, objects, seed=seed, verify=False)
        chosen = _select_by_objects(images, image_run.scores, objects, object_run.scores, b,
                                    seed)
    else:
        chosen = _select_images(images, image_run.scores, b, mode, seed)
    summary = _summary(images, image_run.scores, chosen, mode=mode, budget=b)
    info = {"curate": {"mode": mode, "seed": seed, "budget": b, "model": images.model,
                       "size": images.size, "from_split": from_split, "summary": summary}}
    asset_ids = sorted(int(a) for a in images.ids[chosen])
    with ws.session() as s, s.begin():
        ds = queries.get_dataset(s, images.dataset_id)
        create_split(s, ds, name, asset_ids, description=f"Auto-Curate ({mode}, seed {seed})",
                     info=info, replace=replace)
    return Selection(images.dataset, name, mode, seed, asset_ids, summary)


def _check_new_split(ws: Workspace, dataset: str | int, name: str, replace: bool) -> None:
    """Fail before any work when the split name is taken (and not to be replaced)."""
    if not name or not name.strip():
        raise ValidationError("the curated split needs a name (--name)")
    with ws.session() as s:
        ds = queries.get_dataset(s, dataset)
        try:
            queries.get_split(s, ds, name)
        except NotFoundError:
            return
    if not replace:
        raise ConflictError(
            f"dataset {ds.name!r} already has a split {name!r}; choose another --name or "
            "pass --replace"
        )


def _select_images(
    pool: Pool, scores: ItemScores, budget: int, mode: str, seed: int
) -> np.ndarray:
    if mode == "unlabeled":
        return curate_unlabeled(pool.X, budget=budget, seed=seed, scores=scores)
    labeled = np.flatnonzero(pool.labeled)
    if len(labeled) < budget:
        raise ValidationError(
            f"dataset {pool.dataset!r} has {len(labeled):,} images with a single category but "
            f"the budget is {budget:,}; lower the budget or use --mode unlabeled"
        )
    mis = np.nan_to_num(scores.mislabel[labeled], nan=0.0) if scores.mislabel is not None else None
    margins = scores.margin[labeled] if scores.margin is not None else None
    picked = select_labeled(scores.reduced[labeled], pool.labels[labeled], budget=budget,
                            seed=seed, mislabel_scores=mis, margins=margins)
    return labeled[picked]


def _select_by_objects(
    images: Pool,
    image_scores: ItemScores,
    objects: Pool,
    object_scores: ItemScores,
    budget: int,
    seed: int,
) -> np.ndarray:
    """Image rows chosen through their objects; images without objects fill any rest."""
    in_pool = np.isin(objects.asset_of, images.ids)
    with_objects = len(np.unique(objects.asset_of[in_pool]))
    chosen: list[int] = []
    if with_objects:
        mis = object_scores.mislabel
        ids = select_images_by_objects(
            object_scores.reduced[in_pool], objects.labels[in_pool], objects.asset_of[in_pool],
            budget=min(budget, with_objects), seed=seed,
            mislabel_scores=None if mis is None else np.nan_to_num(mis[in_pool], nan=0.0),
            rarity_scores=object_scores.rarity[in_pool],
        )
        chosen = np.searchsorted(images.ids, ids).tolist()
    if len(chosen) < budget:  # the rest from images without objects, as for unlabeled data
        rest = np.setdiff1d(np.arange(len(images.ids)), chosen)
        sub = ItemScores(
            cluster=image_scores.cluster[rest], cluster_size=image_scores.cluster_size[rest],
            rarity=image_scores.rarity[rest], typicality=image_scores.typicality[rest],
            duplicate_group=image_scores.duplicate_group[rest],
            reduced=image_scores.reduced[rest],
        )
        more = curate_unlabeled(images.X[rest], budget=min(budget - len(chosen), len(rest)),
                                seed=seed, scores=_renumbered(sub))
        chosen += rest[more].tolist()
    return np.asarray(chosen, dtype=np.int64)


def _renumbered(scores: ItemScores) -> ItemScores:
    """``scores`` of a subset with cluster numbers made dense again (0..m-1)."""
    _, scores.cluster = np.unique(scores.cluster, return_inverse=True)
    scores.cluster = scores.cluster.astype(np.int64)
    return scores


def _summary(
    pool: Pool, scores: ItemScores, chosen: np.ndarray, *, mode: str, budget: int
) -> dict[str, Any]:
    """Class counts before/after, clusters covered, rare items and duplicates in the pick."""
    rare_cut = float(np.quantile(scores.rarity, 0.9))
    before = _class_counts(pool, np.arange(len(pool.ids)))
    after = _class_counts(pool, chosen)
    groups = scores.duplicate_group[chosen]
    return {
        "pool": len(pool.ids),
        "selected": len(chosen),
        "budget": budget,
        "mode": mode,
        "classes": [
            {"class": name, "pool": before.get(name, 0), "selected": after.get(name, 0)}
            for name in [*pool.class_names, "(no single label)"]
            if before.get(name, 0) or after.get(name, 0)
        ],
        "clusters": scores.n_clusters,
        "clusters_covered": len(np.unique(scores.cluster[chosen])),
        "rare_in_pool": int((scores.rarity >= rare_cut).sum()),
        "rare_selected": int((scores.rarity[chosen] >= rare_cut).sum()),
        "duplicate_groups_in_pool": len(np.unique(scores.duplicate_group[
            scores.duplicate_group >= 0])),
        "duplicates_selected_twice": int(len(groups[groups >= 0]) - len(np.unique(
            groups[groups >= 0]))),
        "likely_mislabeled_selected": int(np.nansum(scores.mislabel[chosen] > 0.5))
        if scores.mislabel is not None else 0,
    }


def _class_counts(pool: Pool, rows: np.ndarray) -> dict[str, int]:
    labels = pool.labels[rows]
    counts = {pool.class_names[c]: int(n) for c, n in enumerate(np.bincount(
        labels[labels >= 0], minlength=len(pool.class_names))) if n}
    if (labels < 0).any():
        counts["(no single label)"] = int((labels < 0).sum())
    return counts


# -- validation set ---------------------------------------------------------------------------
def validation_set(
    ws: Workspace,
    dataset: str | int,
    *,
    size: int,
    name: str = "val",
    exclude: str | None = None,
    seed: int = 0,
    model: str = BUILTIN,
    embed_size: int | None = None,
    replace: bool = False,
    verify: bool = True,
) -> Selection:
    """A validation split of ``size`` labeled images: every class, some rare cases, no likely
    mislabels, none of the images of split ``exclude`` (the training split)."""
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ValidationError(f"--size must be a positive number of images, got {size!r}")
    _check_new_split(ws, dataset, name, replace)
    pool = load_pool(ws, dataset, model=model, size=embed_size)
    excluded = np.zeros(len(pool.ids), bool)
    if exclude is not None:
        with ws.session() as s:
            ds = queries.get_dataset(s, pool.dataset_id)
            sp = queries.get_split(s, ds, exclude)
            members = np.fromiter(s.scalars(select(SplitAssetRow.asset_id).where(
                SplitAssetRow.split_id == sp.id)), np.int64)
        excluded = np.isin(pool.ids, members)
    labeled = np.flatnonzero(pool.labeled & ~excluded)
    if len(labeled) < size:
        where = f" outside split {exclude!r}" if exclude else ""
        raise ValidationError(
            f"dataset {pool.dataset!r} has {len(labeled):,} labeled images{where}; a validation "
            f"set of {size:,} needs at least that many (lower --size)"
        )
    run = _score_and_store(ws, pool, seed=seed, verify=verify)
    mis = run.scores.mislabel
    picked = select_validation(
        pool.labels[labeled], size=size, seed=seed,
        mislabel_scores=None if mis is None else mis[labeled],
        rarity_scores=run.scores.rarity[labeled],
    )
    chosen = labeled[picked]
    summary = _summary(pool, run.scores, chosen, mode="validation", budget=size)
    summary["excluded_split"] = exclude
    asset_ids = sorted(int(a) for a in pool.ids[chosen])
    info = {"curate": {"mode": "validation", "seed": seed, "budget": size, "model": pool.model,
                       "size": pool.size, "exclude": exclude, "summary": summary}}
    with ws.session() as s, s.begin():
        ds = queries.get_dataset(s, pool.dataset_id)
        create_split(s, ds, name, asset_ids, description=f"Auto-Curate validation (seed {seed})",
                     info=info, replace=replace)
    return Selection(pool.dataset, name, "validation", seed, asset_ids, summary)


# -- mislabels --------------------------------------------------------------------------------
def mislabels(
    ws: Workspace,
    dataset: str | int,
    *,
    top: int | None = None,
    objects: bool = False,
    min_score: float = 0.0,
    recompute: bool = False,
    model: str = BUILTIN,
    size: int | None = None,
) -> list[dict[str, Any]]:
    """Labeled items most likely mislabeled first: score, given and suggested class.

    Uses the stored scores (``compute_scores``), computing them first when there are none
    or ``recompute`` is set.
    """
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
        raise ValidationError(f"--top must be a positive number, got {top!r}")
    table = ObjectScoreRow if objects else AssetScoreRow
    with ws.session() as s:
        ds = queries.get_dataset(s, dataset)
        have = s.scalar(select(table.mislabel_score).where(
            table.dataset_id == ds.id, table.mislabel_score.is_not(None)).limit(1))
    if recompute or have is None:
        run = compute_scores(ws, ds.id, model=model, size=size, objects=objects)
        if run.labeled < 2:
            raise ValidationError(
                f"dataset {ds.name!r} has {run.labeled} labeled "
                f"{'objects' if objects else 'images'}; mislabel ranking needs labels of at "
                "least 2 classes"
            )
    return _ranked_mislabels(ws, ds.id, table, top=top, min_score=min_score)


def _ranked_mislabels(
    ws: Workspace, dataset_id: int, table: Any, *, top: int | None, min_score: float
) -> list[dict[str, Any]]:
    given = AnnotationRow
    with ws.session() as s:
        stmt = (
            select(table, AssetRow.path)
            .join(AssetRow, AssetRow.id == table.asset_id)
            .where(table.dataset_id == dataset_id, table.mislabel_score.is_not(None),
                   table.mislabel_score >= min_score)
            .order_by(table.mislabel_score.desc(), table.asset_id)
        )
        if top is not None:
            stmt = stmt.limit(top)
        rows = s.execute(stmt).all()
        names = dict(s.execute(select(LabelClassRow.id, LabelClassRow.name)).all())
        if table is ObjectScoreRow:
            ann_ids = [r.annotation_id for r, _ in rows]
            label_of = dict(s.execute(select(given.id, given.class_id)
                                      .where(given.id.in_(ann_ids))).all()) if ann_ids else {}
        else:
            label_of = _single_category(s, [r.asset_id for r, _ in rows])
    out = []
    for r, path in rows:
        item = {"asset_id": r.asset_id, "path": path}
        if table is ObjectScoreRow:
            item["annotation_id"] = r.annotation_id
            cls = label_of.get(r.annotation_id)
        else:
            cls = label_of.get(r.asset_id)
        item.update({
            "label": names.get(cls), "suggested": names.get(r.suggested_class_id),
            "score": round(float(r.mislabel_score), 6), "cluster": r.cluster,
            "flagged": bool(r.flagged),
        })
        out.append(item)
    return out


def _single_category(s: Any, asset_ids: list[int]) -> dict[int, int]:
    out: dict[int, int] = {}
    for i in range(0, len(asset_ids), 5000):
        chunk = asset_ids[i : i + 5000]
        for asset, cls in s.execute(
            select(AnnotationRow.asset_id, AnnotationRow.class_id)
            .where(AnnotationRow.asset_id.in_(chunk), AnnotationRow.bbox_w.is_(None),
                   AnnotationRow.polygons.is_(None), AnnotationRow.keypoints.is_(None))
        ):
            out[asset] = cls
    return out


def mark_for_review(
    ws: Workspace, dataset: str | int, items: list[dict[str, Any]]
) -> int:
    """Flag the listed items (from ``mislabels``) for review and tag their images
    ``needs-review`` (so `labelwise assets --tag needs-review` lists them). Returns how many
    images were tagged."""
    asset_ids = sorted({int(i["asset_id"]) for i in items})
    ann_ids = [int(i["annotation_id"]) for i in items if "annotation_id" in i]
    with ws.session() as s, s.begin():
        ds = queries.get_dataset(s, dataset)
        for i in range(0, len(asset_ids), 5000):
            chunk = asset_ids[i : i + 5000]
            if not ann_ids:
                s.execute(update(AssetScoreRow).where(AssetScoreRow.asset_id.in_(chunk))
                          .values(flagged=True))
            s.execute(delete(AssetTagRow).where(AssetTagRow.asset_id.in_(chunk),
                                                AssetTagRow.tag == REVIEW_TAG))
        for i in range(0, len(ann_ids), 5000):
            s.execute(update(ObjectScoreRow)
                      .where(ObjectScoreRow.annotation_id.in_(ann_ids[i : i + 5000]))
                      .values(flagged=True))
        bulk_insert(s.connection(), "asset_tags", ("asset_id", "tag", "dataset_id"),
                    ((a, REVIEW_TAG, ds.id) for a in asset_ids))
    return len(asset_ids)


# -- browsing the stored scores ---------------------------------------------------------------
SORT_KEYS = ("asset_id", "rarity", "typicality", "mislabel_score", "cluster")


def list_scores(
    ws: Workspace,
    dataset: str | int,
    *,
    sort: str = "asset_id",
    descending: bool | None = None,
    cluster: int | None = None,
    duplicates_only: bool = False,
    flagged: bool | None = None,
    min_rarity: float | None = None,
    min_mislabel: float | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> dict[str, Any]:
    """A page of a dataset's stored image scores, filtered and sorted.

    ``sort`` is one of ``SORT_KEYS`` (default order: descending for the scores, ascending
    for ids and clusters). Pages are keyset-paginated on ``(sort value, asset id)`` over the
    ``asset_scores`` indexes: pass ``next_cursor`` back as ``cursor``.
    """
    if sort not in SORT_KEYS:
        raise ValidationError(f"unknown sort key {sort!r}; choose one of {', '.join(SORT_KEYS)}")
    if not 1 <= limit <= queries.MAX_PAGE:
        raise ValidationError(f"limit must be between 1 and {queries.MAX_PAGE}, got {limit}")
    if descending is None:
        descending = sort in ("rarity", "typicality", "mislabel_score")
    t = AssetScoreRow
    key_col = getattr(t, sort)
    with ws.session() as s:
        ds = queries.get_dataset(s, dataset)
        q = select(t, AssetRow.path).join(AssetRow, AssetRow.id == t.asset_id).where(
            t.dataset_id == ds.id)
        if cluster is not None:
            q = q.where(t.cluster == cluster)
        if duplicates_only:
            q = q.where(t.duplicate_group.is_not(None))
        if flagged is not None:
            q = q.where(t.flagged.is_(flagged))
        if min_rarity is not None:
            q = q.where(t.rarity >= min_rarity)
        if min_mislabel is not None or sort == "mislabel_score":
            q = q.where(t.mislabel_score.is_not(None))
            if min_mislabel is not None:
                q = q.where(t.mislabel_score >= min_mislabel)
        after = _decode_score_cursor(cursor, sort)
        if after is not None:
            pair = tuple_(key_col, t.asset_id) if sort != "asset_id" else t.asset_id
            bound = tuple_(*after) if sort != "asset_id" else after[1]
            q = q.where(pair < bound if descending else pair > bound)
        cols = [key_col] if sort == "asset_id" else [key_col, t.asset_id]
        q = q.order_by(*(c.desc() if descending else c for c in cols)).limit(limit + 1)
        rows = s.execute(q).all()
        names = dict(s.execute(select(LabelClassRow.id, LabelClassRow.name)
                               .where(LabelClassRow.schema_id == ds.schema_id)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    items = [_score_public(r, path, names) for r, path in rows]
    last = rows[-1][0] if rows else None
    return {
        "items": items,
        "next_cursor": _encode_score_cursor(getattr(last, sort), last.asset_id)
        if more and last is not None else None,
    }


def _score_public(r: AssetScoreRow, path: str, names: dict[int, str]) -> dict[str, Any]:
    return {
        "asset_id": r.asset_id, "path": path, "cluster": r.cluster,
        "cluster_size": r.cluster_size, "rarity": round(r.rarity, 6),
        "typicality": round(r.typicality, 6), "duplicate_group": r.duplicate_group,
        "mislabel_score": None if r.mislabel_score is None else round(r.mislabel_score, 6),
        "suggested_class": names.get(r.suggested_class_id), "flagged": r.flagged,
        "model": r.model, "size": r.size,
    }


def _encode_score_cursor(value: float, asset_id: int) -> str:
    raw = json.dumps([value, asset_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_score_cursor(cursor: str | None, sort: str) -> tuple[float | int, int] | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value, asset_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(asset_id, int) or not 0 <= asset_id < 2**63:
            raise ValueError(asset_id)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(value)
        if sort in ("asset_id", "cluster") and not isinstance(value, int):
            raise TypeError(value)
        return value, asset_id
    except (ValueError, TypeError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValidationError(
            f"invalid cursor {cursor!r}; pass the next_cursor of the previous page with the "
            "same sort"
        ) from err

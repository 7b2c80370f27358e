"""Active learning on a workspace: which unlabeled images to label next, stored as a split.

The pool is the dataset's embedded images without a settled label of the model's kind (or of
any kind without a model): a person's label, or a pre-label accepted or edited
(``training_data.settled``). With a model, each pool image gets the model's uncertainty;
without one every image is equally uncertain and the pick is by diversity alone.
``select_next_batch`` then takes the most uncertain images spread over the pool, never two
near-duplicates, and never one that nearly duplicates an image labeled already.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import select

from labelwise.autolabel import training_data as data
from labelwise.autolabel.versions import get_model, get_version
from labelwise.db import queries
from labelwise.db.models import AnnotationRow, AssetScoreRow
from labelwise.db.splits import create_split
from labelwise.embeddings.backbones import BUILTIN
from labelwise.errors import ConflictError, NotFoundError, ValidationError

if TYPE_CHECKING:
    from labelwise.workspace import Workspace


def next_batch(
    ws: Workspace,
    dataset: str | int,
    *,
    budget: int | str,
    name: str,
    model: str | None = None,
    version: int | None = None,
    seed: int = 0,
    replace: bool = False,
) -> dict[str, Any]:
    """Pick ``budget`` images (a count or "5%" of the pool) to label next, as split ``name``.

    Returns the split, the picked asset ids (in pick order), the pool size and the mean
    uncertainty of the pick against the pool's.
    """
    from labelwise.autolabel.active import select_next_batch
    from labelwise.curate.service import parse_budget
    from labelwise.embeddings.search import resolve_size
    from labelwise.embeddings.store import load_embeddings

    if not name or not name.strip():
        raise ValidationError("the batch needs a split name (--name)")
    with ws.session() as s:
        ds = queries.get_dataset(s, dataset)
        _check_new_split(s, ds, name, replace)
        task, folder, v = None, None, None
        if model is not None:
            m = get_model(s, model)
            ver = get_version(s, m, version)
            task, folder, v = m.task, ws.path / ver.path, ver.version
            emb = (ver.card.get("embedding") or {}) if task in ("category", "multilabel") else {}
        else:
            emb = {}
        labeled = (data.labeled_assets(s, ds.id, task) if task is not None
                   else _any_settled(s, ds.id))
        ds_id, ds_name = ds.id, ds.name
    emb_model = emb.get("model") or BUILTIN
    size = int(emb["size"]) if emb.get("size") else resolve_size(ws, emb_model, None,
                                                                dataset=ds_id)
    ids, X = load_embeddings(ws, ds_id, model=emb_model, size=size)
    is_labeled = np.isin(ids, np.fromiter(labeled, np.int64, len(labeled)))
    pool_ids, X_pool = ids[~is_labeled], X[~is_labeled]
    if not len(pool_ids):
        raise ValidationError(f"every embedded image of dataset {ds_name!r} is labeled "
                              "already; nothing to pick")
    b = parse_budget(budget, len(pool_ids))
    u = _uncertainty(ws, task, folder, X_pool, pool_ids)
    picks = select_next_batch(X_pool, u, budget=b, seed=seed,
                              duplicate_groups=_duplicate_groups(ws, ds_id, pool_ids),
                              X_labeled=X[is_labeled] if is_labeled.any() else None)
    chosen = pool_ids[picks]
    info = {"autolabel_next": {"model": model, "version": v, "budget": b, "seed": seed,
                               "embedding": {"model": emb_model, "size": size}}}
    with ws.session() as s, s.begin():
        create_split(s, queries.get_dataset(s, ds_id), name, chosen.tolist(),
                     description=f"Auto-Label next batch ({model or 'diversity only'})",
                     info=info, replace=replace)
    return {
        "dataset": ds_name, "split": name, "model": model, "version": v, "budget": b,
        "pool": len(pool_ids), "labeled": int(is_labeled.sum()),
        "asset_ids": [int(a) for a in chosen],
        "mean_uncertainty_picked": float(u[picks].mean()) if len(picks) else None,
        "mean_uncertainty_pool": float(u.mean()),
    }


def _check_new_split(s, ds, name: str, replace: bool) -> None:
    try:
        queries.get_split(s, ds, name)
    except NotFoundError:
        return
    if not replace:
        raise ConflictError(f"dataset {ds.name!r} already has a split {name!r}; choose "
                            "another --name or pass --replace")


def _any_settled(s, ds_id: int) -> set[int]:
    return set(s.scalars(select(AnnotationRow.asset_id).where(
        AnnotationRow.dataset_id == ds_id, data.settled()).distinct()))


def _uncertainty(ws, task, folder, X_pool: np.ndarray, pool_ids: np.ndarray) -> np.ndarray:
    if task is None:
        return np.ones(len(pool_ids))
    if task in ("category", "multilabel"):
        from labelwise.autolabel.store import StoredClassifier

        stored = StoredClassifier(folder)
        # The head's own doubt (its decision boundary) is what the next labels teach it.
        return stored.apply(X_pool, smooth=False).uncertainty
    from labelwise.autolabel import dense_service
    from labelwise.autolabel.versions import DENSE_DIR, read_dense_info

    info = read_dense_info(folder)
    scores = {int(p.asset_id): float(p.uncertainty) for p in dense_service.apply_dense(
        ws, folder=folder / DENSE_DIR, meta=info["meta"], asset_ids=pool_ids.tolist())}
    return np.array([scores.get(int(a), 1.0) for a in pool_ids])


def _duplicate_groups(ws, ds_id: int, pool_ids: np.ndarray) -> list[np.ndarray] | None:
    """Near-duplicate groups Auto-Curate stored (``labelwise curate scores``), as positions."""
    with ws.session() as s:
        rows = s.execute(select(AssetScoreRow.asset_id, AssetScoreRow.duplicate_group).where(
            AssetScoreRow.dataset_id == ds_id, AssetScoreRow.duplicate_group.is_not(None))).all()
    if not rows:
        return None
    pos = {int(a): i for i, a in enumerate(pool_ids.tolist())}
    groups: dict[int, list[int]] = {}
    for asset_id, group in rows:
        if asset_id in pos:
            groups.setdefault(group, []).append(pos[asset_id])
    return [np.array(g, np.int64) for g in groups.values() if len(g) > 1]

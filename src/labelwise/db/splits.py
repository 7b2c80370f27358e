"""Create and list named splits of a dataset."""

from __future__ import annotations

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from labelwise.db.bulk import bulk_insert
from labelwise.db.models import AssetRow, AssetTagRow, DatasetRow, SplitAssetRow, SplitRow
from labelwise.errors import ConflictError, LabelwiseError


def create_split(
    session: Session,
    dataset: DatasetRow,
    name: str,
    asset_ids: list[int],
    *,
    description: str = "",
    info: dict | None = None,
    replace: bool = False,
) -> SplitRow:
    """Create split ``name`` holding ``asset_ids``; ``replace`` overwrites an existing one."""
    if not name or not name.strip():
        raise LabelwiseError("a split needs a name")
    row = session.scalar(
        select(SplitRow).where(SplitRow.dataset_id == dataset.id, SplitRow.name == name)
    )
    if row is not None and not replace:
        raise ConflictError(
            f"dataset {dataset.name!r} already has a split {name!r}; pick another name or replace it"
        )
    if row is None:
        row = SplitRow(dataset_id=dataset.id, name=name)
        session.add(row)
    row.description = description
    row.info = info or {}
    session.flush()
    session.execute(delete(SplitAssetRow).where(SplitAssetRow.split_id == row.id))
    ids = sorted(set(int(a) for a in asset_ids))
    if ids:
        found = 0
        for i in range(0, len(ids), 5000):
            chunk = ids[i : i + 5000]
            found += session.scalar(
                select(func.count()).where(
                    AssetRow.dataset_id == dataset.id, AssetRow.id.in_(chunk)
                )
            )
        if found != len(ids):
            raise LabelwiseError(
                f"{len(ids) - found} of the asset ids are not in dataset {dataset.name!r}"
            )
        bulk_insert(session.connection(), "split_assets", ("split_id", "asset_id"),
                    ((row.id, a) for a in ids))
    return row


def random_asset_ids(session: Session, dataset: DatasetRow, *, fraction: float, seed: int) -> list[int]:
    """A reproducible random fraction of a dataset's assets."""
    if not 0 < fraction <= 1:
        raise LabelwiseError(f"fraction must be in (0, 1], got {fraction}")
    ids = np.array(
        session.scalars(
            select(AssetRow.id).where(AssetRow.dataset_id == dataset.id).order_by(AssetRow.id)
        ).all(),
        dtype=np.int64,
    )
    k = round(len(ids) * fraction)
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(ids, size=k, replace=False).tolist()) if k else []


def tagged_asset_ids(session: Session, dataset: DatasetRow, tag: str) -> list[int]:
    return list(
        session.scalars(
            select(AssetTagRow.asset_id).where(
                AssetTagRow.dataset_id == dataset.id, AssetTagRow.tag == tag
            )
        )
    )


def split_from(
    session: Session,
    dataset: DatasetRow,
    name: str,
    *,
    fraction: float | None = None,
    seed: int = 0,
    tag: str | None = None,
    paths: list[str] | None = None,
    replace: bool = False,
) -> tuple[SplitRow, int, str]:
    """Create a split from exactly one of a random ``fraction``, a ``tag`` or image ``paths``.

    Returns the split, its size and a description of how it was chosen.
    """
    if sum(x is not None for x in (fraction, tag, paths)) != 1:
        raise LabelwiseError("give exactly one of a random fraction, a tag or a list of paths")
    if fraction is not None:
        ids = random_asset_ids(session, dataset, fraction=fraction, seed=seed)
        how = f"random {fraction:g} (seed {seed})"
    elif tag is not None:
        ids, how = tagged_asset_ids(session, dataset, tag), f"tag {tag}"
    else:
        by_path = dict(
            session.execute(
                select(AssetRow.path, AssetRow.id).where(AssetRow.dataset_id == dataset.id)
            ).all()
        )
        missing = [p for p in paths if p not in by_path]
        if missing:
            raise LabelwiseError(
                f"{len(missing)} path(s) are not in dataset {dataset.name!r}", problems=missing
            )
        ids, how = [by_path[p] for p in paths], f"{len(paths)} listed paths"
    row = create_split(session, dataset, name, ids, description=how, replace=replace)
    return row, len(set(ids)), how

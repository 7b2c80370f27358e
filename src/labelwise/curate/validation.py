"""A clean validation set: every class, some rare cases, no likely-mislabeled items.

A validation set should look like the data a model will meet (so most of it is drawn at
random, in class proportions) but it must not lie: every wrong label in it mis-scores a
correct prediction. ``select_validation``:

1. leaves out items already in the training split, and items whose mislabel score says
   their label is more likely wrong than right (``MISLABEL_MAX``), and, while enough
   remain, the most suspicious ``SUSPICIOUS_SHARE`` of each class;
2. gives every class a floor of ``MIN_PER_CLASS_SHARE`` of an even split (rare classes are
   never missing), the rest in proportion to class size;
3. within a class, spends ``RARE_SHARE`` of its quota on the rarest remaining items (the
   hard, unusual cases a random draw under-samples) and draws the rest at random.

    >>> import numpy as np
    >>> labels = np.r_[np.zeros(90, int), np.ones(10, int)]
    >>> chosen = select_validation(labels, size=20, seed=0)
    >>> sorted(set(labels[chosen].tolist()))
    [0, 1]
"""

from __future__ import annotations

import numpy as np

from labelwise.curate.labeled import class_quotas
from labelwise.curate.scores import check_budget, check_labels
from labelwise.errors import ValidationError

#: Items whose mislabel score exceeds this are never chosen (their label is more likely wrong).
MISLABEL_MAX = 0.5
#: Share of each class's most suspicious items also left out while enough others remain.
SUSPICIOUS_SHARE = 0.15
#: Rows kept of a class whose rows all look mislabeled (its least suspicious ones).
SUSPECT_CLASS_KEEP = 3
#: Share of an even per-class split every class is guaranteed (when it has that many items).
MIN_PER_CLASS_SHARE = 0.5
#: Share of each class's quota given to its rarest items.
RARE_SHARE = 0.1


def select_validation(
    labels: np.ndarray,
    *,
    size: int,
    seed: int = 0,
    mislabel_scores: np.ndarray | None = None,
    rarity_scores: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """Positions of a validation set of ``size`` labeled rows.

    Args:
        labels: (n,) class index of each row.
        size: rows to choose, 1..(rows left after ``exclude``).
        mislabel_scores: optional (n,) from ``mislabel_scores`` (higher = more likely wrong).
        rarity_scores: optional (n,) from ``rarity`` (higher = rarer).
        exclude: positions that may not be chosen (the training split).

    Returns: (size,) int64 positions, sorted.
    """
    lab = check_labels(labels, n=len(np.asarray(labels)))
    n = len(lab)
    suspicion = _per_row(mislabel_scores, n, "mislabel_scores")
    rare = _per_row(rarity_scores, n, "rarity_scores")
    allowed = np.ones(n, bool)
    if exclude is not None:
        ex = np.asarray(exclude, dtype=np.int64).ravel()
        if len(ex) and (ex.min() < 0 or ex.max() >= n):
            raise ValidationError(f"exclude holds positions outside 0..{n - 1}")
        allowed[ex] = False
    b = check_budget(size, n=int(allowed.sum()))
    pool = np.flatnonzero(allowed)
    if mislabel_scores is not None:
        pool = _trusted(lab, allowed, suspicion, b)
    quotas = _quotas(np.bincount(lab[pool], minlength=int(lab.max()) + 1 if n else 0), b)
    rng = np.random.default_rng(seed)
    rare_share = 0.0 if rarity_scores is None else RARE_SHARE
    chosen = [
        _pick_in_class(pool[lab[pool] == c], int(q), rare, rare_share, rng)
        for c, q in enumerate(quotas)
        if q > 0
    ]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def _per_row(values: np.ndarray | None, n: int, name: str) -> np.ndarray:
    if values is None:
        return np.zeros(n)
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != (n,):
        raise ValidationError(f"{name} must have one value per row ({n}), got shape {arr.shape}")
    return np.nan_to_num(arr, nan=0.0)


def _trusted(lab: np.ndarray, allowed: np.ndarray, suspicion: np.ndarray, size: int) -> np.ndarray:
    """Allowed rows minus the suspicious ones, class by class.

    A class whose rows all look suspicious keeps its ``SUSPECT_CLASS_KEEP`` least
    suspicious ones, so no class goes missing; the whole set keeps at least ``size`` rows.
    """
    pool = np.flatnonzero(allowed)
    keep, spare = [], []
    for c in np.unique(lab[pool]):
        members = pool[lab[pool] == c]
        order = members[np.argsort(suspicion[members], kind="stable")]
        clean = int((suspicion[members] <= MISLABEL_MAX).sum())
        n_keep = clean - int(clean * SUSPICIOUS_SHARE) or min(SUSPECT_CLASS_KEEP, len(order))
        keep.append(order[:n_keep])
        spare.append(order[n_keep:])
    kept = np.concatenate(keep)
    if len(kept) < size:  # top up with the least suspicious of the rest
        rest = np.concatenate(spare)
        rest = rest[np.argsort(suspicion[rest], kind="stable")]
        kept = np.r_[kept, rest[: size - len(kept)]]
    return np.sort(kept)


def _quotas(counts: np.ndarray, size: int) -> np.ndarray:
    """A floor for every class, the rest in proportion to class size."""
    present = counts > 0
    floor = np.minimum(counts, int(MIN_PER_CLASS_SHARE * size / max(int(present.sum()), 1)))
    floor = np.where(present, np.maximum(floor, 1), 0)
    if floor.sum() > size:  # more classes than rows: one each for the largest classes
        floor = class_quotas(np.minimum(counts, 1), size)
    left = size - int(floor.sum())
    room = counts - floor
    share = room * left / max(int(room.sum()), 1)
    extra = np.minimum(np.floor(share).astype(np.int64), room)
    short = left - int(extra.sum())
    order = np.argsort(-(share - extra), kind="stable")  # largest remainders first
    for c in order:
        if short == 0:
            break
        if extra[c] < room[c]:
            extra[c] += 1
            short -= 1
    return floor + extra


def _pick_in_class(
    members: np.ndarray,
    quota: int,
    rare: np.ndarray,
    rare_share: float,
    rng: np.random.Generator,
) -> np.ndarray:
    if quota >= len(members):
        return members
    n_rare = round(quota * rare_share)
    rarest = members[np.argsort(-rare[members], kind="stable")[:n_rare]] if n_rare else members[:0]
    rest = np.setdiff1d(members, rarest)
    return np.r_[rarest, rng.choice(rest, quota - n_rare, replace=False)]

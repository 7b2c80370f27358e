"""Which images to label next: the most uncertain ones, spread out, never near-duplicates.

``select_next_batch`` (uncertainty first, then diversity; in the spirit of Citovsky et al.
2021, "Batch active learning at scale"):

1. candidates: the ``candidates_factor`` x ``budget`` items the current model is least sure
   about (uncertainty from ``labelwise.autolabel.uncertainty``);
2. diversity: the candidates are clustered into ``budget`` k-means clusters (cosine), and
   each round takes, from every cluster in turn (largest first), its most uncertain
   remaining item: a batch of near-identical doubts teaches a model what one of them would;
3. no near-duplicates: an item is skipped when it is in the duplicate group of an item
   already taken (``duplicate_groups``), or closer than ``min_distance`` (cosine distance)
   to an item taken or to an already labeled one (``X_labeled``).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 16)).astype(np.float32)
    >>> u = rng.uniform(size=200)
    >>> len(select_next_batch(X, u, budget=10))
    10
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from labelwise.curate.scores import check_budget, check_embeddings
from labelwise.curate.select import duplicate_group_ids
from labelwise.embeddings.index import l2_normalize
from labelwise.errors import ValidationError

#: Candidates per item of the budget: enough to choose a spread from, few enough that all
#: are doubtful. Fashion-MNIST rounds of 250 (docs/algorithms.md), accuracy at 2,500 labels
#: by factor: 2: 0.879, 4: 0.882, 6: 0.880, 8: 0.878, 16: 0.879.
CANDIDATES_FACTOR = 4
#: Cosine distance under which two items count as near-duplicates (labelwise's duplicate
#: search flags pairs under 0.05; this is a little wider, as labeling both is a waste).
MIN_DISTANCE = 0.05


def select_next_batch(
    X: Any,
    uncertainty: Any,
    *,
    budget: int,
    seed: int = 0,
    candidates_factor: int = CANDIDATES_FACTOR,
    duplicate_groups: Sequence[Any] | None = None,
    min_distance: float = MIN_DISTANCE,
    X_labeled: Any = None,
) -> np.ndarray:
    """Positions (m,) int64 of the next items to label, m <= ``budget``, in pick order.

    Args:
        X: (n, d) embeddings of the unlabeled pool.
        uncertainty: (n,) current model's uncertainty per item (higher = less sure).
        budget: items to pick, 1..n.
        candidates_factor: the most uncertain ``candidates_factor * budget`` items are the
            candidates (all items when that is more than the pool).
        duplicate_groups: near-duplicate groups (``DuplicateGroup`` objects or arrays of
            positions); at most one item of a group is picked.
        min_distance: items closer than this cosine distance to a picked or labeled item are
            skipped (0 turns the check off).
        X_labeled: (m, d) embeddings of items labeled already.

    Fewer than ``budget`` items are returned only when near-duplicates leave too few.
    """
    arr = check_embeddings(X)
    n = len(arr)
    b = check_budget(budget, n=n)
    u = np.asarray(uncertainty, dtype=np.float64)
    if u.shape != (n,) or not np.isfinite(u).all():
        raise ValidationError(
            f"uncertainty must be {n} finite numbers (one per row of X), got shape {u.shape}"
        )
    if isinstance(candidates_factor, bool) or not isinstance(candidates_factor, int) \
            or candidates_factor < 1:
        raise ValidationError(f"candidates_factor must be an integer >= 1, "
                              f"got {candidates_factor!r}")
    if not 0 <= min_distance < 2:
        raise ValidationError(f"min_distance must be a cosine distance in [0, 2), "
                              f"got {min_distance!r}")
    groups = duplicate_group_ids(duplicate_groups, n=n)
    Xn = l2_normalize(arr)
    # Most uncertain first; position breaks ties so the result is deterministic.
    order = np.lexsort((np.arange(n), -u))
    cand = order[: min(n, b * candidates_factor)]
    blocked = _near_labeled(Xn[cand], X_labeled, min_distance, dim=arr.shape[1])
    clusters = _clusters(Xn[cand], b, seed)
    return _round_robin(Xn, cand, clusters, blocked, groups, budget=b,
                        min_distance=min_distance)


def _near_labeled(Xc: np.ndarray, X_labeled: Any, min_distance: float, *, dim: int) -> np.ndarray:
    blocked = np.zeros(len(Xc), bool)
    if X_labeled is None or min_distance <= 0:
        return blocked
    L = l2_normalize(check_embeddings(X_labeled))
    if L.shape[1] != dim:
        raise ValidationError(
            f"X_labeled has {L.shape[1]} dimensions but X has {dim}; pass embeddings of one model"
        )
    for s in range(0, len(L), 4096):
        blocked |= (1.0 - Xc @ L[s:s + 4096].T).min(axis=1) < min_distance
    return blocked


def _clusters(Xc: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Spherical k-means (FAISS, 20 iterations) of unit rows ``Xc`` into ``k`` clusters."""
    if k >= len(Xc):
        return np.arange(len(Xc))
    import faiss

    km = faiss.Kmeans(Xc.shape[1], k, niter=20, seed=seed, spherical=True,
                      min_points_per_centroid=1, max_points_per_centroid=10**6)
    km.train(np.ascontiguousarray(Xc, dtype=np.float32))
    _, labels = km.index.search(np.ascontiguousarray(Xc, dtype=np.float32), 1)
    return labels.ravel().astype(np.int64)


def _round_robin(
    Xn: np.ndarray,
    cand: np.ndarray,
    clusters: np.ndarray,
    blocked: np.ndarray,
    groups: np.ndarray,
    *,
    budget: int,
    min_distance: float,
) -> np.ndarray:
    """Take the most uncertain free candidate of each cluster in turn, largest cluster first.

    ``cand`` is sorted most uncertain first, so a cluster's members in ``cand`` order are its
    queue."""
    n_clusters = int(clusters.max()) + 1
    queues = [np.flatnonzero(clusters == c) for c in range(n_clusters)]
    turn = sorted(range(n_clusters), key=lambda c: (-len(queues[c]), c))
    heads = np.zeros(n_clusters, np.int64)
    chosen: list[int] = []
    taken_groups: set[int] = set()
    while len(chosen) < budget:
        progressed = False
        for c in turn:
            q = queues[c]
            while heads[c] < len(q):
                i = int(q[heads[c]])
                heads[c] += 1
                if _free(i, Xn, cand, chosen, blocked, groups, taken_groups, min_distance):
                    chosen.append(i)
                    g = int(groups[cand[i]])
                    if g >= 0:
                        taken_groups.add(g)
                    progressed = True
                    break
            if len(chosen) == budget:
                break
        if not progressed:
            break
    return cand[np.asarray(chosen, dtype=np.int64)]


def _free(i, Xn, cand, chosen, blocked, groups, taken_groups, min_distance) -> bool:
    if blocked[i] or int(groups[cand[i]]) in taken_groups:
        return False
    if min_distance > 0 and chosen:
        picked = Xn[cand[np.asarray(chosen)]]
        if (1.0 - picked @ Xn[cand[i]]).min() < min_distance:
            return False
    return True

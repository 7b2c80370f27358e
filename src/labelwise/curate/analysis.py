"""Every Auto-Curate score of a pool in one pass: one PCA, one k-NN graph, shared by all.

``score_items`` is what the service stores per asset (and per object): cluster, cluster size,
rarity, typicality, near-duplicate group and, for labeled items, the mislabel score with the
label the item more likely has. At 100,000 embeddings the scores take seconds, not minutes:
neighbourhoods and clusters of pools above 20,000 rows are computed on ``reduce_dimensions``
(PCA to 128-d), and the k-NN graph is built once; near-duplicate candidates from it are confirmed on the full
vectors, whose distances the duplicate thresholds were calibrated on.

    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(60, 16)).astype(np.float32)
    >>> s = score_items(np.r_[X, X[:1]], n_clusters=3)
    >>> bool(s.duplicate_group[0] == s.duplicate_group[60] >= 0)
    True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from labelwise.curate.mislabels import DEFAULT_K as VOTE_K
from labelwise.curate.mislabels import label_margins, mislabel_scores, out_of_fold_probs
from labelwise.curate.scores import (
    DEFAULT_DIMS,
    DEFAULT_K,
    _finite_mean,
    _kmeans,
    _typicality,
    check_embeddings,
    check_positive_int,
    reduce_dimensions,
)
from labelwise.curate.select import select_unlabeled
from labelwise.embeddings.duplicates import (
    DEFAULT_THRESHOLD,
    check_threshold,
    connected_components,
    duplicate_pairs,
)
from labelwise.embeddings.index import knn_graph, l2_normalize
from labelwise.errors import ValidationError

#: Pools larger than this are PCA-reduced (``reduce_dimensions``) before scoring.
REDUCE_ABOVE = 20_000
#: Largest number of clusters ``default_clusters`` proposes.
MAX_SCORE_CLUSTERS = 300
#: Neighbours whose full-vector distance is checked for near-duplicates.
DUPLICATE_K = 10

PairFilter = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class ItemScores:
    """Per-row scores of a pool, all (n,) arrays aligned with the rows of ``X``."""

    cluster: np.ndarray  # int64, 0 = largest cluster
    cluster_size: np.ndarray  # int64, members of the row's cluster
    rarity: np.ndarray  # float32, mean cosine distance to the k nearest rows (higher = rarer)
    typicality: np.ndarray  # float32, density within the cluster (higher = more typical)
    duplicate_group: np.ndarray  # int64, -1 = no near-duplicate; equal ids = copies
    mislabel: np.ndarray | None = None  # float32 in [0, 1], labeled pools only
    suggested: np.ndarray | None = None  # int64, the class the row more likely is
    margin: np.ndarray | None = None  # float32 in [-1, 1], out-of-fold label margin (labeled)
    reduced: np.ndarray | None = None  # unit vectors scored (PCA-reduced for large pools)

    @property
    def n_clusters(self) -> int:
        return int(self.cluster.max()) + 1 if len(self.cluster) else 0

    def duplicate_groups(self) -> list[np.ndarray]:
        """Groups of row positions that are near-duplicates of each other, largest first."""
        grouped = np.flatnonzero(self.duplicate_group >= 0)
        if not len(grouped):
            return []
        order = grouped[np.argsort(self.duplicate_group[grouped], kind="stable")]
        cuts = np.flatnonzero(np.diff(self.duplicate_group[order])) + 1
        return sorted(np.split(order, cuts), key=len, reverse=True)


def default_clusters(n: int) -> int:
    """Clusters for a pool of ``n`` rows: about sqrt(n), 2..``MAX_SCORE_CLUSTERS``."""
    return int(np.clip(round(np.sqrt(n)), min(2, n), MAX_SCORE_CLUSTERS))


def score_items(
    X: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    n_clusters: int | None = None,
    k: int = DEFAULT_K,
    seed: int = 0,
    dims: int = DEFAULT_DIMS,
    duplicate_threshold: float = DEFAULT_THRESHOLD,
    pair_filter: PairFilter | None = None,
    folds: int = 5,
    pred_probs: np.ndarray | None = None,
) -> ItemScores:
    """Cluster, rarity, typicality, near-duplicate group (and mislabel scores) of each row.

    Args:
        X: (n, d) raw embeddings.
        labels: optional (n,) class index of each row (-1 = unlabeled; only labeled rows
            get a mislabel score, NaN elsewhere).
        n_clusters: k-means clusters (default ``default_clusters(n)``).
        k: neighbours for rarity and typicality.
        duplicate_threshold: largest cosine distance between near-duplicates, on the full
            vectors (``labelwise.embeddings.duplicates``).
        pair_filter: a second check on candidate duplicate pairs (the pixel check).
        folds: out-of-fold folds for the mislabel model.
        pred_probs: (n, C) out-of-fold probabilities to use instead of training that model
            (rows of unlabeled items are ignored).

    Returns: an ``ItemScores``; deterministic given ``seed``.
    """
    arr = check_embeddings(X)
    n = len(arr)
    k = check_positive_int(k, name="k")
    threshold = check_threshold(duplicate_threshold)
    n_clusters = default_clusters(n) if n_clusters is None else n_clusters
    n_clusters = check_positive_int(n_clusters, name="n_clusters")
    if n_clusters > n:
        raise ValidationError(f"n_clusters {n_clusters} is larger than the {n} rows of X")
    lab = None if labels is None else _check_partial_labels(labels, n)

    # Small pools keep the full vectors (better neighbours and models, still seconds);
    # large ones are reduced once so every later step is 10x cheaper.
    R = reduce_dimensions(arr, dims=dims, seed=seed) if n > REDUCE_ABOVE else l2_normalize(arr)
    dist, nbr = knn_graph(R, max(k, DUPLICATE_K, VOTE_K))
    cluster, _ = _kmeans(R, n_clusters, seed)
    sizes = np.bincount(cluster, minlength=n_clusters)
    scores = ItemScores(
        cluster=cluster,
        cluster_size=sizes[cluster].astype(np.int64),
        rarity=_finite_mean(dist[:, :k]) if dist.shape[1] else np.zeros(n, np.float32),
        typicality=_typicality(R, cluster, k),
        duplicate_group=_duplicate_ids(arr, nbr[:, :DUPLICATE_K], threshold, pair_filter),
        reduced=R,
    )
    if lab is not None:
        scores.mislabel, scores.suggested, scores.margin = _mislabels(
            R, lab, (dist, nbr), folds, seed, pred_probs)
    return scores


def _check_partial_labels(labels: np.ndarray, n: int) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.shape != (n,) or (n and not np.issubdtype(arr.dtype, np.integer)):
        raise ValidationError(f"labels must be {n} integer class indices (-1 = unlabeled)")
    if n and arr.min() < -1:
        raise ValidationError("labels must be class indices >= 0, or -1 for unlabeled rows")
    return arr.astype(np.int64)


def _duplicate_ids(
    X: np.ndarray, nbr: np.ndarray, threshold: float, pair_filter: PairFilter | None
) -> np.ndarray:
    """Group id per row from candidate neighbours confirmed on the full vectors."""
    n = len(X)
    if nbr.shape[1] == 0:
        return np.full(n, -1, np.int64)
    Xn = l2_normalize(X)
    full = np.full(nbr.shape, np.inf, np.float32)
    for s in range(0, n, 8192):  # (rows, k) dot products of the full vectors, in blocks
        block = nbr[s : s + 8192]
        found = block >= 0
        sims = np.einsum("id,ikd->ik", Xn[s : s + 8192], Xn[np.maximum(block, 0)])
        full[s : s + 8192] = np.where(found, 1.0 - sims, np.inf)
    pairs, pair_dist = duplicate_pairs(full, nbr, threshold=threshold)
    if pair_filter is not None and len(pairs):
        pairs = pairs[np.asarray(pair_filter(pairs, pair_dist), dtype=bool)]
    components = connected_components(n, pairs)
    counts = np.bincount(components, minlength=int(components.max()) + 1)
    grouped = counts[components] > 1
    out = np.full(n, -1, np.int64)
    # Number groups 0, 1, ... in order of their first member: stable for the same data.
    _, first = np.unique(components[grouped], return_inverse=True)
    out[grouped] = first
    return out


def _mislabels(
    R: np.ndarray,
    labels: np.ndarray,
    neighbours: tuple[np.ndarray, np.ndarray],
    folds: int,
    seed: int,
    pred_probs: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mislabel scores, suggested labels and label margins of the labeled rows (NaN / -1
    for the rest)."""
    n = len(labels)
    score = np.full(n, np.nan, np.float32)
    suggested = np.full(n, -1, np.int64)
    margin = np.full(n, np.nan, np.float32)
    known = np.flatnonzero(labels >= 0)
    if len(known) < 2 or len(np.unique(labels[known])) < 2:
        return score, suggested, margin
    dist, nbr = neighbours
    if len(known) < n:  # votes among labeled rows only: search them again
        Rk = R[known]
        sub = knn_graph(Rk, VOTE_K)
    else:
        Rk, sub = R, (dist[:, :VOTE_K], nbr[:, :VOTE_K])
    lab = labels[known]
    if pred_probs is not None:
        probs = np.asarray(pred_probs)[known]
    else:
        probs = out_of_fold_probs(Rk, lab, folds=min(folds, len(known)), seed=seed)
    score[known], suggested[known] = mislabel_scores(Rk, lab, pred_probs=probs, neighbours=sub)
    margin[known] = label_margins(probs, lab)
    return score, suggested, margin


def curate_unlabeled(
    X: np.ndarray,
    *,
    budget: int,
    seed: int = 0,
    scores: ItemScores | None = None,
    dims: int = DEFAULT_DIMS,
) -> np.ndarray:
    """``select_unlabeled`` on PCA-reduced vectors, reusing ``scores`` when given.

    The selection the service runs. It always works on ``reduce_dimensions`` of ``X``: on
    the 10,000-image benchmark pool the reduced vectors chose better training sets than
    the full ones at 6 of 9 budgets (their clusters follow the main axes of variation).
    Near-duplicate groups and rarity come from ``scores``, and so do the clusters when
    ``scores`` were computed on the same reduced vectors and their number fits the budget.
    Returns the chosen positions in pick order.
    """
    arr = check_embeddings(X)
    if scores is not None and scores.reduced is not None and scores.reduced.shape[1] <= dims:
        R = scores.reduced
    else:
        R = reduce_dimensions(arr, dims=dims, seed=seed)
    if scores is None:
        return select_unlabeled(R, budget=budget, seed=seed)
    same_space = R is scores.reduced
    return select_unlabeled(
        R,
        budget=budget,
        seed=seed,
        duplicate_groups=scores.duplicate_groups(),
        clusters=scores.cluster if same_space else None,
        rarity_scores=scores.rarity,
    )

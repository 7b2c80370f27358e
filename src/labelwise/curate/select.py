"""Which items to label: selection kernels for an unlabeled pool.

All take raw float32 embeddings ``X`` (n, d), normalise them, and return the chosen row
positions as an int64 array of ``budget`` distinct positions, in the order they were picked
(the first ``m`` are what a budget of ``m`` would favour). Deterministic given ``seed``.

Baselines: ``select_random``, ``select_kcenter_greedy`` (Sener & Savarese 2018),
``select_typiclust`` (Hacohen et al. 2022). ``select_unlabeled`` is labelwise's own mix of
the two ideas, adapted to the budget; docs/algorithms.md explains the choices.

    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    >>> len(set(select_unlabeled(X, budget=5, seed=0).tolist()))
    5
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from labelwise.curate.scores import (
    DEFAULT_K,
    _faiss_kmeans,
    _kmeans,
    _rarity,
    _typicality,
    check_budget,
    check_embeddings,
)
from labelwise.embeddings.index import l2_normalize
from labelwise.errors import ValidationError

#: TypiClust's cap on the number of clusters (more clusters than this adds cost, not coverage).
MAX_CLUSTERS = 500
#: Budgets up to this size, or below this share of the pool, go to typical examples only.
TINY_BUDGET = 20
TINY_SHARE = 0.05
#: Largest share of the budget that ``select_unlabeled`` spends on rare / far-out items.
RARE_SHARE_MAX = 0.1
#: Rows rarer than this quantile of ``rarity`` count as outliers, picked last.
OUTLIER_QUANTILE = 0.9
#: Pool share at which half of ``RARE_SHARE_MAX`` goes to rare items.
RARE_SHARE_PIVOT = 0.25
#: From this share of the pool on, the selection is a stratified random sample over the
#: clusters (no typical heads, no rare share): never worse than random in expectation, and
#: what measured best at 25% and 50% of the benchmark pool.
STRATIFIED_SHARE = 0.2
#: Mean cluster size from which a cluster's first pick is the row nearest its centroid
#: rather than its most typical row: in a large cluster the densest spot of 20 neighbours
#: is often a tight sub-mode at its edge; the centroid's neighbour stands for all of it.
CENTROID_CLUSTER_SIZE = 200


# -- validation -------------------------------------------------------------------------------
def duplicate_group_ids(duplicate_groups: Sequence[Any] | None, *, n: int) -> np.ndarray:
    """Group number of each of ``n`` rows (-1 = in no group) from a list of groups.

    Each group is a ``DuplicateGroup`` (from ``labelwise.embeddings.duplicates``) or an array
    of row positions. A row in two groups is a ValidationError.
    """
    ids = np.full(n, -1, np.int64)
    for g, group in enumerate(duplicate_groups or []):
        members = np.asarray(getattr(group, "members", group), dtype=np.int64).ravel()
        if len(members) and (members.min() < 0 or members.max() >= n):
            raise ValidationError(
                f"duplicate group {g} holds positions outside 0..{n - 1}; "
                "pass groups by row position of X"
            )
        if (ids[members] >= 0).any():
            raise ValidationError(f"duplicate group {g} shares rows with an earlier group")
        ids[members] = g
    return ids


class _Picker:
    """Chosen positions in order, and which rows may still be picked (duplicates blocked)."""

    def __init__(self, n: int, group_ids: np.ndarray | None = None) -> None:
        self.available = np.ones(n, bool)
        self.group_ids = group_ids if group_ids is not None else np.full(n, -1, np.int64)
        self.chosen: list[int] = []

    def take(self, i: int) -> None:
        self.chosen.append(int(i))
        self.take_block(i)

    def take_block(self, i: int) -> None:
        """Make ``i`` and the rest of its duplicate group unavailable."""
        self.available[i] = False
        g = self.group_ids[i]
        if g >= 0:
            self.available[self.group_ids == g] = False

    def block_chosen(self) -> None:
        """Mark every chosen row and every member of their duplicate groups unavailable."""
        chosen = self.result()
        self.available[chosen] = False
        groups = self.group_ids[chosen]
        self.available[np.isin(self.group_ids, groups[groups >= 0])] = False

    def result(self) -> np.ndarray:
        return np.asarray(self.chosen, dtype=np.int64)


# -- baselines --------------------------------------------------------------------------------
def select_random(X: np.ndarray, *, budget: int, seed: int = 0) -> np.ndarray:
    """``budget`` positions drawn uniformly without replacement: (budget,) int64."""
    arr = check_embeddings(X)
    b = check_budget(budget, n=len(arr))
    return np.random.default_rng(seed).choice(len(arr), size=b, replace=False).astype(np.int64)


def select_kcenter_greedy(
    X: np.ndarray, *, budget: int, seed: int = 0, initial: np.ndarray | None = None
) -> np.ndarray:
    """k-center greedy (Sener & Savarese 2018): repeatedly take the row farthest from the chosen.

    Minimises (2-approximately) the coverage radius: the largest cosine distance from any row
    to its nearest chosen row. Starts from ``initial`` positions (not returned) or, without
    them, from a random row chosen with ``seed``.

    Returns: (budget,) int64 positions, in pick order.
    """
    arr = check_embeddings(X)
    b = check_budget(budget, n=len(arr))
    Xn = l2_normalize(arr)
    picker = _Picker(len(Xn))
    start = np.asarray(initial if initial is not None else [], dtype=np.int64).ravel()
    if len(start) and (start.min() < 0 or start.max() >= len(Xn)):
        raise ValidationError(f"initial holds positions outside 0..{len(Xn) - 1}")
    if len(start) == 0:
        first = int(np.random.default_rng(seed).integers(len(Xn)))
        picker.take(first)
        b -= 1
        start = np.array([first])
    else:
        picker.available[start] = False
    _kcenter_fill(Xn, picker, start, b)
    return picker.result()


def coverage_radius(X: np.ndarray, chosen: np.ndarray) -> float:
    """Largest cosine distance from a row of ``X`` (n, d) to its nearest ``chosen`` row.

    Lower = better coverage; what k-center greedy minimises.
    """
    Xn = l2_normalize(check_embeddings(X))
    idx = np.asarray(chosen, dtype=np.int64)
    if len(idx) == 0:
        raise ValidationError("chosen is empty; the coverage radius needs at least one row")
    return float(_nearest_distance(Xn, idx).max())


#: Above this many (row, chosen row) pairs the distance to the nearest chosen row is found
#: with a FAISS IVF index on the chosen rows instead of every dot product.
EXACT_NEAREST_PAIRS = 200_000_000


def _nearest_distance(Xn: np.ndarray, idx: np.ndarray, block: int = 1024) -> np.ndarray:
    """Cosine distance of each row of ``Xn`` to its nearest row among ``idx``."""
    if len(idx) * len(Xn) > EXACT_NEAREST_PAIRS and len(idx) >= 1000:
        return _nearest_distance_ivf(Xn, idx)
    out = np.full(len(Xn), np.inf, np.float32)
    for s in range(0, len(idx), block):
        sims = Xn @ Xn[idx[s : s + block]].T
        out = np.minimum(out, 1.0 - sims.max(axis=1))
    return np.clip(out, 0.0, 2.0)


def _nearest_distance_ivf(Xn: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``_nearest_distance`` through an IVF index: approximate (a far row may see a chosen
    row that is not its nearest), which only makes farthest-first favour it slightly more."""
    import faiss

    chosen = np.ascontiguousarray(Xn[idx], dtype=np.float32)
    nlist = int(max(1, min(4 * np.sqrt(len(chosen)), len(chosen) // 39)))
    quantizer = faiss.IndexFlatIP(chosen.shape[1])
    index = faiss.IndexIVFFlat(quantizer, chosen.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = 0
    index.train(chosen)
    index.add(chosen)
    index.nprobe = min(nlist, 16)
    sims, found = index.search(np.ascontiguousarray(Xn, dtype=np.float32), 1)
    out = np.where(found.ravel() >= 0, 1.0 - sims.ravel(), 2.0).astype(np.float32)
    return np.clip(out, 0.0, 2.0)


def _kcenter_fill(Xn: np.ndarray, picker: _Picker, start: np.ndarray, count: int) -> None:
    """Add ``count`` farthest-first rows to ``picker``, measuring from ``start`` and its picks."""
    nearest = _nearest_distance(Xn, start) if len(start) else np.full(len(Xn), 2.0, np.float32)
    for _ in range(count):
        if not picker.available.any():
            return
        i = int(np.argmax(np.where(picker.available, nearest, -1.0)))
        picker.take(i)
        np.minimum(nearest, 1.0 - Xn @ Xn[i], out=nearest)


def select_typiclust(
    X: np.ndarray, *, budget: int, seed: int = 0, k: int = DEFAULT_K
) -> np.ndarray:
    """TypiClust (Hacohen et al. 2022): the most typical row of each of the largest clusters.

    Clusters the pool into ``min(budget, MAX_CLUSTERS)`` k-means clusters, then repeatedly
    takes the largest cluster holding the fewest chosen rows and picks its most typical
    unchosen row (``typicality`` with ``k`` neighbours inside the cluster).

    Returns: (budget,) int64 positions, in pick order.
    """
    arr = check_embeddings(X)
    b = check_budget(budget, n=len(arr))
    Xn = l2_normalize(arr)
    picker = _Picker(len(Xn))
    labels = _typiclust_clusters(Xn, min(b, MAX_CLUSTERS), seed)
    _typical_fill(Xn, labels, picker, b, k=k, proportional=False)
    return picker.result()


def _typiclust_clusters(Xn: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Clusters as the TypiClust reference code makes them: k-means up to 50 clusters; beyond,
    the reference's mini-batch k-means is replaced by FAISS k-means (full batches, and 30x
    faster than scikit-learn here)."""
    from sklearn.cluster import KMeans

    if k <= 1:
        return np.zeros(len(Xn), np.int64)
    if k <= 50:
        raw = KMeans(k, random_state=seed, n_init=1).fit_predict(Xn).astype(np.int64)
    else:
        raw = _faiss_kmeans(Xn, k, seed)[0]
    _, dense = np.unique(raw, return_inverse=True)  # an empty cluster leaves no gap
    return dense.astype(np.int64)


def _typical_fill(
    Xn: np.ndarray,
    labels: np.ndarray,
    picker: _Picker,
    count: int,
    *,
    k: int,
    proportional: bool,
    seed: int | None = None,
    heads: np.ndarray | None = None,
    random_heads: bool = False,
) -> None:
    """Add ``count`` rows: each time the next row of the neediest cluster.

    Neediest: first every cluster without a pick, largest first (coverage of every mode);
    then the largest among those with the fewest picks (TypiClust), or, with
    ``proportional``, the highest size / (picks + 1) so picks follow cluster sizes.
    A cluster's first pick is its most typical row; later picks are the next most typical,
    or with ``seed`` a random member (a stratified sample: past the first pick per mode,
    more typical rows repeat what the model has seen, a random draw keeps the variety).
    ``heads`` (n,) ranks the rows instead of typicality (higher first); ``random_heads``
    with ``seed`` makes the first pick random too (a plain stratified sample).
    """
    typ = _typicality(Xn, labels, k) if heads is None and not random_heads else heads
    n_clusters = int(labels.max()) + 1
    sizes = np.bincount(labels, minlength=n_clusters).astype(np.float64)
    picks = np.zeros(n_clusters)
    if seed is None:
        order = np.lexsort((-typ, labels))  # by cluster, most typical first
    else:  # by cluster: the most typical first, the rest in random order
        noise = np.random.default_rng(seed).random(len(labels))
        if random_heads:
            typ = noise
        head = typ >= _cluster_max(typ, labels, n_clusters)[labels]
        order = np.lexsort((noise, ~head, labels))
    starts = np.searchsorted(labels[order], np.arange(n_clusters))
    cursor = starts.copy()
    ends = np.r_[starts[1:], len(order)]
    open_ = ends > starts
    taken = 0
    while taken < count and open_.any():
        need = np.where(open_, _need(sizes, picks, proportional), -np.inf)
        c = int(np.argmax(need))
        # Skip rows already taken (or blocked as duplicates) lazily, in this cluster only.
        while cursor[c] < ends[c] and not picker.available[order[cursor[c]]]:
            cursor[c] += 1
        if cursor[c] == ends[c]:
            open_[c] = False
            continue
        picker.take(int(order[cursor[c]]))
        picks[c] += 1
        taken += 1


def _cluster_max(values: np.ndarray, labels: np.ndarray, n_clusters: int) -> np.ndarray:
    out = np.full(n_clusters, -np.inf)
    np.maximum.at(out, labels, values)
    return out


def _need(sizes: np.ndarray, picks: np.ndarray, proportional: bool) -> np.ndarray:
    uncovered = (picks == 0) * 1e12
    if proportional:
        return uncovered + sizes / (picks + 1)
    return uncovered - picks * 1e6 + sizes


# -- labelwise's selection ---------------------------------------------------------------------
def rare_share(budget: int, n: int) -> float:
    """Share of ``budget`` that ``select_unlabeled`` spends on rare / far-out rows.

    0 up to ``TINY_BUDGET`` rows or ``TINY_SHARE`` of the pool (a model trained on few
    labels learns most from typical examples of each mode); then
    ``RARE_SHARE_MAX * f / (f + RARE_SHARE_PIVOT)`` with ``f = budget / n``: about 2% at 5%
    of the pool, 3% at 10%; 0 again from ``STRATIFIED_SHARE`` of the pool on (a stratified
    random sample there).
    """
    f = budget / n
    if budget <= TINY_BUDGET or f < TINY_SHARE or f >= STRATIFIED_SHARE:
        return 0.0
    return RARE_SHARE_MAX * f / (f + RARE_SHARE_PIVOT)


def select_unlabeled(
    X: np.ndarray,
    *,
    budget: int,
    seed: int = 0,
    duplicate_groups: Sequence[Any] | None = None,
    k: int = DEFAULT_K,
    clusters: np.ndarray | None = None,
    rarity_scores: np.ndarray | None = None,
) -> np.ndarray:
    """Rows worth labeling in an unlabeled pool: every mode covered, then rare ones.

    1. Cluster the pool into ``min(typical budget, MAX_CLUSTERS)`` k-means clusters and take
       the most typical row of each (TypiClust; in clusters of ``CENTROID_CLUSTER_SIZE``
       rows or more on average, the row nearest the centroid), then, for a larger budget,
       more rows per cluster in proportion to its size, drawn at random within the cluster
       (a stratified sample: at large budgets typical rows only repeat what the first ones
       showed). From ``STRATIFIED_SHARE`` of the pool on, the first rows are random too.
    2. Spend the rest (``rare_share`` of the budget: none at small budgets or from
       ``STRATIFIED_SHARE`` on, about 3% between) farthest-first from what is chosen
       (k-center greedy) among rows that are not outliers: rows in sparse regions and small
       far clusters, which typical picks never reach.

    Never takes two members of one near-duplicate group.

    Args:
        X: (n, d) raw embeddings.
        budget: number of rows to choose, 1..n (fewer are returned only when duplicate
            groups leave fewer than ``budget`` distinct rows).
        duplicate_groups: groups from ``find_near_duplicates`` (or arrays of positions).
        k: neighbours for typicality.
        clusters: (n,) cluster labels computed before; used when they number exactly the
            clusters this budget asks for (saves the k-means on a large pool).
        rarity_scores: (n,) ``rarity`` computed before (saves a k-NN search).

    Returns: (m,) int64 positions, m <= budget, in pick order.
    """
    arr = check_embeddings(X)
    b = check_budget(budget, n=len(arr))
    group_ids = duplicate_group_ids(duplicate_groups, n=len(arr))
    Xn = l2_normalize(arr)
    picker = _Picker(len(Xn), group_ids)
    n_rare = round(b * rare_share(b, len(Xn)))
    n_typical = b - n_rare
    n_clusters = max(1, min(n_typical, MAX_CLUSTERS))
    heads = None
    if clusters is not None and _count_clusters(clusters, len(Xn)) == n_clusters:
        labels = np.asarray(clusters, dtype=np.int64)
    else:
        labels, centroids = _kmeans(Xn, n_clusters, seed)
        if len(Xn) / n_clusters >= CENTROID_CLUSTER_SIZE:
            heads = np.einsum("ij,ij->i", Xn, centroids[labels])
    stratified = b / len(Xn) >= STRATIFIED_SHARE
    _typical_fill(Xn, labels, picker, n_typical, k=k, proportional=True, seed=seed,
                  heads=heads, random_heads=stratified)
    n_rare = b - len(picker.chosen)
    if n_rare > 0:
        rare = _rarity(Xn, k) if rarity_scores is None else np.asarray(rarity_scores)
        if rare.shape != (len(Xn),):
            raise ValidationError(f"rarity_scores must have one value per row of X ({len(Xn)})")
        _rare_fill(Xn, picker, n_rare, rare)
    return picker.result()


def _count_clusters(clusters: np.ndarray, n: int) -> int:
    labels = np.asarray(clusters)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise ValidationError(f"clusters must be {n} cluster numbers >= 0, one per row of X")
    return int(labels.max()) + 1


def _rare_fill(Xn: np.ndarray, picker: _Picker, count: int, rare: np.ndarray) -> None:
    """Farthest-first picks among rows that are rare but not outliers.

    Rows rarer than the ``OUTLIER_QUANTILE`` of ``rarity`` are skipped while others remain:
    the farthest rows of a pool are mostly junk (blank, corrupt, off-topic images) that
    teach a model little.
    """
    outliers = rare > np.quantile(rare, OUTLIER_QUANTILE)
    before = len(picker.chosen)
    held_back = picker.available & outliers
    picker.available[held_back] = False
    _kcenter_fill(Xn, picker, picker.result(), count)
    picker.available[held_back] = True
    picker.block_chosen()  # the release may have freed duplicates of chosen rows
    _kcenter_fill(Xn, picker, picker.result(), count - (len(picker.chosen) - before))


#: Selection kernels for unlabeled pools, by name.
SELECTORS: dict[str, Callable[..., np.ndarray]] = {
    "labelwise": select_unlabeled,
    "random": select_random,
    "kcenter": select_kcenter_greedy,
    "typiclust": select_typiclust,
}


def get_selector(name: str) -> Callable[..., np.ndarray]:
    """The selection kernel called ``name``; a ValidationError lists the choices."""
    if name not in SELECTORS:
        raise ValidationError(
            f"unknown selection method {name!r}; choose one of {', '.join(SELECTORS)}"
        )
    return SELECTORS[name]

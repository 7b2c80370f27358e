"""Per-item scores from embeddings: cluster, cluster size, rarity and typicality.

Every function takes raw float32 embeddings ``X`` (n, d) and L2-normalises them, so every
distance is the cosine distance ``1 - cos`` in [0, 2] (lower = more similar).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(0, 0.1, (20, 4)) + [5, 0, 0, 0], rng.normal(0, 0.1, (3, 4)) + [0, 5, 0, 0]]
    >>> labels, _ = cluster_embeddings(X.astype(np.float32), n_clusters=2, seed=0)
    >>> sorted(cluster_sizes(labels).tolist())
    [3, 20]
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.cluster import KMeans

from labelwise.embeddings.index import knn_graph, l2_normalize, validate_vectors
from labelwise.errors import ValidationError

#: Above this many points k-means runs on FAISS (Lloyd iterations in BLAS) instead of
#: scikit-learn's k-means++ (whose seeding alone is minutes at 100,000 points).
LARGE_ABOVE = 20_000
#: Up to this many clusters (and ``LARGE_ABOVE`` points) scikit-learn's k-means++ runs: its
#: seeding finds small far modes; beyond, FAISS is 30x faster and the modes are many anyway.
SKLEARN_MAX_CLUSTERS = 50
#: Lloyd iterations of the FAISS k-means.
FAISS_KMEANS_ITERATIONS = 20
#: Dimensions kept by ``reduce_dimensions`` (PCA): neighbourhoods and clusters barely change,
#: every distance costs 10x less than on 1,280-d embeddings.
DEFAULT_DIMS = 128
#: Rows a PCA is fitted on (a random sample; more adds time, not accuracy).
PCA_FIT_ROWS = 20_000
#: Neighbours used by ``rarity`` and ``typicality`` by default (TypiClust uses 20).
DEFAULT_K = 20


# -- validation shared by the curate kernels -------------------------------------------------
def check_embeddings(X: Any, *, min_rows: int = 1) -> np.ndarray:
    """``X`` as a float32 (n, d) array with at least ``min_rows`` rows, or a ValidationError."""
    arr = validate_vectors(X)
    if len(arr) < min_rows:
        raise ValidationError(
            f"X has {len(arr)} rows but at least {min_rows} are needed; embed the dataset first"
        )
    return arr


def check_positive_int(value: Any, *, name: str) -> int:
    """``value`` as a positive int, or a ValidationError naming the option."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValidationError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_budget(budget: Any, *, n: int) -> int:
    """``budget`` as an int in [1, n], or a ValidationError saying the allowed range."""
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)):
        raise ValidationError(f"budget must be an integer number of items, got {budget!r}")
    if budget <= 0:
        raise ValidationError(f"budget must be at least 1, got {budget}; ask for 1 to {n} items")
    if budget > n:
        raise ValidationError(
            f"budget {budget} is larger than the pool of {n} items; ask for 1 to {n} items"
        )
    return int(budget)


def check_labels(labels: Any, *, n: int, name: str = "labels") -> np.ndarray:
    """``labels`` as an int64 (n,) array of class indices >= 0, or a ValidationError."""
    arr = np.asarray(labels)
    if arr.shape != (n,):
        raise ValidationError(f"{name} must have shape ({n},), one per row of X, got {arr.shape}")
    if n and not np.issubdtype(arr.dtype, np.integer):
        raise ValidationError(f"{name} must be integer class indices, got dtype {arr.dtype}")
    if n and arr.min() < 0:
        bad = int(np.flatnonzero(arr < 0)[0])
        raise ValidationError(f"{name}[{bad}] is {arr[bad]}; class indices start at 0")
    return arr.astype(np.int64)


# -- dimension reduction ----------------------------------------------------------------------
def reduce_dimensions(
    X: np.ndarray, *, dims: int = DEFAULT_DIMS, seed: int = 0
) -> np.ndarray:
    """Unit rows of ``X`` projected on their top ``dims`` principal axes, re-normalised.

    The PCA is fitted on at most ``PCA_FIT_ROWS`` random rows of the L2-normalised ``X``.
    Rows of ``X`` with ``dims`` columns or fewer come back normalised, not projected.
    Centring first spreads the rows over the sphere, so cosine distances between the
    outputs rank neighbours much like the full vectors do, but their values differ:
    thresholds calibrated on full embeddings (near-duplicates) are checked on the full
    vectors.

    Returns: (n, min(d, dims)) float32, unit rows.
    """
    arr = check_embeddings(X)
    dims = check_positive_int(dims, name="dims")
    Xn = l2_normalize(arr)
    if Xn.shape[1] <= dims or len(Xn) <= dims:
        return Xn
    rng = np.random.default_rng(seed)
    fit = Xn if len(Xn) <= PCA_FIT_ROWS else Xn[rng.choice(len(Xn), PCA_FIT_ROWS, replace=False)]
    mean = fit.mean(axis=0, dtype=np.float64)
    centred = (fit - mean).astype(np.float64)
    _, vecs = np.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
    axes = vecs[:, ::-1][:, :dims].astype(np.float32)
    return l2_normalize((Xn - mean.astype(np.float32)) @ axes)


# -- clusters ---------------------------------------------------------------------------------
def cluster_embeddings(
    X: np.ndarray, *, n_clusters: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """k-means on the L2-normalised rows of ``X`` (n, d).

    k-means++ seeding (it reaches far, small modes that a random start misses), 3 restarts;
    above ``LARGE_ABOVE`` points or ``SKLEARN_MAX_CLUSTERS`` clusters spherical k-means on
    FAISS (random seeding, one run).
    Deterministic given ``seed``.

    Returns:
        ``(labels, centroids)``: (n,) int64 cluster of each row, numbered by decreasing size
        (0 = largest, ties by first member), and (n_clusters, d) float32 unit centroids.
    """
    arr = check_embeddings(X)
    k = check_positive_int(n_clusters, name="n_clusters")
    if k > len(arr):
        raise ValidationError(f"n_clusters {k} is larger than the {len(arr)} rows of X")
    return _kmeans(l2_normalize(arr), k, seed)


def _kmeans(Xn: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(Xn)
    if k == 1 or n == k:
        labels = np.zeros(n, np.int64) if k == 1 else np.arange(n, dtype=np.int64)
        centroids = Xn.mean(axis=0, keepdims=True) if k == 1 else Xn.copy()
        return labels, l2_normalize(centroids)
    if n > LARGE_ABOVE or k > SKLEARN_MAX_CLUSTERS:
        return _faiss_kmeans(Xn, k, seed)
    model = KMeans(k, random_state=seed, n_init=3)
    raw = model.fit_predict(Xn).astype(np.int64)
    return _renumber_by_size(raw, l2_normalize(model.cluster_centers_), k)


def _faiss_kmeans(Xn: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    km = faiss.Kmeans(
        Xn.shape[1], k, niter=FAISS_KMEANS_ITERATIONS, seed=seed, spherical=True,
        max_points_per_centroid=256, min_points_per_centroid=1, verbose=False,
    )
    km.train(np.ascontiguousarray(Xn, dtype=np.float32))
    _, raw = km.index.search(np.ascontiguousarray(Xn, dtype=np.float32), 1)
    raw = raw.ravel().astype(np.int64)
    # A centroid that ended up with no member keeps its number: renumbering puts it last.
    return _renumber_by_size(raw, l2_normalize(km.centroids), k)


def _renumber_by_size(
    raw: np.ndarray, centroids: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster numbers reordered so 0 is the largest: stable names for the same data."""
    sizes = np.bincount(raw, minlength=k)
    first = np.full(k, len(raw))
    np.minimum.at(first, raw, np.arange(len(raw)))
    order = np.lexsort((first, -sizes))
    rank = np.empty(k, np.int64)
    rank[order] = np.arange(k)
    return rank[raw], centroids[order].astype(np.float32)


def cluster_sizes(labels: np.ndarray) -> np.ndarray:
    """Size of each cluster, indexed by cluster number: (max(labels) + 1,) int64."""
    arr = check_labels(labels, n=len(np.asarray(labels)))
    return np.bincount(arr).astype(np.int64)


# -- rarity and typicality --------------------------------------------------------------------
def rarity(X: np.ndarray, *, k: int = DEFAULT_K) -> np.ndarray:
    """Mean cosine distance of each row of ``X`` (n, d) to its ``k`` nearest other rows.

    Returns (n,) float32 in [0, 2]; higher = rarer (a sparser neighbourhood). A single row
    has rarity 0 (no neighbours to be far from).
    """
    arr = check_embeddings(X)
    k = check_positive_int(k, name="k")
    return _rarity(arr, k)


def _rarity(arr: np.ndarray, k: int) -> np.ndarray:
    dist, _ = knn_graph(arr, k)
    if dist.shape[1] == 0:
        return np.zeros(len(arr), np.float32)
    return _finite_mean(dist)


def _finite_mean(dist: np.ndarray) -> np.ndarray:
    finite = np.isfinite(dist)
    total = np.where(finite, dist, 0.0).sum(axis=1)
    return (total / np.maximum(finite.sum(axis=1), 1)).astype(np.float32)


def typicality(X: np.ndarray, labels: np.ndarray, *, k: int = DEFAULT_K) -> np.ndarray:
    """TypiClust typicality: 1 / mean cosine distance to the ``k`` nearest rows of the same cluster.

    Args:
        X: (n, d) raw embeddings.
        labels: (n,) cluster of each row (from ``cluster_embeddings``).
        k: neighbours within the cluster (fewer in clusters smaller than k + 1).

    Returns:
        (n,) float32, higher = more typical (a denser spot of its cluster). Distances are
        floored at 1e-6, so exact copies get a large finite value; a row alone in its cluster
        gets 0 (nothing to be typical of).
    """
    arr = check_embeddings(X)
    lab = check_labels(labels, n=len(arr))
    k = check_positive_int(k, name="k")
    return _typicality(l2_normalize(arr), lab, k)


def _typicality(Xn: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros(len(Xn), np.float32)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < 2:
            continue
        dist, _ = knn_graph(Xn[members], k)
        out[members] = 1.0 / np.maximum(_finite_mean(dist), 1e-6)
    return out

"""A 2-D map of embeddings for the web app: UMAP, with PCA as the fallback.

``project_2d(X)`` L2-normalises the rows, reduces them to 50 dimensions with PCA (keeps the
structure, makes the neighbour search cheap) and re-normalises; UMAP then lays the points out
from a k-NN graph computed by FAISS (``index.knn_graph``) and handed over as
``precomputed_knn``, which replaces UMAP's own NN-descent, the slow part for large sets.
Euclidean distance on unit vectors is ``sqrt(2 - 2 cos)``, a monotone function of cosine
distance, so the layout follows cosine similarity.

``method="pca"`` (or automatically when there are fewer than ``MIN_UMAP_POINTS`` points or UMAP
fails) projects on the first two principal components instead.

Points come back as (n, 2) float32 in [0, 1]: both axes scaled by the same factor (the map keeps
its aspect ratio) and centred. The same input and ``seed`` give the same map.

    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)
    >>> p = project_2d(X, method="pca")
    >>> p.points.shape, p.method, float(p.points.min()) >= 0, float(p.points.max()) <= 1
    ((40, 2), 'pca', True, True)
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from labelwise.embeddings.index import knn_graph, l2_normalize, validate_vectors
from labelwise.errors import ValidationError

log = logging.getLogger("labelwise.embeddings")

#: UMAP needs a neighbourhood; below this many points the map is PCA.
MIN_UMAP_POINTS = 15
#: PCA dimensions before UMAP.
PCA_DIMS = 50
#: From this many points on, UMAP starts from PCA instead of a spectral layout and runs
#: ``LARGE_EPOCHS`` epochs: on 100,000 points the spectral start alone costs ~20 s on two
#: cores, and with that many points each epoch already makes many updates (UMAP itself cuts
#: its default from 500 to 200 epochs above 10,000 points for the same reason).
LARGE_MAP, LARGE_EPOCHS = 20_000, 100


@dataclass(frozen=True)
class MapOptions:
    """UMAP's knobs: ``n_neighbors`` (local vs global structure), ``min_dist`` (how tightly
    points pack), ``n_epochs`` (None: UMAP's default, or ``LARGE_EPOCHS`` for large maps);
    ``seed`` makes the layout reproducible."""

    n_neighbors: int = 15
    min_dist: float = 0.1
    n_epochs: int | None = None
    seed: int = 0


@dataclass(frozen=True)
class Projection:
    """``points`` (n, 2) float32 in [0, 1], row i for input row i; ``method`` the one used
    (``umap`` or ``pca``; ``pca`` also when UMAP was asked for but could not run)."""

    points: np.ndarray
    method: str


def _pca(Xn: np.ndarray, dims: int, seed: int) -> np.ndarray:
    """The first ``dims`` principal components of ``Xn`` (n, d) as float32 (n, dims)."""
    from sklearn.decomposition import PCA

    dims = min(dims, Xn.shape[0], Xn.shape[1])
    solver = "randomized" if min(Xn.shape) > 4 * dims else "full"
    out = PCA(n_components=dims, svd_solver=solver, random_state=seed).fit_transform(Xn)
    if out.shape[1] < 2:  # one point, or one dimension: the map is a line
        out = np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
    return out.astype(np.float32)


def _map_pca(Xn: np.ndarray, opts: MapOptions) -> np.ndarray:
    if len(Xn) < 2:
        return np.zeros((len(Xn), 2), np.float32)
    return _pca(Xn, 2, opts.seed)[:, :2]


def _map_umap(Xn: np.ndarray, opts: MapOptions) -> np.ndarray:
    import umap

    Z = l2_normalize(_pca(Xn, PCA_DIMS, opts.seed)) if Xn.shape[1] > PCA_DIMS else Xn
    n_neighbors = min(opts.n_neighbors, len(Z) - 1)
    dist, nbr = knn_graph(Z, n_neighbors - 1, backend="auto")
    # UMAP's convention: each point is its own first neighbour, at distance 0; distances
    # are euclidean between unit vectors: sqrt(2 - 2 cos) = sqrt(2 * cosine distance).
    self_col = np.arange(len(Z), dtype=np.int64)[:, None]
    knn_indices = np.hstack([self_col, nbr])
    knn_dists = np.hstack([np.zeros_like(self_col, np.float32), np.sqrt(2 * dist)])
    missing = knn_indices < 0  # an IVF search may come back short: point at self instead
    knn_indices[missing] = np.broadcast_to(self_col, knn_indices.shape)[missing]
    knn_dists[missing] = 0.0
    large = len(Z) >= LARGE_MAP
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=n_neighbors,
        min_dist=opts.min_dist,
        metric="euclidean",
        random_state=opts.seed,  # reproducible; UMAP then runs single-threaded
        precomputed_knn=(knn_indices, knn_dists.astype(np.float32)),
        init="pca" if large else "spectral",
        n_epochs=opts.n_epochs or (LARGE_EPOCHS if large else None),
    )
    with warnings.catch_warnings():
        # No NNDescent search index comes with our k-NN; the map never transforms new data.
        warnings.filterwarnings("ignore", message=".*knn_search_index.*")
        warnings.filterwarnings("ignore", message=".*n_jobs value.*random_state.*")
        return np.asarray(reducer.fit_transform(Z), dtype=np.float32)


#: Map methods by name.
METHODS: dict[str, Callable[[np.ndarray, MapOptions], np.ndarray]] = {
    "umap": _map_umap,
    "pca": _map_pca,
}


def check_method(method: str) -> str:
    """``method`` if it is a known map method; otherwise a ValidationError listing them."""
    if method not in METHODS:
        raise ValidationError(f"unknown map method {method!r}; choose one of {', '.join(METHODS)}")
    return method


def scale_unit(points: np.ndarray) -> np.ndarray:
    """``points`` (n, 2) moved and scaled uniformly into [0, 1], centred on the shorter axis.

    One factor for both axes keeps distances comparable across the map; a single point (or
    all points equal) lands at (0.5, 0.5).
    """
    P = np.asarray(points, dtype=np.float64)
    if len(P) == 0:
        return np.zeros((0, 2), np.float32)
    lo, hi = P.min(axis=0), P.max(axis=0)
    span = float((hi - lo).max())
    if span <= 0:
        return np.full(P.shape, 0.5, np.float32)
    out = (P - lo) / span
    out += (1.0 - (hi - lo) / span) / 2  # centre the shorter axis
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def project_2d(
    X: np.ndarray, *, method: str = "umap", options: MapOptions | None = None
) -> Projection:
    """A 2-D map of the rows of ``X`` (n, d) raw embeddings.

    Args:
        X: embeddings, one row per image (L2-normalised here).
        method: ``umap`` (default) or ``pca``; ``umap`` falls back to ``pca`` for fewer than
            ``MIN_UMAP_POINTS`` points or when UMAP raises.
        options: UMAP knobs and the seed.

    Returns:
        ``Projection`` with ``points`` (n, 2) float32 in [0, 1]; nearby points have similar
        embeddings (the axes themselves carry no meaning).
    """
    check_method(method)
    opts = options or MapOptions()
    if opts.n_neighbors < 2:
        raise ValidationError(f"n_neighbors must be at least 2, got {opts.n_neighbors}")
    Xn = l2_normalize(validate_vectors(X))
    used = method
    if method == "umap" and len(Xn) < MIN_UMAP_POINTS:
        used = "pca"
    if used == "umap":
        try:
            raw = _map_umap(Xn, opts)
        except (ImportError, ValueError, RuntimeError, MemoryError) as err:
            log.warning("UMAP failed on %d points (%s); using PCA for the map", len(Xn), err)
            used, raw = "pca", _map_pca(Xn, opts)
        else:
            if not np.isfinite(raw).all():
                log.warning("UMAP gave non-finite coordinates; using PCA for the map")
                used, raw = "pca", _map_pca(Xn, opts)
    else:
        raw = _map_pca(Xn, opts)
    return Projection(points=scale_unit(raw), method=used)

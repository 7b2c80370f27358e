"""A vector index over L2-normalised embeddings, answering in cosine distance.

Vectors go in raw and are L2-normalised on the way in (queries too), so an inner product is a
cosine similarity and every distance this module returns is the cosine distance
``1 - cos`` in ``[0, 2]``: 0 for the same direction, 1 for orthogonal, lower = more similar.

Backends are picked by name from ``BACKENDS``:

- ``exact``: ``faiss.IndexFlatIP``, a brute-force scan. Exact; cost grows with ``n`` per query.
- ``ivf``: ``faiss.IndexIVFFlat`` with ``nlist ~ 4 sqrt(n)`` k-means cells trained on a sample;
  a query scans the ``nprobe`` nearest cells. ``nprobe`` is tuned at build time, on a sample of
  the indexed vectors, to the smallest power of two whose recall@10 against the exact answer
  reaches ``target_recall`` (0.95 by default).
- ``auto``: ``exact`` below ``exact_below`` vectors (50,000 by default), ``ivf`` from there.

    >>> import numpy as np
    >>> X = np.eye(4, dtype=np.float32)
    >>> index = build_index(X, ids=np.array([10, 11, 12, 13]))
    >>> distances, ids = index.search(X[:1], k=2)
    >>> ids[0, 0], float(distances[0, 0])
    (np.int64(10), 0.0)

``save_index``/``load_index`` turn an index into bytes and back (an ``.npz`` without pickles),
so a trained index can be cached in the blob store.
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

from labelwise.errors import ValidationError

#: Below this many vectors ``auto`` uses the exact index.
EXACT_BELOW = 50_000
#: Recall@10 against the exact index that IVF's nprobe is tuned to reach.
TARGET_RECALL = 0.95
#: k-means wants at least this many training points per IVF cell to place it well.
MIN_POINTS_PER_CELL = 39
#: Training sample: at most this many points per cell (more adds time, not quality).
MAX_POINTS_PER_CELL = 64
#: Vectors used to measure recall while tuning nprobe, and the k it is measured at.
TUNING_QUERIES, TUNING_K = 500, 10
#: Bump of the format written by ``save_index``; older blobs are rebuilt.
FORMAT_VERSION = 1


def use_all_cores() -> int:
    """Let faiss use every core (its OpenMP default may be lower); returns the thread count."""
    threads = os.cpu_count() or 1
    faiss.omp_set_num_threads(threads)
    return threads


def l2_normalize(X: np.ndarray) -> np.ndarray:
    """Rows of ``X`` (n, d) scaled to unit length, as a new C-contiguous float32 array.

    All-zero rows stay zero (cosine distance 1 to everything) instead of becoming NaN.
    """
    out = np.array(X, dtype=np.float32, order="C", copy=True)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out


def validate_vectors(X: Any, *, name: str = "X", dim: int | None = None) -> np.ndarray:
    """``X`` as a float32 (n, d) array with finite values, or a ValidationError saying why."""
    arr = np.asarray(X)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValidationError(
            f"{name} must be a 2-D array of shape (n, d) with d >= 1, got shape {arr.shape}"
        )
    if dim is not None and arr.shape[1] != dim:
        raise ValidationError(
            f"{name} has {arr.shape[1]} dimensions but the index holds {dim}-d vectors; "
            "query with embeddings of the same model"
        )
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValidationError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise ValidationError(f"{name} row {bad} holds NaN or infinity; re-compute its embedding")
    return arr


@dataclass
class VectorIndex:
    """A faiss index over ``n`` unit vectors, each known by an id in ``ids`` (int64, (n,)).

    ``backend`` is the registry name it was built with (``exact`` or ``ivf``); ``nprobe`` is
    the number of IVF cells scanned per query (1 for ``exact``); ``recall`` the recall@10
    measured while tuning it (1.0 for ``exact``).
    """

    index: Any
    ids: np.ndarray
    backend: str
    nprobe: int = 1
    recall: float = 1.0

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def search_positions(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Like ``search`` but answers row positions (0..n-1) of the indexed vectors.

        Missing neighbours (IVF cells holding fewer than ``k`` vectors) are position -1 at
        distance ``inf``.
        """
        Q = l2_normalize(validate_vectors(queries, name="queries", dim=self.dim))
        k = _check_k(k)
        k_eff = min(k, self.size)
        if len(Q) == 0 or k_eff == 0:
            return np.zeros((len(Q), k_eff), np.float32), np.zeros((len(Q), k_eff), np.int64)
        use_all_cores()
        if self.backend == "ivf":
            faiss.extract_index_ivf(self.index).nprobe = self.nprobe
        sims, pos = self.index.search(Q, k_eff)
        dist = (1.0 - sims).astype(np.float32)
        # Rounding can push the distance of a vector to itself a hair below 0.
        np.clip(dist, 0.0, 2.0, out=dist)
        dist[pos < 0] = np.inf
        return dist, pos.astype(np.int64)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest indexed vectors of each query, nearest first.

        Args:
            queries: (m, d) raw embeddings (normalised here).
            k: neighbours per query; more than ``size`` gives ``size``.

        Returns:
            ``(distances, ids)``, both (m, min(k, size)): cosine distances in [0, 2] (lower =
            more similar) and the ids of the neighbours; -1 / ``inf`` where IVF found fewer.
        """
        dist, pos = self.search_positions(queries, k)
        ids = np.where(pos >= 0, self.ids[np.maximum(pos, 0)], -1)
        return dist, ids.astype(np.int64)


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValidationError(f"k must be a positive integer, got {k!r}")
    return int(k)


# -- backends --------------------------------------------------------------------------------
@dataclass(frozen=True)
class IndexOptions:
    """How to build an index. ``exact_below`` only matters to ``auto``; the rest to ``ivf``."""

    exact_below: int = EXACT_BELOW
    target_recall: float = TARGET_RECALL
    nlist: int | None = None  # default: 4 sqrt(n), at most n / MIN_POINTS_PER_CELL
    seed: int = 0


@dataclass(frozen=True)
class _Built:
    backend: str
    index: Any
    nprobe: int = 1
    recall: float = 1.0


def _build_exact(Xn: np.ndarray, opts: IndexOptions) -> _Built:
    index = faiss.IndexFlatIP(Xn.shape[1])
    index.add(Xn)
    return _Built("exact", index)


def default_nlist(n: int) -> int:
    """IVF cells for ``n`` vectors: about 4 sqrt(n), but enough points to train each cell."""
    return max(1, min(int(round(4 * math.sqrt(n))), n // MIN_POINTS_PER_CELL))


def _build_ivf(Xn: np.ndarray, opts: IndexOptions) -> _Built:
    n, d = Xn.shape
    nlist = min(opts.nlist or default_nlist(n), n)
    rng = np.random.default_rng(opts.seed)
    sample_size = min(n, MAX_POINTS_PER_CELL * nlist)
    sample = Xn[np.sort(rng.choice(n, size=sample_size, replace=False))] if sample_size < n else Xn
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = opts.seed
    index.cp.niter = 10  # k-means converges well enough for cell assignment by then
    index.cp.min_points_per_centroid = 1  # small sets: train anyway, without faiss's warning
    index.cp.max_points_per_centroid = MAX_POINTS_PER_CELL
    index.train(sample)
    index.add(Xn)
    nprobe, recall = _tune_nprobe(index, Xn, target=opts.target_recall, rng=rng)
    return _Built("ivf", index, nprobe, recall)


def _build_auto(Xn: np.ndarray, opts: IndexOptions) -> _Built:
    return (_build_exact if len(Xn) < opts.exact_below else _build_ivf)(Xn, opts)


def _tune_nprobe(
    index: Any, Xn: np.ndarray, *, target: float, rng: np.random.Generator
) -> tuple[int, float]:
    """Smallest power-of-two nprobe whose recall@10 on a sample of ``Xn`` reaches ``target``.

    The sample's recall must clear ``target`` by two standard errors, so the recall on other
    queries from the same data stays at or above ``target``.
    """
    n = len(Xn)
    k = min(TUNING_K, n - 1)
    if k < 1 or index.nlist == 1:
        return 1, 1.0
    queries = Xn[rng.choice(n, size=min(TUNING_QUERIES, n), replace=False)]
    exact = faiss.IndexFlatIP(Xn.shape[1])
    exact.add(Xn)
    _, truth = exact.search(queries, k)
    margin = 2 * math.sqrt(max(target * (1 - target), 1e-4) / truth.size)
    nprobe, recall = 1, 0.0
    while True:
        index.nprobe = nprobe
        _, found = index.search(queries, k)
        recall = _recall(found, truth)
        if recall >= min(target + margin, 1.0) or nprobe >= index.nlist:
            return nprobe, recall
        nprobe = min(nprobe * 2, index.nlist)


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Share of the true neighbours (rows of ``truth``) that ``found`` contains, row by row."""
    hits = (found[:, :, None] == truth[:, None, :]).any(axis=1).sum()
    return float(hits) / truth.size


Builder = Callable[[np.ndarray, IndexOptions], _Built]

#: Index backends by name (``auto`` picks ``exact`` or ``ivf`` by size).
BACKENDS: dict[str, Builder] = {"auto": _build_auto, "exact": _build_exact, "ivf": _build_ivf}


def check_backend(backend: str) -> str:
    """``backend`` if it is a known backend name; otherwise a ValidationError listing them."""
    if backend not in BACKENDS:
        raise ValidationError(
            f"unknown index backend {backend!r}; choose one of {', '.join(BACKENDS)}"
        )
    return backend


def build_index(
    X: np.ndarray,
    *,
    ids: np.ndarray | None = None,
    backend: str = "auto",
    options: IndexOptions | None = None,
) -> VectorIndex:
    """Index the rows of ``X`` (n, d) raw embeddings, known by ``ids`` (n,) int64.

    ``ids`` defaults to the row positions ``0..n-1``. ``backend`` is ``auto``, ``exact`` or
    ``ivf`` (see the module docstring). Building an IVF index on 100,000 x 1280 vectors takes
    seconds on two cores; ``exact`` is a copy.
    """
    arr = validate_vectors(X)
    n = len(arr)
    if n == 0:
        raise ValidationError("cannot index 0 vectors; embed the dataset first")
    id_arr = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids)
    if id_arr.shape != (n,) or not np.issubdtype(id_arr.dtype, np.integer):
        raise ValidationError(
            f"ids must be {n} integers, one per row of X, got shape {id_arr.shape} "
            f"and dtype {id_arr.dtype}"
        )
    opts = options or IndexOptions()
    if not 0 < opts.target_recall <= 1:
        raise ValidationError(f"target_recall must be in (0, 1], got {opts.target_recall}")
    builder = BACKENDS[check_backend(backend)]
    use_all_cores()
    built = builder(l2_normalize(arr), opts)
    return VectorIndex(
        built.index, id_arr.astype(np.int64), built.backend, nprobe=built.nprobe,
        recall=built.recall,
    )


def knn_graph(
    X: np.ndarray | None,
    k: int,
    *,
    index: VectorIndex | None = None,
    backend: str = "auto",
    options: IndexOptions | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest other rows of every row of ``X`` (n, d): the k-NN graph without self.

    Pass ``index`` (built on the same ``X``, in the same order) to reuse it; otherwise one is
    built with ``backend``/``options``.

    Returns:
        ``(distances, neighbours)``, both (n, min(k, n - 1)): cosine distances in [0, 2],
        nearest first, and the row positions of the neighbours (-1 / ``inf`` where an IVF
        search found fewer). A row's own position never appears, even when an exact copy
        ties with it.
    """
    k = _check_k(k)
    if index is None:
        if X is None:
            raise ValidationError("knn_graph needs X or an index built on it")
        index = build_index(X, backend=backend, options=options)
    if X is None:
        X = _reconstruct_all(index)
    arr = validate_vectors(X, dim=index.dim)
    n = len(arr)
    if n != index.size:
        raise ValidationError(f"X has {n} rows but the index holds {index.size} vectors")
    k_eff = min(k, n - 1)
    if k_eff <= 0:
        return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64)
    dist, pos = index.search_positions(arr, k_eff + 1)
    return _drop_self(dist, pos, k_eff)


def _drop_self(dist: np.ndarray, pos: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own position from its k+1 neighbours, keeping the first ``k`` others."""
    n = len(pos)
    is_self = pos == np.arange(n)[:, None]
    # Rows where self was not found (an exact copy pushed it out) drop their last column.
    is_self[~is_self.any(axis=1), -1] = True
    # Only the first self hit counts, should faiss repeat a position.
    first = np.argmax(is_self, axis=1)
    keep = np.ones_like(is_self)
    keep[np.arange(n), first] = False
    return dist[keep].reshape(n, k), pos[keep].reshape(n, k)


def _reconstruct_all(index: VectorIndex) -> np.ndarray:
    if index.backend == "ivf":
        ivf = faiss.extract_index_ivf(index.index)
        ivf.make_direct_map()
    return index.index.reconstruct_n(0, index.size)


# -- bytes for caching -----------------------------------------------------------------------
def save_index(index: VectorIndex, *, meta: dict[str, Any] | None = None) -> bytes:
    """The index as bytes (an .npz: the faiss index, the ids and a JSON header).

    ``meta`` is stored in the header and comes back from ``load_index`` (e.g. the digest of
    the embeddings it was built from).
    """
    header = {
        "format": FORMAT_VERSION,
        "backend": index.backend,
        "nprobe": index.nprobe,
        "recall": index.recall,
        "meta": meta or {},
    }
    buf = io.BytesIO()
    np.savez(
        buf,
        faiss=faiss.serialize_index(index.index),
        ids=index.ids,
        header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
    )
    return buf.getvalue()


def load_index(data: bytes) -> tuple[VectorIndex, dict[str, Any]]:
    """An index saved by ``save_index``, and its ``meta``; a damaged blob is a ValidationError."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            header = json.loads(npz["header"].tobytes().decode())
            if header.get("format") != FORMAT_VERSION:
                raise ValueError(f"format {header.get('format')!r}, expected {FORMAT_VERSION}")
            faiss_index = faiss.deserialize_index(np.ascontiguousarray(npz["faiss"]))
            ids = npz["ids"].astype(np.int64)
    except (OSError, ValueError, KeyError, RuntimeError, zipfile.BadZipFile) as err:
        raise ValidationError(
            f"cannot read the saved vector index ({err}); delete it to have it rebuilt"
        ) from err
    index = VectorIndex(
        faiss_index, ids, header["backend"], nprobe=int(header["nprobe"]),
        recall=float(header["recall"]),
    )
    return index, header.get("meta", {})

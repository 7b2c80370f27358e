"""The vector index: exact answers, IVF recall against exact, self-free k-NN graphs, bytes."""

from __future__ import annotations

import numpy as np
import pytest

from labelwise.embeddings.index import (
    IndexOptions,
    build_index,
    default_nlist,
    knn_graph,
    l2_normalize,
    load_index,
    save_index,
)
from labelwise.errors import ValidationError


def clustered(n: int, d: int, *, clusters: int, spread: float, seed: int) -> np.ndarray:
    """``n`` vectors around ``clusters`` random centres: the shape real embeddings have."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d))
    labels = rng.integers(0, clusters, size=n)
    return (centres[labels] + spread * rng.normal(size=(n, d))).astype(np.float32)


def brute_force(X: np.ndarray, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosine distances and neighbours computed the slow, obvious way (float64)."""
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    Qn = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    dist = 1 - Qn.astype(np.float64) @ Xn.T.astype(np.float64)
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(dist, order, axis=1), order


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def test_exact_search_answers_cosine_distance_and_ids():
    X = clustered(500, 32, clusters=5, spread=1.0, seed=0)
    ids = np.arange(1000, 1500, dtype=np.int64)[::-1].copy()  # ids unrelated to positions
    index = build_index(X, ids=ids)
    assert index.backend == "exact" and index.size == 500 and index.dim == 32
    Q = X[:20] * 7.5  # scale does not matter: cosine
    dist, found = index.search(Q, k=5)
    want_dist, want_pos = brute_force(X, Q, 5)
    assert found.dtype == np.int64 and dist.dtype == np.float32
    np.testing.assert_array_equal(found, ids[want_pos])
    np.testing.assert_allclose(dist, want_dist, atol=1e-5)
    assert (found[:, 0] == ids[:20]).all() and np.allclose(dist[:, 0], 0, atol=1e-6)


def test_k_larger_than_the_index_gives_everything():
    X = np.eye(3, dtype=np.float32)
    dist, found = build_index(X).search(X[:1], k=10)
    assert dist.shape == (1, 3)
    assert found[0, 0] == 0 and set(found[0]) == {0, 1, 2}
    np.testing.assert_allclose(dist[0], [0, 1, 1], atol=1e-6)  # orthogonal = distance 1


def test_opposite_and_zero_vectors():
    X = np.array([[1, 0], [-2, 0], [0, 0]], dtype=np.float32)
    dist, found = build_index(X).search(np.array([[3, 0]], np.float32), k=3)
    assert found[0].tolist() == [0, 2, 1]
    np.testing.assert_allclose(dist[0], [0, 1, 2], atol=1e-6)  # zero vector: no NaN
    assert np.isfinite(l2_normalize(X)).all()


def test_ivf_reaches_the_recall_target_against_exact():
    """20k clustered vectors: IVF's tuned nprobe finds >= 95% of the exact top 10 on queries
    it was not tuned on, while scanning a fraction of the cells."""
    data = clustered(21_000, 64, clusters=50, spread=0.35, seed=1)
    X, Q = data[:20_000], data[20_000:]
    ivf = build_index(X, backend="ivf")
    assert ivf.backend == "ivf"
    assert ivf.index.nlist == default_nlist(20_000)
    assert 450 <= default_nlist(20_000) <= 600  # ~4 sqrt(n)
    assert ivf.nprobe < ivf.index.nlist / 4  # not a disguised exact scan
    assert ivf.recall >= 0.95
    _, found = ivf.search(Q, k=10)
    _, truth = brute_force(X, Q, 10)
    assert recall(found, truth) >= 0.95


def test_auto_switches_to_ivf_above_the_size_threshold():
    X = clustered(600, 16, clusters=4, spread=0.5, seed=2)
    assert build_index(X, backend="auto").backend == "exact"
    small_threshold = IndexOptions(exact_below=500)
    assert build_index(X, backend="auto", options=small_threshold).backend == "ivf"


def test_unknown_backend_lists_the_choices():
    with pytest.raises(ValidationError, match="choose one of auto, exact, ivf"):
        build_index(np.eye(3, dtype=np.float32), backend="hnsw")


@pytest.mark.parametrize("backend", ["exact", "ivf"])
def test_knn_graph_never_lists_a_row_as_its_own_neighbour(backend):
    X = clustered(400, 16, clusters=4, spread=0.5, seed=3)
    X[10] = X[11] = X[12]  # exact copies tie with self
    dist, nbr = knn_graph(X, 5, backend=backend)
    assert dist.shape == nbr.shape == (400, 5)
    assert not (nbr == np.arange(400)[:, None]).any()
    assert set(nbr[10][:2]) == {11, 12} and np.allclose(dist[10][:2], 0, atol=1e-6)
    assert (np.diff(dist, axis=1) >= -1e-6).all()  # nearest first
    if backend == "exact":
        want, _ = brute_force(X, X, 6)
        np.testing.assert_allclose(dist, want[:, 1:], atol=1e-5)


def test_knn_graph_of_tiny_sets():
    assert knn_graph(np.ones((1, 4), np.float32), 3)[1].shape == (1, 0)
    dist, nbr = knn_graph(np.eye(3, dtype=np.float32), 10)
    assert nbr.shape == (3, 2) and not (nbr == np.arange(3)[:, None]).any()


@pytest.mark.parametrize("backend", ["exact", "ivf"])
def test_save_and_load_give_the_same_answers(backend):
    X = clustered(3000, 24, clusters=6, spread=0.4, seed=4)
    ids = np.arange(3000, dtype=np.int64) * 3 + 7
    index = build_index(X, ids=ids, backend=backend)
    data = save_index(index, meta={"digest": "abc"})
    loaded, meta = load_index(data)
    assert meta == {"digest": "abc"}
    assert (loaded.backend, loaded.nprobe, loaded.size) == (backend, index.nprobe, 3000)
    a = index.search(X[:50], k=8)
    b = loaded.search(X[:50], k=8)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_allclose(a[0], b[0])


def test_a_damaged_saved_index_is_a_clear_error():
    data = save_index(build_index(np.eye(4, dtype=np.float32)))
    with pytest.raises(ValidationError, match="delete it to have it rebuilt"):
        load_index(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("X", "message"),
    [
        (np.ones(5, np.float32), "2-D array"),
        (np.zeros((0, 4), np.float32), "0 vectors"),
        (np.array([[1.0, np.nan]], np.float32), "row 0 holds NaN"),
        (np.array([["a", "b"]]), "real numbers"),
    ],
)
def test_bad_vectors_are_refused(X, message):
    with pytest.raises(ValidationError, match=message):
        build_index(X)


def test_bad_queries_are_refused():
    index = build_index(np.eye(4, dtype=np.float32))
    with pytest.raises(ValidationError, match="3 dimensions but the index holds 4-d"):
        index.search(np.ones((1, 3), np.float32), k=1)
    with pytest.raises(ValidationError, match="k must be a positive integer"):
        index.search(np.ones((1, 4), np.float32), k=0)
    with pytest.raises(ValidationError, match="ids must be 4 integers"):
        build_index(np.eye(4, dtype=np.float32), ids=np.arange(3))

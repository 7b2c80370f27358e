import numpy as np
import pytest

from labelwise.curate import cluster_embeddings, cluster_sizes, rarity, typicality
from labelwise.errors import ValidationError

from .conftest import MODE_SIZES, blobs


def test_clusters_recover_planted_modes(modes):
    X, mode = modes
    labels, centroids = cluster_embeddings(X, n_clusters=5, seed=0)
    assert centroids.shape == (5, X.shape[1])
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1.0, atol=1e-5)
    # Each planted mode is exactly one cluster, numbered by decreasing size.
    assert np.array_equal(labels, mode)
    assert cluster_sizes(labels).tolist() == list(MODE_SIZES)


def test_clusters_are_deterministic_given_seed(modes):
    X, _ = modes
    a, _ = cluster_embeddings(X, n_clusters=12, seed=3)
    b, _ = cluster_embeddings(X, n_clusters=12, seed=3)
    assert np.array_equal(a, b)


def test_rarity_is_higher_for_isolated_points():
    X, _ = blobs((200,), d=16, seed=1)
    far = np.zeros((1, 16), np.float32)
    far[0, 5] = 3.0  # alone in its direction
    scores = rarity(np.r_[X, far], k=10)
    assert scores.shape == (201,)
    assert scores.dtype == np.float32
    assert int(np.argmax(scores)) == 200


def test_typicality_is_highest_at_the_cluster_centre():
    rng = np.random.default_rng(0)
    centre = np.zeros(8, np.float32)
    centre[0] = 1.0
    X = (centre + rng.normal(0, 0.05, (100, 8))).astype(np.float32)
    X[0] = centre  # planted: exactly the mode
    typ = typicality(X, np.zeros(100, np.int64), k=10)
    assert typ.shape == (100,)
    assert typ[0] >= np.quantile(typ, 0.95)
    # A row alone in its cluster has nothing to be typical of.
    assert typicality(X[:3], np.array([0, 0, 1]), k=5)[2] == 0.0


def test_bad_input_gets_clear_errors(modes):
    X, _ = modes
    with pytest.raises(ValidationError, match="shape"):
        cluster_embeddings(X[0], n_clusters=2)
    with pytest.raises(ValidationError, match="n_clusters"):
        cluster_embeddings(X, n_clusters=0)
    with pytest.raises(ValidationError, match="larger than"):
        cluster_embeddings(X[:3], n_clusters=4)
    with pytest.raises(ValidationError, match="shape"):
        typicality(X, np.zeros(3, np.int64))
    with pytest.raises(ValidationError, match="NaN"):
        rarity(np.full((3, 2), np.nan, np.float32))

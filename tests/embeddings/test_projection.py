"""The 2-D map: clusters stay together, output in [0, 1], same seed same map, PCA fallback."""

from __future__ import annotations

import numpy as np
import pytest

from labelwise.embeddings import projection
from labelwise.embeddings.projection import MapOptions, project_2d, scale_unit
from labelwise.errors import ValidationError


def three_clusters(per: int = 60, d: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, d))
    labels = np.repeat(np.arange(3), per)
    X = centres[labels] + 0.3 * rng.normal(size=(3 * per, d))
    return X.astype(np.float32), labels


def neighbours_agree(points: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    """Share of each point's k nearest 2-D neighbours that carry its label."""
    d = ((points[:, None, :] - points[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    nbr = np.argsort(d, axis=1)[:, :k]
    return float((labels[nbr] == labels[:, None]).mean())


@pytest.mark.parametrize("method", ["umap", "pca"])
def test_clusters_stay_together_in_the_unit_square(method):
    X, labels = three_clusters()
    p = project_2d(X, method=method)
    assert p.method == method
    assert p.points.shape == (180, 2) and p.points.dtype == np.float32
    assert p.points.min() >= 0 and p.points.max() <= 1
    assert np.isclose(p.points.max(axis=0) - p.points.min(axis=0), 1).any()  # fills one axis
    assert neighbours_agree(p.points, labels) >= 0.95


def test_same_seed_same_map():
    X, _ = three_clusters(per=30, seed=1)
    a = project_2d(X, options=MapOptions(seed=3)).points
    b = project_2d(X, options=MapOptions(seed=3)).points
    np.testing.assert_array_equal(a, b)


def test_few_points_fall_back_to_pca():
    X, _ = three_clusters(per=4)
    p = project_2d(X)
    assert p.method == "pca" and p.points.shape == (12, 2)
    assert project_2d(X[:1]).points.tolist() == [[0.5, 0.5]]


def test_umap_failure_falls_back_to_pca(monkeypatch):
    def broken(*_args, **_kwargs):
        raise ValueError("numba exploded")

    monkeypatch.setattr(projection, "_map_umap", broken)
    X, labels = three_clusters(per=20)
    p = project_2d(X)
    assert p.method == "pca"
    assert neighbours_agree(p.points, labels) >= 0.95


def test_unknown_method_lists_the_choices():
    with pytest.raises(ValidationError, match="choose one of umap, pca"):
        project_2d(np.eye(20, dtype=np.float32), method="tsne")


def test_scale_unit_keeps_the_aspect_ratio():
    pts = np.array([[0, 0], [10, 0], [10, 2]], dtype=np.float32)
    out = scale_unit(pts)
    np.testing.assert_allclose(out, [[0, 0.4], [1, 0.4], [1, 0.6]], atol=1e-6)
    assert scale_unit(np.ones((3, 2))).tolist() == [[0.5, 0.5]] * 3

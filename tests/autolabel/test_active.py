"""Active learning: uncertain first, spread over the candidates, never near-duplicates."""

from __future__ import annotations

import numpy as np
import pytest

from labelwise.autolabel.active import CANDIDATES_FACTOR, select_next_batch
from labelwise.errors import ValidationError


def _clusters(sizes, *, d=16, noise=0.05, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(sizes), d))
    labels = np.repeat(np.arange(len(sizes)), sizes)
    return (centres[labels] + noise * rng.normal(size=(len(labels), d))).astype(np.float32), labels


def test_picks_come_from_the_most_uncertain_items():
    X, _ = _clusters([100, 100, 100])
    u = np.random.default_rng(1).uniform(size=300)
    picks = select_next_batch(X, u, budget=10, candidates_factor=3, min_distance=0)
    top30 = set(np.argsort(-u)[:30].tolist())
    assert len(set(picks.tolist())) == 10 and set(picks.tolist()) <= top30


def test_by_default_the_candidates_are_the_most_uncertain_four_per_pick():
    X, _ = _clusters([100, 100, 100], noise=1.0)
    u = np.random.default_rng(2).uniform(size=300)
    picks = select_next_batch(X, u, budget=15, min_distance=0)
    assert CANDIDATES_FACTOR == 4
    assert set(picks.tolist()) <= set(np.argsort(-u)[:60].tolist())
    assert len(set(picks.tolist())) == 15


def test_a_batch_spreads_over_the_uncertain_regions():
    # Two uncertain regions, one holding far more (and slightly more uncertain) items: pure
    # uncertainty would take all four from the big one.
    X, labels = _clusters([60, 6, 100])
    u = np.select([labels == 0, labels == 1], [0.9, 0.8], 0.1)
    u = u + np.random.default_rng(0).uniform(0, 0.01, size=len(u))
    picks = select_next_batch(X, u, budget=4, candidates_factor=16, min_distance=0)
    assert set(labels[picks].tolist()) == {0, 1}
    assert (u[picks] > 0.5).all()


def test_near_duplicates_never_share_a_batch():
    X, _ = _clusters([50], noise=1.0)
    X = np.r_[X, X[:10] + 1e-4]  # rows 50..59 copy rows 0..9
    u = np.r_[np.linspace(0.5, 0.6, 50), np.full(10, 0.99)]  # copies the most uncertain
    picks = select_next_batch(X, u, budget=20, candidates_factor=3)
    chosen = set(picks.tolist())
    assert all(not ({i, 50 + i} <= chosen) for i in range(10))
    # Groups from the duplicate search do the same without the distance check.
    groups = [np.array([i, 50 + i]) for i in range(10)]
    picks = select_next_batch(X, u, budget=20, candidates_factor=3, duplicate_groups=groups,
                              min_distance=0)
    chosen = set(picks.tolist())
    assert len(chosen) == 20 and all(not ({i, 50 + i} <= chosen) for i in range(10))


def test_items_like_labeled_ones_are_skipped():
    X, _ = _clusters([40], noise=1.0)
    u = np.linspace(0, 1, 40)
    labeled = X[[39, 38]] + 1e-4  # the two most uncertain are as good as labeled
    picks = select_next_batch(X, u, budget=5, X_labeled=labeled)
    assert 39 not in picks and 38 not in picks and len(picks) == 5


def test_bad_inputs_are_refused():
    X, _ = _clusters([20])
    with pytest.raises(ValidationError, match="uncertainty must be 20 finite numbers"):
        select_next_batch(X, np.zeros(5), budget=3)
    with pytest.raises(ValidationError, match="larger than the pool of 20"):
        select_next_batch(X, np.zeros(20), budget=30)
    with pytest.raises(ValidationError, match="candidates_factor"):
        select_next_batch(X, np.zeros(20), budget=3, candidates_factor=0)
    with pytest.raises(ValidationError, match="X_labeled has 3 dimensions"):
        select_next_batch(X, np.zeros(20), budget=3, X_labeled=np.ones((2, 3)))

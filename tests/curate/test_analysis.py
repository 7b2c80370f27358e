import numpy as np
import pytest

from labelwise.curate import curate_unlabeled, reduce_dimensions, score_items
from labelwise.curate.analysis import default_clusters
from labelwise.errors import ValidationError

from .conftest import blobs


def test_scores_find_modes_rare_rows_copies_and_flipped_labels():
    X, mode = blobs(spread=0.4)  # spread out: no two planted rows are near-copies
    X = np.r_[X, X[:3] + 1e-4]  # three near-exact copies of rows 0..2
    labels = np.r_[mode, mode[:3]].copy()
    labels[10] = 1  # a flipped label in mode 0
    s = score_items(X, labels=labels, n_clusters=5, seed=0)
    # Clusters are the planted modes.
    for m in range(5):
        assert len(np.unique(s.cluster[:len(mode)][mode == m])) == 1
    assert (s.cluster_size[:len(mode)][mode == 4] == 8).all()  # the rare mode's cluster
    # Copies share a group; nothing else is grouped.
    for i in range(3):
        assert s.duplicate_group[i] == s.duplicate_group[len(mode) + i] >= 0
    assert (s.duplicate_group >= 0).sum() == 6
    # The flipped label is the most suspicious and its true class is suggested.
    assert int(np.argmax(s.mislabel)) == 10 and s.suggested[10] == 0
    assert len(s.duplicate_groups()) == 3


def test_unlabeled_rows_get_no_mislabel_score():
    X, mode = blobs()
    labels = mode.copy()
    labels[::2] = -1
    s = score_items(X, labels=labels, n_clusters=5)
    assert np.isnan(s.mislabel[::2]).all() and np.isfinite(s.mislabel[1::2]).all()


def test_reduction_keeps_neighbourhoods_and_is_a_no_op_for_small_vectors():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 512)).astype(np.float32)
    X[150:] += 4 * rng.normal(size=512).astype(np.float32)  # two far groups
    R = reduce_dimensions(X, dims=32)
    assert R.shape == (300, 32)
    assert np.allclose(np.linalg.norm(R, axis=1), 1, atol=1e-5)
    sims = R @ R.T
    assert sims[:150, :150].mean() > sims[:150, 150:].mean()
    assert reduce_dimensions(X[:, :16]).shape == (300, 16)


def test_curated_selection_reuses_scores_and_skips_duplicates():
    X, mode = blobs(spread=0.4)
    X = np.r_[X, X[:40] + 1e-4]
    s = score_items(X, n_clusters=5, seed=0)
    chosen = curate_unlabeled(X, budget=60, seed=0, scores=s)
    groups = s.duplicate_group[chosen]
    assert len(groups[groups >= 0]) == len(np.unique(groups[groups >= 0]))
    assert set(mode[chosen[chosen < len(mode)]].tolist()) == {0, 1, 2, 3, 4}


def test_cluster_count_default_and_errors():
    assert default_clusters(100) == 10 and default_clusters(10**6) == 300
    X, _ = blobs()
    with pytest.raises(ValidationError, match="n_clusters"):
        score_items(X[:5], n_clusters=6)
    with pytest.raises(ValidationError, match="labels"):
        score_items(X, labels=np.zeros(3, int))

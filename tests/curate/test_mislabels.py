import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from labelwise.curate import mislabel_scores, neighbour_votes, out_of_fold_probs
from labelwise.errors import ValidationError

from .conftest import blobs


def planted_flips(seed: int = 0, rate: float = 0.1):
    """Easy blobs (one class per mode) with ``rate`` of the labels flipped to another class."""
    X, truth = blobs((150, 150, 100, 100), d=32, spread=0.25, seed=seed)
    rng = np.random.default_rng(seed)
    flipped = rng.choice(len(X), size=int(rate * len(X)), replace=False)
    labels = truth.copy()
    labels[flipped] = (truth[flipped] + rng.integers(1, 4, len(flipped))) % 4
    is_flip = np.zeros(len(X), bool)
    is_flip[flipped] = True
    return X, truth, labels, is_flip


def test_neighbour_votes_rank_planted_flips_first():
    X, truth, labels, is_flip = planted_flips()
    scores, suggested = mislabel_scores(X, labels, k=10)
    assert scores.shape == suggested.shape == (len(X),)
    assert scores.dtype == np.float32 and suggested.dtype == np.int64
    assert roc_auc_score(is_flip, scores) > 0.9
    top = np.argsort(-scores)[: is_flip.sum()]
    assert is_flip[top].mean() > 0.9
    # The suggested label of a flipped item is its true class.
    assert (suggested[is_flip] == truth[is_flip]).mean() > 0.9


def test_out_of_fold_probs_and_their_combination_find_flips():
    X, truth, labels, is_flip = planted_flips(seed=1, rate=0.2)
    probs = out_of_fold_probs(X, labels, folds=5, seed=0)
    assert probs.shape == (len(X), 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert np.array_equal(probs, out_of_fold_probs(X, labels, folds=5, seed=0))
    self_confidence = probs[np.arange(len(X)), labels]
    assert roc_auc_score(is_flip, -self_confidence) > 0.9
    scores, suggested = mislabel_scores(X, labels, k=10, pred_probs=probs)
    assert roc_auc_score(is_flip, scores) > 0.9
    assert (suggested[is_flip] == truth[is_flip]).mean() > 0.9


def test_votes_are_similarity_weighted_shares():
    X = np.array([[1, 0], [1, 0.01], [1, -0.01], [0, 1]], np.float32)
    votes = neighbour_votes(X, np.array([0, 0, 1, 1]), k=3, n_classes=2)
    np.testing.assert_allclose(votes.sum(axis=1), 1.0)
    assert votes[0, 0] == pytest.approx(votes[0, 1], rel=0.05)  # one close neighbour each
    assert votes[3, 0] > votes[3, 1]  # row 3's neighbours are mostly class 0 (2 of 3)


def test_rare_classes_do_not_break_out_of_fold_probs():
    X, truth = blobs((60, 60, 3), d=8)
    probs = out_of_fold_probs(X, truth, folds=5, seed=0)
    assert probs.shape == (123, 3)
    assert np.isfinite(probs).all()


def test_bad_input_gets_clear_errors():
    X, truth = blobs((20, 20), d=8)
    with pytest.raises(ValidationError, match="shape"):
        mislabel_scores(X, truth[:5])
    with pytest.raises(ValidationError, match="start at 0"):
        mislabel_scores(X, truth - 1)
    with pytest.raises(ValidationError, match="single class"):
        mislabel_scores(X, np.zeros(40, np.int64))
    with pytest.raises(ValidationError, match="sums to"):
        mislabel_scores(X, truth, pred_probs=np.full((40, 2), 0.7))
    with pytest.raises(ValidationError, match="pred_probs must have shape"):
        mislabel_scores(X, truth, pred_probs=np.full((40, 1), 1.0))
    with pytest.raises(ValidationError, match="folds"):
        out_of_fold_probs(X, truth, folds=1)

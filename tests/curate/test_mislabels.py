import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from labelwise.curate import mislabel_scores, neighbour_votes, out_of_fold_probs
from labelwise.curate.mislabels import (
    CONCENTRATED_SHARE,
    confident_joint_issues,
    label_margins,
)
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


def pair_noise(seed: int = 0, rate: float = 0.3):
    """Four classes in two confusable pairs (overlapping modes); ``rate`` of class 0 is
    relabeled 1 and of class 2 relabeled 3: noise concentrated between two class pairs."""
    rng = np.random.default_rng(seed)
    axes = np.eye(16, dtype=np.float32) * 3
    centres = [axes[0], axes[0] + axes[1] * 0.4, axes[2], axes[2] + axes[3] * 0.4]
    truth = np.repeat(np.arange(4), 150)
    X = (np.stack([centres[t] for t in truth]) + rng.normal(0, 0.35, (600, 16))).astype(np.float32)
    labels = truth.copy()
    flip = np.isin(truth, [0, 2]) & (rng.random(600) < rate)
    labels[flip] += 1
    return X, truth, labels, flip


def test_confident_joint_flags_pair_noise_and_sees_it_is_concentrated():
    X, _, labels, flip = pair_noise()
    probs = out_of_fold_probs(X, labels, folds=5, seed=0)
    flagged, concentration = confident_joint_issues(probs, labels)
    assert flagged.dtype == bool and flagged.shape == (600,)
    assert flip[flagged].mean() > 0.7  # most flagged items are planted flips
    assert flagged.sum() > 0.5 * flip.sum()
    assert concentration > CONCENTRATED_SHARE
    # Uniform noise spreads over every pair of classes.
    X, _, labels, _ = planted_flips(seed=2, rate=0.3)
    _, spread = confident_joint_issues(out_of_fold_probs(X, labels, seed=0), labels)
    assert spread < CONCENTRATED_SHARE


def test_concentrated_noise_ranks_the_flagged_items_first():
    X, _, labels, flip = pair_noise(seed=1)
    probs = out_of_fold_probs(X, labels, folds=5, seed=0)
    scores, _ = mislabel_scores(X, labels, k=10, pred_probs=probs)
    votes = neighbour_votes(X, labels, k=10, n_classes=4)
    flagged, concentration = confident_joint_issues(0.3 * votes + 0.7 * probs, labels)
    assert concentration > CONCENTRATED_SHARE
    plain = 1 - (0.3 * votes + 0.7 * probs)[np.arange(600), labels]
    # Flagged items keep their score; the others are halved, so below every flagged item
    # the joint is sure of.
    np.testing.assert_allclose(scores[flagged], plain[flagged], atol=1e-6)
    np.testing.assert_allclose(scores[~flagged], 0.5 * plain[~flagged], atol=1e-6)
    k = int(flip.sum())
    assert flip[np.argsort(-scores)[:k]].mean() >= flip[np.argsort(-plain)[:k]].mean()
    assert 0 <= scores.min() and scores.max() <= 1


def test_label_margins():
    probs = np.array([[0.7, 0.2, 0.1], [0.3, 0.6, 0.1], [0.5, 0.5, 0.0]])
    np.testing.assert_allclose(label_margins(probs, np.array([0, 0, 1])), [0.5, -0.3, 0.0],
                               atol=1e-6)


def test_confident_joint_refuses_mismatched_inputs():
    with pytest.raises(ValidationError, match="q has 2 classes"):
        confident_joint_issues(np.full((3, 2), 0.5), np.array([0, 1, 2]))
    with pytest.raises(ValidationError, match="one per row"):
        confident_joint_issues(np.full((3, 2), 0.5), np.array([0, 1]))
